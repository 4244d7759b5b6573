"""The calibration protocol run live on an LSL stream (``eegstream calibrate --stream-name``).

:func:`record_protocol` opens the EEG stream, anchors the protocol at the first sample it
receives, shows each prompt through a callback (the terminal for ``eegstream calibrate
--stream-name``) with a 3-2-1 countdown, pushes every cue on an LSL marker stream (type
``Markers``, strings ``cue_blink`` / ``cue_jaw_clench``, stamped at the cue) so a LabRecorder
XDF holds the session, and returns what arrived as a :class:`~eegstream.io.recording.Recording`
with the cues as markers (41 / 42), ready for :func:`eegstream.calibrate.calibrate_recording`.

The protocol clock is the later of the LSL clock and the newest sample's stamp: a headset's
samples arrive a little after their stamps, so prompts follow the LSL clock; a replay faster
than real time (tests) runs its stamps ahead, and prompts follow the data.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np

from eegstream.calibrate import CUE_LABELS, CUE_VALUES, Protocol
from eegstream.errors import EegstreamError
from eegstream.io.recording import Marker, Recording
from eegstream.settings import FS

log = logging.getLogger(__name__)

__all__ = ["PROMPTS", "CalibrationCancelled", "record_protocol"]

#: What the person is asked to do at each cue.
PROMPTS: dict[str, str] = {
    "blink": "BLINK firmly once, now",
    "jaw_clench": "CLENCH your jaw for about a second, now",
}
#: Seconds of countdown shown before each cue.
COUNTDOWN_S: int = 3
#: The recording may end this long before the protocol's last second (the final rest is long).
END_SLACK_S: float = 0.25


class CalibrationCancelled(EegstreamError):
    """The protocol was stopped before its end (``cancel`` set); nothing is calibrated."""


def record_protocol(
    name: str,
    protocol: Protocol,
    prompt: Callable[[str], None],
    *,
    stype: str = "EEG",
    source_id: str | None = None,
    resolve_timeout: float = 10.0,
    marker_name: str = "eegstream-calibration",
    stall_s: float = 10.0,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> Recording:
    """Run the protocol on stream ``name``; the recording with its cue markers.

    ``progress`` is called with the protocol's time (s from its start) on every pull once the
    first sample arrived (the dashboard's calibration page draws its cue and countdown from
    it); setting ``cancel`` stops the run with :class:`CalibrationCancelled`.

    Raises :class:`EegstreamError` when the stream is not found or stops sending for
    ``stall_s`` seconds before the protocol ends (nothing is calibrated then).
    """
    import pylsl

    from eegstream.stream.inlet import EEGInlet

    cues = protocol.cues()
    info = pylsl.StreamInfo(
        marker_name, "Markers", 1, 0.0, "string", f"eegstream-calibration-{uuid.uuid4().hex[:8]}"
    )
    outlet = pylsl.StreamOutlet(info)
    inlet = EEGInlet(name, stype, source_id, resolve_timeout=resolve_timeout)
    data: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    shown: set[tuple[int, int]] = set()
    t0: float | None = None
    last = -np.inf
    stalled = time.monotonic()
    prompt(f"calibration on {name}: sit still and relax for {protocol.rest_before_s:g} s")
    try:
        inlet.connect()
        while True:
            if cancel is not None and cancel.is_set():
                raise CalibrationCancelled(
                    f"calibration on {name!r} cancelled before the protocol ended; nothing was "
                    "written: start it again"
                )
            chunk = inlet.pull(0.05)
            if chunk.n:
                data.append(chunk.data.copy())
                stamps.append(chunk.timestamps.copy())
                last = float(chunk.timestamps[-1])
                stalled = time.monotonic()
                if t0 is None:
                    t0 = float(chunk.timestamps[0])
            elif time.monotonic() - stalled > stall_s:
                raise EegstreamError(
                    f"stream {name!r} sent nothing for {stall_s:g} s during calibration; check "
                    "the headset and run `eegstream calibrate` again (nothing was written)"
                )
            if t0 is None:
                continue
            now = max(pylsl.local_clock(), last) - t0
            if progress is not None:
                progress(now)
            for i, cue in enumerate(cues):
                for k in range(COUNTDOWN_S, -1, -1):
                    if now >= cue.time - k and (i, k) not in shown:
                        shown.add((i, k))
                        if now - (cue.time - k) > 1.0 and k > 0:
                            continue  # late (a fast replay): no stale countdown
                        if k:
                            prompt(f"[{i + 1}/{len(cues)}] {cue.label.replace('_', ' ')} in {k}")
                        else:
                            outlet.push_sample([CUE_LABELS[cue.label]], t0 + cue.time)
                            prompt(f"[{i + 1}/{len(cues)}] {PROMPTS[cue.label]}")
                            if i == len(cues) - 1:
                                prompt(f"relax again for {protocol.rest_after_s:g} s")
            if last - t0 >= protocol.duration - END_SLACK_S:
                break
    finally:
        inlet.disconnect()
        del outlet
    prompt("calibration recorded; computing the profile")
    x = np.concatenate(data)
    ts = np.concatenate(stamps)
    start = float(ts[0])
    markers = []
    for cue in cues:
        k = int(np.clip(np.searchsorted(ts, start + cue.time), 0, ts.shape[0] - 1))
        markers.append(Marker(k, float(ts[k]), CUE_VALUES[cue.label], CUE_LABELS[cue.label]))
    return Recording(
        data=x,
        timestamps=ts,
        fs=float(FS),
        markers=markers,
        metadata={"title": f"calibration on {name}", "protocol_seed": protocol.seed},
        source=f"<live calibration of {name}>",
    )
