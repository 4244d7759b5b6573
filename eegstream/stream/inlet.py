"""Receive a live EEG stream over LSL: resolve it, map its channels by label, pull chunks, notice gaps.

One :class:`EEGInlet` per headset. liblsl writes straight into buffers allocated once per
connection, the 14 electrodes are selected with one ``np.take`` into another (and, when the stream
is not in microvolts or lacks optional electrodes, scaled by one multiply), and the checks are
whole-chunk numpy (no per-sample Python; about 40 us per 8-sample chunk of a 19-channel Emotiv
stream, measured). It resamples other rates to 128 Hz, counts non-finite samples, reports gaps (a
timestamp jump, a counter jump, or a reconnection), and when the outlet vanishes it searches for it
again in the background (by source id, else by name and type) and carries on with a fresh
connection.

LSL conventions: a stream type matches in any case (``EEG``, ``eeg``: MNE-LSL's ``PlayerLSL``
declares ``eeg``). Units come from ``desc/channels/channel/unit`` (:data:`UNITS`; none means
microvolts, as Emotiv sends). Only the model's electrodes (``MODEL_ELECTRODES``) are required;
the other EPOC electrodes, when absent, are NaN columns, as in a recording without them.

Timestamps: by default liblsl synchronises clocks, dejitters and monotonises (``proc_clocksync |
proc_dejitter | proc_monotonize``). liblsl's dejitter is a slow regression of time on sample
count, which would smear a pause of the sender over the following minutes; so after
``stall_reset`` seconds without data the inlet resets it, and the first sample after the pause
carries its true time and the gap shows.

The steps live in modules of their own, in data-flow order: :mod:`~eegstream.stream.resolve`
(finding a stream), :mod:`~eegstream.stream.channels` (its labels and units),
:mod:`~eegstream.stream.connection` (opening it and pulling), :mod:`~eegstream.stream.timestamps`
(gaps, clock jumps, resampling), :mod:`~eegstream.stream.chunks` (what a pull returns) and
:mod:`~eegstream.stream.recovery` (stalls, losses, the search again); this module holds
:class:`EEGInlet`, which runs them, and re-exports their public names.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np
import numpy.typing as npt
import pylsl
from pylsl.lib import lib as _lsl
from pylsl.util import LostError

from eegstream.errors import EegstreamError
from eegstream.resample import Resampler
from eegstream.settings import ELECTRODES, FS
from eegstream.stream.channels import (
    EMOTIV_LSL_LAYOUT,
    UNITS,
    ChannelMap,
    map_channels,
    normalise_label,
    unit_scale,
)
from eegstream.stream.chunks import F64, Chunk, Gap, GapReason, InletEvent, InletStats, State
from eegstream.stream.recovery import _Recovery
from eegstream.stream.resolve import (
    StreamDescription,
    channel_labels,
    channel_units,
    list_streams,
    resolve_stream,
    stream_predicate,
    types_match,
)
from eegstream.stream.ring import RingBuffer
from eegstream.stream.timestamps import CLOCK_STEP, _Cut

log = logging.getLogger(__name__)

__all__ = [
    "CLOCK_STEP",
    "DEFAULT_PROCESSING",
    "EMOTIV_LSL_LAYOUT",
    "F64",
    "UNITS",
    "ChannelMap",
    "Chunk",
    "EEGInlet",
    "Gap",
    "GapReason",
    "InletEvent",
    "InletStats",
    "State",
    "StreamDescription",
    "channel_labels",
    "channel_units",
    "list_streams",
    "map_channels",
    "normalise_label",
    "resolve_stream",
    "stream_predicate",
    "types_match",
    "unit_scale",
]

#: What liblsl does to timestamps unless told otherwise.
DEFAULT_PROCESSING = pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize


# --- the inlet ----------------------------------------------------------------------------------


class EEGInlet(_Recovery):
    """One LSL EEG stream, pulled as 128 Hz chunks of the 14 electrodes.

    Parameters
    ----------
    name, stype, source_id
        Which stream (any of them may be None; ``stype`` defaults to ``EEG``).
    info
        A stream already resolved: the first :meth:`connect` opens it instead of resolving.
    resolve_timeout
        Seconds to wait for the stream in :meth:`connect`.
    lost_after
        Seconds without data after which the stream counts as lost and is searched for again.
    stall_reset
        Seconds without data after which liblsl's dejitter state is reset (see module doc).
    max_buflen
        Seconds liblsl buffers when this process falls behind (older data is dropped, as a gap).
    max_chunk
        Samples pulled at most per call (buffers are sized once for this).
    processing_flags
        liblsl ``proc_*`` flags, applied as given.
    fs
        Output rate; other stream rates are resampled (``eegstream.resample.Resampler``).

    Call :meth:`pull` from one thread only.
    """

    def __init__(
        self,
        name: str | None = None,
        stype: str | None = "EEG",
        source_id: str | None = None,
        *,
        info: pylsl.StreamInfo | None = None,
        resolve_timeout: float = 10.0,
        lost_after: float = 2.0,
        stall_reset: float = 0.5,
        max_buflen: int = 60,
        max_chunk: int = 1024,
        processing_flags: int = DEFAULT_PROCESSING,
        fs: float = FS,
    ) -> None:
        if max_chunk < 2:
            raise EegstreamError(f"max_chunk must be >= 2 samples; got {max_chunk}")
        if lost_after <= 0 or stall_reset <= 0:
            raise EegstreamError(
                f"lost_after and stall_reset must be > 0 seconds; got {lost_after}, {stall_reset}"
            )
        self.query = (name, stype, source_id)
        self.resolve_timeout = resolve_timeout
        self.lost_after = lost_after
        self.stall_reset = stall_reset
        self.max_buflen = int(max_buflen)
        self.max_chunk = int(max_chunk)
        self.processing_flags = int(processing_flags)
        self.fs = float(fs)
        self.stats = InletStats()
        self.description: StreamDescription | None = None
        self.channels: ChannelMap | None = None
        self._given_info = info
        self._inlet: pylsl.StreamInlet | None = None
        self._state: State = "disconnected"
        self._events: deque[InletEvent] = deque(maxlen=1000)
        self._last_ts: float | None = None  # last timestamp delivered (output rate)
        self._last_counter: float | None = None
        self._last_arrival = 0.0
        self._dejitter_reset_done = False
        self._switched = False  # the next chunk comes from a new connection
        self._ts_offset = 0.0  # added to the source's stamps since its clock jumped
        self._lag_ref: float | None = None  # arrival minus newest stamp, slowly relaxed minimum
        self._resync = False  # a jump was seen: re-anchor on the next chunk's stamps
        self._last_ts_src: float | None = None  # last timestamp pulled (stream rate)
        self._carry: list[tuple[_Cut, float | None]] = []  # gaps awaiting resampled output
        self._source_fs = self.fs
        self._resampler: Resampler | None = None
        self._present_idx: npt.NDArray[np.intp] | None = None  # None: every electrode present
        # background search for a lost stream
        self._lock = threading.Lock()
        self._found: tuple[pylsl.StreamInlet, pylsl.StreamInfo] | None = None
        self._search_thread: threading.Thread | None = None
        self._search_stop = threading.Event()
        self._idle = threading.Event()  # never set: a timed wait that a stop could interrupt
        self._empty = Chunk(np.empty((0, len(ELECTRODES))), np.empty(0))

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``disconnected``, ``connected`` or ``lost`` (searching for the stream again)."""
        return self._state

    @property
    def running(self) -> bool:
        """True between :meth:`connect` and :meth:`disconnect`."""
        return self._state != "disconnected"

    @property
    def source_fs(self) -> float:
        """The stream's nominal rate (before resampling)."""
        return self._source_fs

    def connect(self) -> EEGInlet:
        """Resolve and open the stream, check its channels; safe to call twice."""
        if self.running:
            return self
        info = self._given_info or resolve_stream(*self.query, timeout=self.resolve_timeout)
        self._given_info = None  # a later connect() resolves again: that outlet may be gone
        inlet, full = self._open(info)
        self._adopt(inlet, full)  # raises MissingChannelsError (inlet closed) on a bad layout
        self._last_ts = self._last_ts_src = self._last_counter = None
        self._carry = []
        self._reset_clock()
        self._state = "connected"
        self._last_arrival = pylsl.local_clock()
        self._events.append(InletEvent("connected", self._last_arrival, self.description))
        log.info("connected to %s", self.description)
        return self

    def disconnect(self) -> None:
        """Close the stream and stop any background search; safe to call twice."""
        self._stop_search()
        with self._lock:
            found, self._found = self._found, None
        if found is not None:
            found[0].close_stream()
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
        self._state = "disconnected"

    def __enter__(self) -> EEGInlet:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def events(self) -> list[InletEvent]:
        """Connection changes since the last call (connected, lost, recovered)."""
        out = list(self._events)
        self._events.clear()
        return out

    def backlog(self) -> int:
        """Samples waiting in liblsl's buffer (how far this process is behind)."""
        return int(_lsl.lsl_samples_available(self._inlet.obj)) if self._inlet is not None else 0

    # --- pulling --------------------------------------------------------------------------------

    def pull(self, timeout: float = 0.0) -> Chunk:
        """Samples received since the last call, waiting up to ``timeout`` s for the first one.

        Never raises for a lost stream (that is an event and a background search); raises
        :class:`MissingChannelsError` if the stream that came back lacks electrodes.
        """
        if self._state == "disconnected":
            raise EegstreamError("the inlet is not connected; call connect() before pull()")
        self._take_found()
        if self._inlet is None:  # lost and not found yet
            if timeout > 0:
                self._idle.wait(timeout)
            return self._empty
        try:
            n = self._pull_raw(timeout)
        except LostError:
            self._lose("the outlet closed or the connection broke", dead=True)
            return self._empty
        now = pylsl.local_clock()
        if n == 0:
            self._check_stall(now)
            return self._empty
        self._last_arrival = now
        self._dejitter_reset_done = False
        if self._state == "lost":  # the same outlet delivers again
            self._stop_search()
            self._state = "connected"
            self._events.append(InletEvent("recovered", now, self.description, "data resumed"))
            log.info("%s delivers data again", self.description)
        return self._process(n, now)

    def pull_into(self, ring: RingBuffer, timeout: float = 0.0) -> Chunk:
        """:meth:`pull` and append the samples to ``ring`` (14 channels)."""
        chunk = self.pull(timeout)
        ring.write(chunk.data, chunk.timestamps)
        return chunk

    def _process(self, n: int, now: float) -> Chunk:
        raw, ts = self._raw[:n], self._ts[:n]
        channels = self.channels
        if channels is None:  # pragma: no cover - set by _adopt
            return self._empty
        self._check_clock(ts, now, raw)
        cuts = self._find_gaps(raw, ts, 1.0 / self._source_fs)
        if self._resampler is None:
            data = self._mapped[:n]
            np.take(raw, channels.electrodes, axis=1, out=data)  # one column selection
            if not channels.unity:  # units and absent electrodes: one multiply
                np.multiply(data, channels.scale, out=data)
            times = ts
            gaps = tuple(
                self._gap(c, c.pos, self._last_ts if c.pos == 0 else float(ts[c.pos - 1]), ts)
                for c in cuts
            )
        else:
            data, times, gaps = self._resample(raw, ts, cuts)
        nonfinite = self._count_nonfinite(data)
        if gaps:
            self.stats.gaps += len(gaps)
            self.stats.missing_samples += sum(g.missing for g in gaps)
            for g in gaps:
                log.warning(
                    "gap of %.3f s (%d samples missing, %s) in %s",
                    g.end_lsl - g.start_lsl, g.missing, g.reason,
                    self.description.name if self.description else "?",
                )  # fmt: skip
        if data.shape[0]:
            self._last_ts = float(times[-1])
        self.stats.samples += int(data.shape[0])
        self.stats.chunks += 1
        self.stats.nonfinite_samples += nonfinite
        interpolated = self._empty.interpolated  # none: shared, never written
        if channels.interpolated is not None:
            flagged = raw[:, channels.interpolated] > 0
            if flagged.any():  # rare: a copy, so it outlives the buffers
                interpolated = ts[flagged].copy()
        return Chunk(data, times, gaps, nonfinite, raw, interpolated)

    def _count_nonfinite(self, data: F64) -> int:
        """Samples with a NaN or inf on any electrode (one reduction when there are none).

        Absent optional electrodes are NaN by design and do not count.
        """
        if data.shape[0] == 0:
            return 0
        if self._present_idx is not None:  # rare: a stream without some optional electrodes
            data = data[:, self._present_idx]
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: still caught
            if np.isfinite(np.sum(data)):  # NaN/inf propagate into the sum
                return 0
        return int(data.shape[0] - np.count_nonzero(np.isfinite(data).all(axis=1)))
