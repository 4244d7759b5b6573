"""The thread that runs one live stream: inlet -> detector -> sink, with status reporting.

:class:`StreamPipeline` owns a thread and nothing else: the inlet pulls and checks samples, the
detector (ring buffer, windows, events) turns them into messages, and every message (artifact
events and :class:`~eegstream.events.StatusMessage` for connected / gap / lost / recovered / nan /
stopped) goes to one ``sink`` callable, in order. An exception in the thread is logged, stored,
shown by :meth:`StreamPipeline.status` and raised again by the next :meth:`start`,
:meth:`check` or :meth:`stop`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pylsl

from eegstream.events import Message, StatusMessage
from eegstream.settings import ELECTRODES, FS
from eegstream.stream.inlet import Chunk, EEGInlet, InletEvent
from eegstream.stream.ring import RingBuffer

log = logging.getLogger(__name__)

Sink = Callable[[Message], None]

#: Seconds between samples of the arrival-rate and window-rate measurements.
_RATE_EVERY_S = 1.0
#: Measurements kept: rates are averaged over about this many seconds.
_RATE_SPAN = 10


class DetectorLike(Protocol):
    """What the pipeline needs from :class:`eegstream.detector.Detector`."""

    stream_id: str
    ring: RingBuffer

    @property
    def stats(self) -> dict[str, int]:
        """Counters (``windows``, ``nan_windows``, ``dropped_windows``, ``events``, ...)."""
        ...

    def process(
        self, data: npt.NDArray[np.float64], timestamps: npt.NDArray[np.float64], unix_offset: float
    ) -> list[Message]:
        """Ingest samples; return the messages they complete."""
        ...

    def mark_gap(self, start_lsl: float, end_lsl: float) -> list[Message]:
        """Close what is open: the next samples come after a gap."""
        ...

    def flush(self) -> list[Message]:
        """End of input: close the open event."""
        ...


class StreamPipeline:
    """Pulls one stream in a background thread and feeds its detector; reports to ``sink``.

    Parameters
    ----------
    inlet
        The stream (connected by :meth:`start` if it is not yet).
    detector
        The stream's detector, or None to only buffer the samples (plumbing, dashboards).
    sink
        Called from the pipeline thread with every message, in order; it must not block long.
    stream_id
        Id carried by status messages (default: the detector's).
    buffer_seconds
        Size of the ring buffer used when there is no detector (the detector has its own).
    poll_timeout
        Longest wait for data in one pull (bounds how quickly :meth:`stop` returns).
    nan_report_interval
        At most one ``nan`` status per this many seconds (counts accumulate in between).
    """

    def __init__(
        self,
        inlet: EEGInlet,
        detector: DetectorLike | None,
        sink: Sink,
        *,
        stream_id: str | None = None,
        buffer_seconds: float = 60.0,
        poll_timeout: float = 0.05,
        nan_report_interval: float = 1.0,
    ) -> None:
        self.inlet = inlet
        self.detector = detector
        self.sink = sink
        name, _, source_id = inlet.query
        self.stream_id = stream_id or (
            detector.stream_id if detector is not None else source_id or name or "eeg"
        )
        self.ring = (
            detector.ring
            if detector is not None
            else RingBuffer(len(ELECTRODES), int(math.ceil(buffer_seconds * FS)))
        )
        self.poll_timeout = poll_timeout
        self.nan_report_interval = nan_report_interval
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # status counters
        self._ring_lock = threading.Lock()  # ring writes vs latest()
        self._error: BaseException | None = None
        self._reset()

    def _reset(self) -> None:
        """Per-run state, in one place (constructor and :meth:`start`)."""
        self._started = time.time()
        self._last_ts: float | None = None
        self._last_pull = 0.0
        self._backlog = 0
        self._messages = 0
        self._rates: deque[tuple[float, int, int]] = deque(maxlen=_RATE_SPAN + 1)
        self._nan_pending = 0
        self._nan_span: tuple[float, float] | None = None
        self._nan_electrodes: set[str] = set()
        self._nan_reported_at = -math.inf
        self._last_gap: dict[str, Any] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> StreamPipeline:
        """Connect the inlet (raising resolve/channel errors here) and start the thread.

        Calling it while running does nothing; after a failure it raises that failure first.
        """
        if self.running:
            return self
        self.check()
        self.inlet.connect()
        self._reset()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"eegstream-pipeline-{self.stream_id}"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, close the open event (flush), report ``stopped``, disconnect.

        Safe to call twice; raises the thread's exception, if it died of one.
        """
        was_running = self._thread is not None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if was_running:
            try:
                if self._error is None:  # a failed thread has reported "stopped" itself
                    if self.detector is not None:
                        self._emit_all(self.detector.flush())
                    self._emit(self._status("stopped"))
            except Exception as exc:  # the sink failed: surface it like a thread failure
                self._error = self._error or exc
            finally:
                self.inlet.disconnect()
        self.check()

    def check(self) -> None:
        """Raise (once) the exception that stopped the thread, if any."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the thread (kept until :meth:`check` raises it)."""
        return self._error

    def __enter__(self) -> StreamPipeline:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    # --- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot for ``/status`` and ``/health`` (safe from any thread)."""
        with self._lock:
            rates = list(self._rates)
            last_ts, backlog, last_gap = self._last_ts, self._backlog, self._last_gap
            messages = self._messages
        inlet, det = self.inlet, self.detector
        stats = inlet.stats
        dstats = det.stats if det is not None else {}
        measured = windows_rate = None
        if len(rates) >= 2 and rates[-1][0] > rates[0][0]:
            dt = rates[-1][0] - rates[0][0]
            measured = (rates[-1][1] - rates[0][1]) / dt
            windows_rate = (rates[-1][2] - rates[0][2]) / dt
        ring = self.ring
        error = self._error
        return {
            "stream_id": self.stream_id,
            "state": "failed" if error is not None else inlet.state if self.running else "stopped",
            "running": self.running,
            "stream": inlet.description.as_dict() if inlet.description is not None else None,
            "nominal_fs": inlet.source_fs,
            "fs": inlet.fs,
            "measured_fs": measured,
            "buffer_fill": (ring.total - ring.oldest) / ring.capacity,
            "buffer_seconds": ring.capacity / FS,
            "lag_s": pylsl.local_clock() - last_ts if last_ts is not None else None,
            "backlog_samples": backlog,
            "samples": stats.samples,
            "windows": dstats.get("windows", 0),
            "windows_per_s": windows_rate if det is not None else None,
            "dropped_windows": dstats.get("dropped_windows", 0),
            "nan_samples": stats.nonfinite_samples,
            "nan_windows": dstats.get("nan_windows", 0),
            "gaps": stats.gaps,
            "missing_samples": stats.missing_samples,
            "last_gap": last_gap,
            "lost": stats.lost,
            "reconnects": stats.reconnects,
            "messages": messages,
            "events": dstats.get("events", 0),
            "last_error": None if error is None else f"{type(error).__name__}: {error}",
            "uptime_s": time.time() - self._started,
        }

    def latest(self, seconds: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Copies of the newest ``seconds`` of samples ``(n, 14)`` and timestamps (any thread)."""
        with self._ring_lock:  # gather() copies: the arrays stay valid after the lock
            return self.ring.latest(max(0, int(round(seconds * FS))))

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self.inlet.pull(self.poll_timeout)
                for event in self.inlet.events():
                    self._on_event(event)
                if chunk.n:
                    self._on_chunk(chunk)
                self._housekeeping()
        except Exception as exc:  # stored, shown in status(), raised by check()/stop()
            log.exception("pipeline of stream %s failed", self.stream_id)
            self._error = exc
            try:
                self._emit(
                    self._status("stopped", detail={"error": f"{type(exc).__name__}: {exc}"})
                )
            except Exception:  # the sink itself may be what failed
                log.debug("could not report the failure of %s", self.stream_id, exc_info=True)

    def _on_event(self, event: InletEvent) -> None:
        detail: dict[str, Any] = {"reason": event.detail} if event.detail else {}
        if event.stream is not None:
            detail["stream"] = str(event.stream)
        if event.kind == "lost" and self.detector is not None:
            self._emit_all(self.detector.flush())  # close the open event now, not after recovery
        start = event.time_lsl if event.kind == "lost" else None
        self._emit(self._status(event.kind, start_lsl=start, detail=detail))

    def _on_chunk(self, chunk: Chunk) -> None:
        det = self.detector
        data, ts = chunk.data, chunk.timestamps
        unix_offset = time.time() - pylsl.local_clock()
        out: list[Message] = []
        prev = 0
        for gap in chunk.gaps:
            if det is not None and gap.index > prev:
                with self._ring_lock:
                    out += det.process(data[prev : gap.index], ts[prev : gap.index], unix_offset)
            if det is not None and gap.reason != "timestamps":
                # The detector finds timestamp gaps itself; counter jumps and reconnections
                # may not show in (dejittered) timestamps, so they are marked explicitly.
                with self._ring_lock:
                    out += det.mark_gap(gap.start_lsl, gap.end_lsl)
            prev = gap.index
            info = {
                "missing_samples": gap.missing,
                "seconds": round(gap.end_lsl - gap.start_lsl, 6),
                "reason": gap.reason,
            }
            out.append(
                self._status("gap", start_lsl=gap.start_lsl, end_lsl=gap.end_lsl, detail=info)
            )
            with self._lock:
                self._last_gap = {"start_lsl": gap.start_lsl, "end_lsl": gap.end_lsl, **info}
        with self._ring_lock:
            if det is not None:
                out += det.process(data[prev:], ts[prev:], unix_offset)
            else:
                self.ring.write(data, ts)
        if chunk.nonfinite:
            self._note_nan(data, ts, chunk.nonfinite)
        with self._lock:
            self._last_ts = float(ts[-1])
        self._emit_all(out)

    def _note_nan(self, data: npt.NDArray[np.float64], ts: npt.NDArray[np.float64], n: int) -> None:
        """Accumulate non-finite samples for the next (rate-limited) ``nan`` status."""
        bad = ~np.isfinite(data)  # only on chunks that have some: rare
        rows = np.flatnonzero(bad.any(axis=1))
        span = (float(ts[rows[0]]), float(ts[rows[-1]]))
        self._nan_span = span if self._nan_span is None else (self._nan_span[0], span[1])
        self._nan_pending += n
        hit = np.flatnonzero(bad.any(axis=0)).tolist()
        self._nan_electrodes.update(ELECTRODES[i] for i in hit)

    def _housekeeping(self) -> None:
        """Rate-limited ``nan`` status and the rate measurements (about once a second)."""
        now = time.monotonic()
        if self._nan_pending and now - self._nan_reported_at >= self.nan_report_interval:
            start, end = self._nan_span or (None, None)
            self._emit(
                self._status(
                    "nan",
                    start_lsl=start,
                    end_lsl=end,
                    electrodes=[e for e in ELECTRODES if e in self._nan_electrodes],
                    detail={
                        "samples": self._nan_pending,
                        "total": self.inlet.stats.nonfinite_samples,
                    },
                )
            )
            self._nan_pending, self._nan_span, self._nan_electrodes = 0, None, set()
            self._nan_reported_at = now
        if not self._rates or now - self._rates[-1][0] >= _RATE_EVERY_S:
            windows = self.detector.stats.get("windows", 0) if self.detector is not None else 0
            backlog = self.inlet.backlog()
            with self._lock:
                self._rates.append((now, self.inlet.stats.samples, windows))
                self._backlog = backlog

    # --- output ---------------------------------------------------------------------------------

    def _status(
        self,
        status: str,
        *,
        start_lsl: float | None = None,
        end_lsl: float | None = None,
        electrodes: list[str] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> StatusMessage:
        return StatusMessage(
            stream_id=self.stream_id,
            status=status,  # type: ignore[arg-type]
            start_lsl=start_lsl,
            end_lsl=end_lsl,
            electrodes=electrodes or [],
            detail=detail or {},
            unix_time=time.time(),
        )

    def _emit(self, message: Message) -> None:
        self.sink(message)
        with self._lock:
            self._messages += 1

    def _emit_all(self, messages: list[Message]) -> None:
        for message in messages:
            self._emit(message)
