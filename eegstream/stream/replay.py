"""Replay a recording as a live LSL stream shaped like Emotiv's own, plus its markers.

The player follows MNE-LSL's ``PlayerLSL`` idea: a real LSL outlet, chunks stamped with the time of
their last sample, sleeps computed from an absolute schedule (so they never accumulate drift), and
the recording's markers on a second, irregular-rate ``Markers`` stream stamped at the artifact onset.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pylsl

from eegstream import __version__
from eegstream.errors import EegstreamError
from eegstream.io.recording import Recording
from eegstream.settings import ELECTRODES
from eegstream.stream.threads import ThreadOwner

log = logging.getLogger(__name__)

DEFAULT_NAME = "EmotivDataStream-EEG"
#: Label of the optional extra channel that carries each sample's running index.
SAMPLE_INDEX_LABEL = "SampleIndex"
#: Label of the interpolation flag channel (EmotivPRO's outlet calls it ``Interpolate``).
INTERPOLATED_LABEL = "Interpolated"
#: Seconds :func:`play` keeps the outlets open after the last sample so inlets can drain them.
_LINGER_S = 1.0


def marker_stream_name(name: str) -> str:
    """Name of the marker stream that accompanies the EEG stream ``name`` (issue #5)."""
    return f"{name}-markers"


def default_source_id(recording: Recording) -> str:
    """A source id stable for a given file, so inlets can recover when the replay restarts."""
    serial = str(recording.metadata.get("serial", "") or "")
    stem = Path(recording.source).name if recording.source != "<memory>" else "memory"
    return f"eegstream-replay:{stem}" + (f":{serial}" if serial else "")


def _relative_times(recording: Recording) -> npt.NDArray[np.float64]:
    """Seconds of each sample since the first, from the recording's own clock when it is sane."""
    n, fs = recording.n_samples, float(recording.fs)
    ts = np.asarray(recording.timestamps, dtype=np.float64)
    if ts.shape == (n,) and np.isfinite(ts).all() and (n < 2 or (np.diff(ts) > 0).all()):
        rel: npt.NDArray[np.float64] = ts - ts[0]
        return rel
    log.warning(
        "recording %s has missing or non-increasing timestamps; replaying at exactly %s Hz",
        recording.source,
        fs,
    )
    return np.arange(n, dtype=np.float64) / fs


class Player(ThreadOwner):
    """Publishes a :class:`Recording` on LSL from a background thread.

    Parameters
    ----------
    recording
        The samples to publish (``data`` ``(n, 14)`` in ``ELECTRODES`` order, microvolts).
    name, stype, source_id
        LSL stream name, type and source id (default: derived from the file, stable across
        restarts so that inlets can recover by source id).
    speed
        1 = real time, 2 = twice as fast, 0 = as fast as possible. Timestamps always keep the
        recording's spacing and start at the LSL clock's "now"; only the pacing changes.
    loop
        Start again at the end; timestamps and ``SampleIndex`` keep increasing.
    chunk
        Samples per push (8 = 62.5 ms at 128 Hz).
    sample_index
        Add a ``SampleIndex`` channel (type ``misc``) holding each sample's running index
        (exact up to 2**24 samples, 36 h at 128 Hz), so tests prove which samples arrived.
    markers
        Publish the recording's markers on ``<name>-markers``.
    wait_for_consumer
        Seconds to wait for a first inlet before pushing (useful with ``speed=0``, where data
        pushed before anyone listens is gone).
    start_lsl
        LSL time stamped on the first sample (default: the clock when pushing starts). With
        ``speed != 1`` the stamps run ahead of (or behind) the clock, so a restarted fast replay
        would go back in time; tests of a restart give the new player a later start instead.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        name: str = DEFAULT_NAME,
        stype: str = "EEG",
        source_id: str | None = None,
        speed: float = 1.0,
        loop: bool = False,
        chunk: int = 8,
        sample_index: bool = False,
        markers: bool = True,
        wait_for_consumer: float = 0.0,
        start_lsl: float | None = None,
    ) -> None:
        super().__init__()
        if not (math.isfinite(speed) and speed >= 0):
            raise EegstreamError(
                f"speed must be a number >= 0 (1 = real time, 0 = as fast as possible); got {speed}"
            )
        if chunk < 1:
            raise EegstreamError(f"chunk must be >= 1 sample; got {chunk}")
        if recording.n_samples < 1 or not recording.fs or recording.fs <= 0:
            raise EegstreamError(
                f"recording {recording.source} has no samples or no sampling rate "
                f"({recording.n_samples} samples, fs={recording.fs}); nothing to replay"
            )
        if recording.data.ndim != 2 or recording.data.shape[1] != len(ELECTRODES):
            raise EegstreamError(
                f"recording {recording.source} has data of shape {recording.data.shape}; "
                f"expected (samples, {len(ELECTRODES)}) in the order {', '.join(ELECTRODES)}"
            )
        self.recording = recording
        self.name = name
        self.stype = stype
        self.source_id = source_id or default_source_id(recording)
        self.speed = float(speed)
        self.loop = loop
        self.chunk = int(chunk)
        self.sample_index = sample_index
        self.markers = markers
        self.wait_for_consumer = float(wait_for_consumer)
        self.start_lsl = start_lsl
        self.fs = float(recording.fs)

        # EmotivPRO's outlet flags the samples it filled in after a lost packet: so does the
        # replay, when the recording says which (``EEG.Interpolated``).
        self.interpolated = recording.interpolated is not None
        columns: list[npt.NDArray[np.generic]] = [recording.data]
        if recording.interpolated is not None:
            columns.append(recording.interpolated[:, None])
        # Converted once: each push is then a slice of this array (no per-chunk conversion).
        self._data = np.ascontiguousarray(np.hstack(columns), dtype=np.float32)
        n_ch = self._data.shape[1] + int(sample_index)
        self._offsets = _relative_times(recording)
        self._period = float(self._offsets[-1]) + 1.0 / self.fs  # one pass, for --loop
        self._buf = np.zeros((self.chunk, n_ch), dtype=np.float32)  # used with sample_index
        self._ramp = np.arange(self.chunk, dtype=np.float64)
        ordered = sorted(recording.markers, key=lambda m: m.sample)
        self._marker_samples = np.array([m.sample for m in ordered], dtype=np.int64)
        self._marker_labels = [m.label for m in ordered]

        self._outlet: pylsl.StreamOutlet | None = None
        self._marker_outlet: pylsl.StreamOutlet | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self.start_time: float | None = None  #: LSL time stamped on the first sample
        self.samples_pushed = 0
        self.markers_pushed = 0
        self.loops_done = 0

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Player:
        """Create the outlets and start pushing; calling it while running does nothing."""
        if self.running:
            return self
        self._stop.clear()
        self._finished.clear()
        self._error = None
        self.samples_pushed = self.markers_pushed = self.loops_done = 0
        self._outlet = pylsl.StreamOutlet(self._eeg_info(), self.chunk)
        if self.markers:
            self._marker_outlet = pylsl.StreamOutlet(self._marker_info())
        self._thread = threading.Thread(target=self._run, name=f"eegstream-player-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        log.info(
            "publishing %r (%s, %d ch @ %g Hz, source_id %r) at speed %g%s",
            self.name,
            self.stype,
            self._buf.shape[1],
            self.fs,
            self.source_id,
            self.speed,
            ", looping" if self.loop else "",
        )
        return self

    def stop(self) -> None:
        """Stop pushing and destroy the outlets (inlets see the stream vanish); safe to repeat.

        Raises the exception that ended the player thread, if any, once.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        # Dropping the last reference destroys the outlet (pylsl frees it in __del__).
        self._outlet = None
        self._marker_outlet = None
        self.check()

    @property
    def finished(self) -> bool:
        """True once every sample was pushed (never with ``loop=True``)."""
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the whole recording was pushed (or ``timeout``); return ``finished``."""
        return self._finished.wait(timeout)

    # --- stream descriptions --------------------------------------------------------------------

    def _eeg_info(self) -> pylsl.StreamInfo:
        n_ch = self._buf.shape[1]
        info = pylsl.StreamInfo(
            self.name, self.stype, n_ch, self.fs, pylsl.cf_float32, self.source_id
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "Emotiv")
        headset = self.recording.metadata.get("headset")
        if headset:
            desc.append_child_value("model", str(headset))
        desc.append_child_value("replayed_by", f"eegstream {__version__}")
        desc.append_child_value("source_file", str(self.recording.source))
        channels = desc.append_child("channels")
        for label in ELECTRODES:
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "microvolts")
            ch.append_child_value("type", "EEG")
        extra = [(INTERPOLATED_LABEL, "boolean")] if self.interpolated else []
        extra += [(SAMPLE_INDEX_LABEL, "samples")] if self.sample_index else []
        for label, unit in extra:
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", "misc")
        return info

    def _marker_info(self) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(
            marker_stream_name(self.name),
            "Markers",
            1,
            pylsl.IRREGULAR_RATE,
            pylsl.cf_string,
            f"{self.source_id}-markers",
        )
        ch = info.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "label")
        ch.append_child_value("type", "Markers")
        return info

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._push_all()
        except Exception as exc:  # stored and re-raised by stop(): never lost
            log.exception("replay of %r failed", self.name)
            self._error = exc

    def _push_all(self) -> None:
        outlet = self._outlet
        if outlet is None:  # pragma: no cover - start() always creates it
            return
        if self.wait_for_consumer > 0 and not outlet.wait_for_consumers(self.wait_for_consumer):
            log.warning("no inlet connected to %r within %ss", self.name, self.wait_for_consumer)
        n, step, offsets = self._data.shape[0], self.chunk, self._offsets
        clock0 = pylsl.local_clock()  # origin of the pacing
        t0 = clock0 if self.start_lsl is None else self.start_lsl  # origin of the stamps
        self.start_time = t0
        while not self._stop.is_set():
            base = self.loops_done * self._period  # recording seconds before this pass
            for start in range(0, n, step):
                end = min(start + step, n)
                rel = base + float(offsets[end - 1])  # recording time of the chunk's last sample
                if self.speed > 0:
                    # Absolute schedule: a late wake-up shortens the next sleep (no drift).
                    delay = clock0 + rel / self.speed - pylsl.local_clock()
                    if delay > 0 and self._stop.wait(delay):
                        return
                elif self._stop.is_set():
                    return
                outlet.push_chunk(self._chunk(start, end), t0 + rel)
                if self._marker_outlet is not None:
                    self._push_markers(start, end, t0 + base)
                self.samples_pushed += end - start
            self.loops_done += 1
            if not self.loop:
                self._finished.set()
                return

    def _chunk(self, start: int, end: int) -> npt.NDArray[np.float32]:
        if not self.sample_index:
            return self._data[start:end]
        m = end - start
        buf = self._buf[:m]
        buf[:, :-1] = self._data[start:end]
        np.add(self._ramp[:m], float(self.samples_pushed), out=buf[:, -1], casting="same_kind")
        return buf

    def _push_markers(self, start: int, end: int, pass_t0: float) -> None:
        lo, hi = np.searchsorted(self._marker_samples, (start, end))
        outlet = self._marker_outlet
        for k in range(int(lo), int(hi)):  # a handful per minute, not per sample
            stamp = pass_t0 + float(self._offsets[self._marker_samples[k]])
            if outlet is not None:
                outlet.push_sample([self._marker_labels[k]], stamp)
            self.markers_pushed += 1


# --- playing in the foreground (``eegstream replay``) ---------------------------------------------


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM (``docker stop``) set ``stop`` while the block runs.

    Why not KeyboardInterrupt: raised at an arbitrary point it can land inside
    ``Player.start()`` (the stream is already visible, the thread started, ``__exit__`` never
    runs), leaving a pushing thread behind; a flag is read only by the loop that owns the player.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda signum, frame: stop.set()) for s in signals]
    try:
        yield
    finally:
        for s, handler in zip(signals, previous, strict=True):
            signal.signal(s, handler)


def play(player: Player, linger: float = _LINGER_S) -> bool:
    """Run ``player`` until its recording ends or Ctrl-C / SIGTERM; True when a signal stopped it.

    For a foreground program (``eegstream replay``): the signals only set a flag, so the player
    is always stopped by its owner, and a recording that ends stays published ``linger`` more
    seconds so inlets drain its last chunks. A dead player thread re-raises here.
    """
    stop = threading.Event()
    with _stop_on_signals(stop):
        with player:
            while player.running and not stop.is_set():  # a dead thread re-raises in stop()
                player.wait(0.2)
            if player.finished and not stop.is_set():
                stop.wait(linger)  # let inlets drain the last chunks
    return stop.is_set()
