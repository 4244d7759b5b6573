"""Status messages of one stream: ``signal_fault`` spans and ``dead_electrode`` changes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from eegstream.events import Message, StatusMessage
from eegstream.settings import ELECTRODES, FS, Settings

if TYPE_CHECKING:
    from eegstream.detector.checks import WindowBatch
    from eegstream.detector.events import Clock

log = logging.getLogger(__name__)

__all__ = ["StatusReports"]


@dataclass
class _FaultSpan:
    """An open run of signal-fault windows."""

    start: float
    end: float
    electrodes: npt.NDArray[np.bool_]
    windows: int
    peak: float
    last: float


class StatusReports:
    """The status half of a :class:`~eegstream.detector.Detector`: faults and dead electrodes.

    A mixin: the detector owns the state below (set in its ``_reset_state``) and calls
    :meth:`_faults` and :meth:`_dead_changes` from ``apply`` for each stretch of windows.
    """

    stream_id: str
    settings: Settings
    clock: Clock | None
    model_electrodes: tuple[str, ...]
    _unix_offset: float
    _fault: _FaultSpan | None  #: the open signal-fault span
    _dead: npt.NDArray[np.bool_]
    _dead_n: int
    _counts: dict[str, int]

    def _unix(self, lsl: float) -> float:
        return self.clock()[1] if self.clock is not None else lsl + self._unix_offset

    def _faults(self, batch: WindowBatch, a: int, b: int) -> list[tuple[int, Message]]:
        """One ``signal_fault`` status per contiguous run of fault windows (emitted at its end)."""
        f = batch.fault[a:b]
        if self._fault is None and not f.any():
            return []
        out: list[tuple[int, Message]] = []
        edges = np.flatnonzero(np.diff(np.concatenate(([0], f.astype(np.int8), [0]))))
        starts, stops = edges[::2].tolist(), edges[1::2].tolist()
        if self._fault is not None and (not starts or starts[0] != 0):
            out.append((0, self._close_fault(float(batch.end_times[a]))))
        for s0, s1 in zip(starts, stops, strict=True):
            sl = slice(a + s0, a + s1)
            electrodes = np.asarray(batch.fault_electrodes[sl].any(axis=0))
            peak = float(batch.fault_peak[sl].max())
            last = float(batch.end_times[a + s1 - 1])
            fo = self._fault
            if fo is None:
                self._fault = _FaultSpan(
                    start=float(batch.fault_span[a + s0, 0]),
                    end=float(batch.fault_span[a + s1 - 1, 1]),
                    electrodes=electrodes,
                    windows=s1 - s0,
                    peak=peak,
                    last=last,
                )
            else:  # continues the span left open by the previous batch
                fo.end = float(batch.fault_span[a + s1 - 1, 1])
                fo.electrodes = fo.electrodes | electrodes
                fo.windows += s1 - s0
                fo.peak = max(fo.peak, peak)
                fo.last = last
            if s1 < b - a:
                out.append((s1, self._close_fault(float(batch.end_times[a + s1]))))
        return out

    def _close_fault(self, at: float | None = None) -> StatusMessage:
        fo, self._fault = self._fault, None
        if fo is None:  # pragma: no cover - callers check
            raise RuntimeError("no open signal-fault span")
        self._counts["fault_spans"] += 1
        names = [e for e, x in zip(self.model_electrodes, fo.electrodes, strict=True) if x]
        log.warning(
            "%s: signal fault %.3f..%.3f on %s (peak %.0f uV)",
            self.stream_id,
            fo.start,
            fo.end,
            ",".join(names),
            fo.peak,
        )
        return StatusMessage(
            stream_id=self.stream_id,
            status="signal_fault",
            start_lsl=fo.start,
            end_lsl=fo.end,
            electrodes=names,
            detail={
                "windows": fo.windows,
                "peak_uv": round(fo.peak, 1),
                "limit_uv": self.settings.fault_limit_uv,
            },
            unix_time=self._unix(fo.last if at is None else at),
        )

    def _dead_changes(self, batch: WindowBatch, a: int, b: int) -> list[tuple[int, Message]]:
        """A status whenever the set of dead electrodes changes."""
        state = batch.dead[a:b]
        if not state.any() and not self._dead.any():
            return []
        prev = np.vstack((self._dead[None, :], state[:-1]))
        changed = np.flatnonzero((state != prev).any(axis=1))
        out: list[tuple[int, Message]] = []
        for j in changed.tolist():
            now, before = state[j], prev[j]
            new = [e for e, x in zip(ELECTRODES, now & ~before, strict=True) if x]
            back = [e for e, x in zip(ELECTRODES, before & ~now, strict=True) if x]
            if new:
                log.warning("%s: dead electrode(s) %s", self.stream_id, ",".join(new))
            if back:
                log.info("%s: electrode(s) %s alive again", self.stream_id, ",".join(back))
            end_t = float(batch.end_times[a + j])
            msg = StatusMessage(
                stream_id=self.stream_id,
                status="dead_electrode",
                start_lsl=end_t - (self._dead_n - 1) / FS if new else None,
                end_lsl=None if new else end_t,
                electrodes=[e for e, x in zip(ELECTRODES, now, strict=True) if x],
                detail={"new": new, "recovered": back},
                unix_time=self._unix(end_t),
            )
            out.append((j, msg))
        self._dead = state[-1].copy()
        return out
