"""One attached stream: its inlet, its detector and everything the scheduler reports about it.

:class:`StreamSession` is the per-stream half of the scheduler (``live/scheduler.py``): a pull
(connection events, gaps, samples into the detector), the NaN notes and their rate-limited
report, the overload check, the status dictionary and the status messages. It runs no thread and
calls no clock of its own: the inlet is anything that meets :class:`Inlet` and the time comes
from a :class:`Clock`, so a test drives it with prepared chunks and a fake clock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from eegstream.detector import Detector
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.live.contract import Sink
from eegstream.live.ports import SYSTEM_CLOCK, Clock, Inlet
from eegstream.settings import ELECTRODES, FS
from eegstream.stream.inlet import InletEvent

log = logging.getLogger(__name__)

__all__ = ["LiveArtifactEvent", "StreamSession"]

#: Measurements kept: rates are averaged over about this many seconds.
RATE_SPAN = 10
#: Samples waiting in a stream's LSL buffer (1 s) at which the service reports itself
#: ``overloaded`` (once per episode; ``connected`` again when the backlog fell under a quarter).
OVERLOAD_BACKLOG = 128
#: Interpolated-sample times kept per stream to flag events (8 s of them at 128 Hz).
_INTERPOLATED_KEPT = 1024
#: Seconds between two ``nan`` statuses of one stream.
_NAN_REPORT_EVERY_S = 1.0


class LiveArtifactEvent(ArtifactEvent):
    """An artifact event from a live stream, with the time its deciding samples were pulled.

    A subclass rather than a new field of :class:`ArtifactEvent`, so that offline outputs and
    other producers are unchanged; it serialises (websocket, event log) with the extra field.
    """

    pulled_unix: float = Field(
        description="unix time the deciding window's last sample was pulled from the stream"
    )


class StreamSession:
    """An attached stream: inlet, detector and what its status reports. Scheduler-owned.

    Every message goes to ``sink`` (and is counted). ``active`` says whether the scheduler pulls
    it; the scheduler keeps its list of active sessions in step.
    """

    def __init__(
        self,
        stream_id: str,
        key: str,
        inlet: Inlet,
        detector: Detector,
        sink: Sink,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.stream_id = stream_id
        self.key = key  #: identity for discovery: the source id, else the outlet's uid
        self.inlet = inlet
        self.detector = detector
        self.sink = sink
        self.clock = clock
        self.lock = threading.Lock()  #: ring writes vs latest()
        self.error: BaseException | None = None
        self.detached = False
        self.active = False  #: pulled by the scheduler
        self.attached_at = clock.unix()
        self.pulled_unix = 0.0
        self.last_ts: float | None = None
        self.lost_since: float | None = None  #: monotonic time of the last "lost"
        self.backlog = 0
        self.messages = 0
        self.last_gap: dict[str, Any] | None = None
        self.rates: deque[tuple[float, int, int]] = deque(maxlen=RATE_SPAN + 1)
        self.nan_pending = 0
        self.nan_span: tuple[float, float] | None = None
        self.nan_electrodes: set[str] = set()
        self.nan_reported_at = -math.inf
        self.overloaded = False  #: an ``overloaded`` status was sent and not yet cleared
        #: LSL times of the newest samples the source marked as interpolated (rare)
        self.interpolated: deque[float] = deque(maxlen=_INTERPOLATED_KEPT)

    # --- state and status -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``failed``, ``detached``, ``stopped`` or the inlet's state."""
        if self.error is not None:
            return "failed"
        if self.detached:
            return "detached"
        return self.inlet.state if self.active else "stopped"

    def status(self) -> dict[str, Any]:
        """JSON-ready, one entry of the pipeline status's ``streams`` (any thread)."""
        inlet, det = self.inlet, self.detector
        stats, dstats = inlet.stats, det.stats
        rates = list(self.rates)
        measured = windows_rate = None
        if len(rates) >= 2 and rates[-1][0] > rates[0][0]:
            dt = rates[-1][0] - rates[0][0]
            measured = (rates[-1][1] - rates[0][1]) / dt
            windows_rate = (rates[-1][2] - rates[0][2]) / dt
        ring = det.ring
        last_ts = self.last_ts
        error = self.error
        return {
            "stream_id": self.stream_id,
            "state": self.state,
            "running": self.active,
            "stream": inlet.description.as_dict() if inlet.description is not None else None,
            # optional electrodes the stream does not carry (NaN columns; detection needs none)
            "absent_electrodes": list(inlet.channels.absent) if inlet.channels else [],
            "nominal_fs": inlet.source_fs,
            "fs": inlet.fs,
            "measured_fs": measured,
            "buffer_fill": (ring.total - ring.oldest) / ring.capacity,
            "buffer_seconds": ring.capacity / FS,
            "lag_s": self.clock.lsl() - last_ts if last_ts is not None and self.active else None,
            "backlog_samples": self.backlog,
            "samples": stats.samples,
            "windows": dstats.get("windows", 0),
            "windows_per_s": windows_rate,
            "dropped_windows": dstats.get("dropped_windows", 0),
            "nan_samples": stats.nonfinite_samples,
            "nan_windows": dstats.get("nan_windows", 0),
            "gaps": stats.gaps,
            "missing_samples": stats.missing_samples,
            "last_gap": self.last_gap,
            "lost": stats.lost,
            "reconnects": stats.reconnects,
            "clock_jumps": stats.clock_jumps,
            "messages": self.messages,
            "events": dstats.get("events", 0),
            "person_baseline": det.person.status() if det.person is not None else None,
            "last_error": None if error is None else f"{type(error).__name__}: {error}",
            "uptime_s": self.clock.unix() - self.attached_at,
        }

    # --- input ----------------------------------------------------------------------------------

    def pull(self, unix_offset: float) -> bool:
        """Connection events, gaps, samples into the detector; True when samples arrived."""
        chunk = self.inlet.pull(0.0)
        for event in self.inlet.events():
            self.on_event(event)
        if not chunk.n:
            return False
        self.pulled_unix = self.clock.unix()
        det = self.detector
        data, ts = chunk.data, chunk.timestamps
        prev = 0
        for gap in chunk.gaps:  # rare: the samples before the gap are decided right away
            with self.lock:
                det.ingest(data[prev : gap.index], ts[prev : gap.index], unix_offset)
            self.emit_all(self.stamp(det.mark_gap(gap.start_lsl, gap.end_lsl)))
            prev = gap.index
            info = {
                "missing_samples": gap.missing,
                "seconds": round(gap.end_lsl - gap.start_lsl, 6),
                "reason": gap.reason,
            }
            self.last_gap = {"start_lsl": gap.start_lsl, "end_lsl": gap.end_lsl, **info}
            self.emit(
                self.message("gap", start_lsl=gap.start_lsl, end_lsl=gap.end_lsl, detail=info)
            )
        with self.lock:
            det.ingest(data[prev:], ts[prev:], unix_offset)
        if chunk.nonfinite:
            self.note_nan(data, ts, chunk.nonfinite)
        if chunk.interpolated.size:
            self.interpolated.extend(chunk.interpolated.tolist())
        self.last_ts = float(ts[-1])
        return True

    def on_event(self, event: InletEvent) -> None:
        """A connection change of the inlet becomes a status message."""
        detail: dict[str, Any] = {"reason": event.detail} if event.detail else {}
        if event.stream is not None:
            detail["stream"] = str(event.stream)
        if event.kind == "lost":
            self.lost_since = self.clock.monotonic()
            self.flush()  # close the open event now, not after recovery
        else:
            self.lost_since = None
        if event.kind == "clock_jump":
            detail["jump_s"] = round(event.jump_s, 6)
        channels = self.inlet.channels
        if event.kind in ("connected", "recovered") and channels is not None and channels.absent:
            detail["absent_electrodes"] = list(channels.absent)
        start = event.time_lsl if event.kind in ("lost", "clock_jump") else None
        self.emit(self.message(event.kind, start_lsl=start, detail=detail))

    def flush(self) -> None:
        """Close the open event (a loss, a removal, the end)."""
        self.emit_all(self.stamp(self.detector.flush()))

    # --- about once a second --------------------------------------------------------------------

    def housekeeping(self, now: float) -> bool:
        """NaN report, rate sample, backlog check; True when an overload episode begins.

        ``now`` is the clock's monotonic time.
        """
        self.report_nan(now)
        self.rates.append((now, self.inlet.stats.samples, self.detector.stats.get("windows", 0)))
        backlog_before, self.backlog = self.backlog, self.inlet.backlog()
        return self.check_overload(backlog_before)

    def check_overload(self, backlog_before: int) -> bool:
        """Say so when this process falls behind a stream (samples pile up in liblsl's buffer).

        Why: a service that cannot keep up delivers events late, then loses samples when the
        buffer overflows (a gap); without a word it looks like a quiet headset. A backlog of a
        second or more at two checks a second apart, not shrinking, is an overload (the burst
        after a reconnection or a slow start drains within a tick or two and is not).
        """
        behind = OVERLOAD_BACKLOG <= backlog_before <= self.backlog
        if not self.overloaded and behind:
            self.overloaded = True
            log.warning(
                "stream %s: %d samples wait to be processed: the service is overloaded",
                self.stream_id, self.backlog,
            )  # fmt: skip
            detail = {
                "backlog_samples": self.backlog,
                "reason": "samples arrive faster than processed",
            }
            self.emit(self.message("overloaded", detail=detail))
            return True
        if self.overloaded and self.backlog < OVERLOAD_BACKLOG // 4:
            self.overloaded = False  # /status's scheduler.overloaded drops; no status message
            log.warning("stream %s: the service caught up", self.stream_id)
        return False

    def note_nan(self, data: npt.NDArray[np.float64], ts: npt.NDArray[np.float64], n: int) -> None:
        """Accumulate non-finite samples for the stream's next (rate-limited) ``nan`` status."""
        bad = ~np.isfinite(data)  # only on chunks that have some: rare
        channels = self.inlet.channels
        if channels is not None and channels.absent:  # absent electrodes are NaN by design
            bad &= channels.present[None, :]
        rows = np.flatnonzero(bad.any(axis=1))
        span = (float(ts[rows[0]]), float(ts[rows[-1]]))
        self.nan_span = span if self.nan_span is None else (self.nan_span[0], span[1])
        self.nan_pending += n
        self.nan_electrodes.update(ELECTRODES[i] for i in np.flatnonzero(bad.any(axis=0)).tolist())

    def report_nan(self, now: float) -> None:
        """The ``nan`` status of what was noted, at most once a second (``now``: monotonic)."""
        if not self.nan_pending or now - self.nan_reported_at < _NAN_REPORT_EVERY_S:
            return
        start, end = self.nan_span or (None, None)
        detail = {"samples": self.nan_pending, "total": self.inlet.stats.nonfinite_samples}
        electrodes = [e for e in ELECTRODES if e in self.nan_electrodes]
        self.emit(
            self.message("nan", start_lsl=start, end_lsl=end, electrodes=electrodes, detail=detail)
        )
        self.nan_pending, self.nan_span, self.nan_electrodes = 0, None, set()
        self.nan_reported_at = now

    # --- leaving --------------------------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """The stream failed: report it and disconnect it (the scheduler drops it)."""
        log.error("stream %s failed: %s", self.stream_id, exc, exc_info=exc)
        self.error = exc
        self.active = False
        self.inlet.disconnect()
        self.emit(self.message("stopped", detail={"error": f"{type(exc).__name__}: {exc}"}))

    def detach(self, gone_s: float) -> None:
        """Lost for too long (discovery re-attaches it if it returns)."""
        log.info("detaching stream %s: lost for %.1f s", self.stream_id, gone_s)
        self.inlet.disconnect()  # stops its own search
        self.active = False
        self.detached = True
        self.lost_since = None
        detail = {"reason": f"detached: lost for {gone_s:.1f} s", "detached": True}
        self.emit(self.message("stopped", detail=detail))

    # --- output ---------------------------------------------------------------------------------

    def stamp(self, messages: list[Message]) -> list[Message]:
        """Artifact events become :class:`LiveArtifactEvent`, with the pull time.

        They are flagged ``interpolated`` when the source filled in samples between onset and
        offset, as ``eegstream detect`` flags them from the recording's column.
        """
        out: list[Message] = []
        for m in messages:
            if isinstance(m, ArtifactEvent):
                flags = m.flags
                if "interpolated" not in flags and any(
                    m.onset_lsl <= t <= m.offset_lsl for t in self.interpolated
                ):
                    flags = [*flags, "interpolated"]
                fields = m.model_dump(exclude={"flags"})
                m = LiveArtifactEvent(**fields, flags=flags, pulled_unix=self.pulled_unix)
            out.append(m)
        return out

    def message(
        self,
        status: str,
        *,
        start_lsl: float | None = None,
        end_lsl: float | None = None,
        electrodes: list[str] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> StatusMessage:
        """A status message of this stream, stamped now."""
        return StatusMessage(
            stream_id=self.stream_id,
            status=status,  # type: ignore[arg-type]
            start_lsl=start_lsl,
            end_lsl=end_lsl,
            electrodes=electrodes or [],
            detail=detail or {},
            unix_time=self.clock.unix(),
        )

    def emit(self, message: Message) -> None:
        """Hand one message to the sink."""
        self.sink(message)
        self.messages += 1

    def emit_all(self, messages: list[Message]) -> None:
        """Hand messages to the sink, in order."""
        for message in messages:
            self.emit(message)
