"""The scheduler's work, without its thread: one tick across every active session.

A tick pulls every session without waiting (:meth:`StreamSession.pull`), then collects the
windows that became due on *all* of them and classifies them together
(:func:`~eegstream.detector.due_batches` + :func:`~eegstream.detector.classify_together`: one
``FeaturePipeline`` call over the concatenation and one ``engine.infer``), and hands each detector
its slice of the probabilities. About once a second :meth:`Ticker.housekeeping` measures rates
and backlogs, reports NaNs and detaches streams lost for too long. The thread that calls these
(``live/scheduler.py``) adds commands and the lifecycle; a test calls them directly.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np

from eegstream.detector import classify_together, due_batches
from eegstream.engines.base import Engine
from eegstream.live.ports import SYSTEM_CLOCK, Clock
from eegstream.live.session import RATE_SPAN, StreamSession
from eegstream.preprocess import FeaturePipeline

log = logging.getLogger(__name__)

__all__ = ["Ticker"]

#: Seconds between the per-stream rate measurements (and the detach check).
_RATE_EVERY_S = 1.0
#: Tick durations kept for the scheduler's p50/p99 in the status.
_TICKS_KEPT = 2000


class Ticker:
    """Active sessions, the batched tick across them and the scheduler's counters.

    ``detach_after``: seconds a lost session may stay lost before it is detached (``None``:
    never; only discovered streams are detached).
    """

    def __init__(
        self,
        engine: Engine,
        features: FeaturePipeline,
        *,
        detach_after: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.engine = engine
        self.features = features
        self.detach_after = detach_after
        self.clock = clock
        self.active: list[StreamSession] = []  #: pulled each tick; changed by the scheduler only
        self.reset()

    def reset(self) -> None:
        """The counters, in one place (constructor and the scheduler's start)."""
        self.started = self.clock.unix()
        self.ticks = 0
        self.engine_calls = 0
        self.windows = 0
        self.largest_batch = 0
        self.overloads = 0  #: overload episodes (a stream's backlog reached 1 s)
        self.tick_s: deque[float] = deque(maxlen=_TICKS_KEPT)
        self._rate: deque[tuple[float, int]] = deque(maxlen=RATE_SPAN + 1)

    # --- the active set ---------------------------------------------------------------------------

    def activate(self, s: StreamSession) -> None:
        """Pull ``s`` from the next tick on."""
        if not s.active:
            s.active = True
            self.active.append(s)

    def deactivate(self, s: StreamSession) -> None:
        """Stop pulling ``s``."""
        s.active = False
        if s in self.active:
            self.active.remove(s)

    def attach(self, s: StreamSession) -> None:
        """A stream handed over (``add``, discovery): pulled from now on."""
        s.detached = False
        s.error = None
        s.lost_since = None
        self.activate(s)
        log.info("attached stream %s (%s)", s.stream_id, s.inlet.description)

    def remove(self, s: StreamSession) -> None:
        """A stream removed for good: close its open event, report ``stopped``, disconnect."""
        if s.active:
            s.flush()
            s.emit(s.message("stopped", detail={"reason": "removed"}))
        self.deactivate(s)
        s.inlet.disconnect()

    def stop_all(self, *, report: bool) -> Exception | None:
        """The end: flush and report (``report``) every active stream, disconnect them all.

        Returns the first exception of the sink, if it failed (every stream is still closed).
        """
        failed: Exception | None = None
        for s in self.active:
            try:
                if report and failed is None:  # once the sink failed, it is not called again
                    s.flush()
                    s.emit(s.message("stopped"))
            except Exception as exc:
                failed = failed or exc
            finally:
                s.active = False
                s.inlet.disconnect()
        self.active = []
        return failed

    # --- the work -------------------------------------------------------------------------------

    def tick(self) -> None:
        """Pull every stream, then classify every due window of every stream in one call."""
        self.ticks += 1
        unix_offset = self.clock.unix() - self.clock.lsl()
        touched: list[StreamSession] = []
        for s in tuple(self.active):
            try:
                if s.pull(unix_offset):
                    touched.append(s)
            except Exception as exc:  # this stream only (e.g. it came back without AF4)
                self.fail(s, exc)
        while touched:  # more than one round only when a stream has a backlog over 1 s
            batches = due_batches([s.detector for s in touched])
            m = sum(b.m for b in batches)
            probs = classify_together(self.engine, self.features, batches)
            if m:
                self.engine_calls += 1
                self.windows += m
                self.largest_batch = max(self.largest_batch, m)
            for s, b, p in zip(touched, batches, probs, strict=True):
                s.emit_all(s.stamp(s.detector.apply(b, p)))
            touched = [s for s in touched if s.active and s.detector.pending]

    def housekeeping(self, now: float) -> None:
        """About once a second: rates, backlogs, NaN reports, detaching streams gone for good.

        ``now`` is the clock's monotonic time; calls less than a second apart do nothing.
        """
        if self._rate and now - self._rate[-1][0] < _RATE_EVERY_S:
            return
        self._rate.append((now, self.windows))
        for s in tuple(self.active):
            if s.housekeeping(now):
                self.overloads += 1
            gone = None if s.lost_since is None else now - s.lost_since
            if self.detach_after is not None and gone is not None and gone > self.detach_after:
                s.detach(gone)
                self.deactivate(s)

    def fail(self, s: StreamSession, exc: BaseException) -> None:
        """One stream failed: report it, disconnect it; the others carry on."""
        s.fail(exc)
        self.deactivate(s)

    # --- figures --------------------------------------------------------------------------------

    def figures(self, streams: list[StreamSession]) -> dict[str, Any]:
        """The scheduler part of the status (``streams``: every attached session)."""
        ticks = np.array(self.tick_s, dtype=np.float64)
        rate = list(self._rate)
        windows_per_s = None
        if len(rate) >= 2 and rate[-1][0] > rate[0][0]:
            windows_per_s = (rate[-1][1] - rate[0][1]) / (rate[-1][0] - rate[0][0])
        return {
            "ticks": self.ticks,
            "engine_calls": self.engine_calls,
            "windows": self.windows,
            "windows_per_s": windows_per_s,
            "mean_batch": self.windows / self.engine_calls if self.engine_calls else None,
            "largest_batch": self.largest_batch,
            "overloads": self.overloads,
            "overloaded": sum(1 for s in streams if s.active and s.overloaded),
            "tick_p50_ms": float(np.percentile(ticks, 50)) * 1e3 if ticks.size else None,
            "tick_p99_ms": float(np.percentile(ticks, 99)) * 1e3 if ticks.size else None,
        }
