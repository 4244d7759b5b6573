"""The timestamps of pulled chunks: gaps, source clock jumps, and resampling around gaps.

A gap is a timestamp jump, a counter jump, or a reconnection. A jump of the source's clock
(stamps that move against the arrival of their samples) is not a gap: the timeline is kept
continuous and liblsl's dejitter and monotonize restart. Other rates are resampled segment by
segment, the resampler restarting at each gap.

:class:`_Timeline` is mixed into :class:`~eegstream.stream.inlet.EEGInlet`: its methods read and
write the inlet's state (declared on the class; set by the inlet).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from typing import NamedTuple

import numpy as np
import pylsl
from pylsl.lib import lib as _lsl
from pylsl.util import handle_error

from eegstream.resample import Resampler
from eegstream.stream.channels import ChannelMap
from eegstream.stream.chunks import F64, Chunk, Gap, GapReason, InletEvent, InletStats
from eegstream.stream.resolve import StreamDescription

log = logging.getLogger(__name__)

_GAP_FACTOR = 1.5  #: a step longer than 1.5 sample periods is a gap
#: Sample periods a chunk's stamps may move against the arrival of its samples before it counts
#: as a clock jump (liblsl's dejitter smears a jump into steps of ~7 periods per chunk)
CLOCK_STEP = 4
#: Seconds per chunk the lag reference follows a slower or faster delivery: slow, so that a
#: backlog caught up or a clock move smeared by liblsl's dejitter stands out against it
_LAG_RISE_S, _LAG_FALL_S = 0.001, 0.002


class _Cut(NamedTuple):
    """Where a gap was found in a pulled chunk (stream rate) and what showed it."""

    pos: int
    reason: GapReason
    lost: int | None  #: samples a counter says were lost (stream rate), else None


class _Timeline:
    """Gaps, clock jumps and resampling of :class:`~eegstream.stream.inlet.EEGInlet` (a mixin)."""

    # the inlet's state that these methods use
    fs: float
    processing_flags: int
    stats: InletStats
    description: StreamDescription | None
    channels: ChannelMap | None
    _inlet: pylsl.StreamInlet | None
    _events: deque[InletEvent]
    _empty: Chunk
    _last_ts: float | None
    _last_counter: float | None
    _switched: bool
    _ts_offset: float
    _lag_ref: float | None
    _resync: bool
    _last_ts_src: float | None
    _carry: list[tuple[_Cut, float | None]]
    _source_fs: float
    _resampler: Resampler | None
    _steps: F64

    def _find_gaps(self, raw: F64, ts: F64, period: float) -> list[_Cut]:
        """Positions (in the pulled chunk) where samples are missing, with the evidence."""
        cuts: dict[int, _Cut] = {}
        last = self._last_ts_src
        if last is not None:
            step = float(ts[0]) - last
            if self._switched and not (0.5 * period < step < _GAP_FACTOR * period):
                cuts[0] = _Cut(0, "reconnect", None)
            elif step > _GAP_FACTOR * period:
                cuts[0] = _Cut(0, "timestamps", None)
        self._switched = False
        n = ts.shape[0]
        if n > 1:
            steps = self._steps[: n - 1]
            np.subtract(ts[1:], ts[:-1], out=steps)
            if steps.max() > _GAP_FACTOR * period:  # rare: only then find where
                for i in np.flatnonzero(steps > _GAP_FACTOR * period).tolist():
                    cuts.setdefault(i + 1, _Cut(i + 1, "timestamps", None))
        col = self.channels.counter if self.channels is not None else None
        if col is not None:  # e.g. EmotivPRO's COUNTER: lost packets even when stamps are smooth
            counter = raw[:, col]
            if self._last_counter is not None and counter[0] - self._last_counter > 1:
                cuts[0] = _Cut(0, "counter", int(counter[0] - self._last_counter) - 1)
            if n > 1:
                step_c = self._steps[: n - 1]
                np.subtract(counter[1:], counter[:-1], out=step_c)
                if step_c.max() > 1:
                    for i in np.flatnonzero(step_c > 1).tolist():
                        cuts[i + 1] = _Cut(i + 1, "counter", int(step_c[i]) - 1)
            self._last_counter = float(counter[-1])
        self._last_ts_src = float(ts[-1])
        return [cuts[i] for i in sorted(cuts)]

    # --- source clock jumps -----------------------------------------------------------------

    def _reset_clock(self) -> None:
        """A new connection: its stamps are taken as they come."""
        self._ts_offset = 0.0
        self._lag_ref = None
        self._resync = False

    def _check_clock(self, ts: F64, now: float, raw: F64) -> None:
        """Keep the timeline continuous when the source's clock jumps (``ts`` edited in place).

        Why: a clock set back by 5 s made liblsl's monotonize hold every stamp at the last one
        (detection fell 6 s behind, the ring got equal stamps); a clock set forward stamps
        samples in the future. Either way the samples keep arriving at their rate, so arrival
        time is the judge: a stamp not after the one before it (backwards), or a chunk whose
        stamps moved ``CLOCK_STEP`` periods or more beyond its samples' count while arrival did
        not move with them (a real gap does), is a jump. The rest of the chunk continues at the
        nominal rate, liblsl's dejitter and
        monotonize restart, and the next chunk's stamps are re-anchored to continue the
        timeline; a ``clock_jump`` event says by how much the source's clock moved.
        """
        if self._ts_offset:
            ts += self._ts_offset
        prev, period = self._last_ts_src, 1.0 / self._source_fs
        if prev is None or self._switched:  # the first chunk of a connection
            self._lag_ref = now - float(ts[-1])
            return
        if self._resync:  # the first stamps after liblsl's post-processing restarted
            delta = prev + period - float(ts[0])
            ts += delta
            self._ts_offset += delta
            self._resync = False
            self.stats.clock_jumps += 1
            self._events.append(
                InletEvent(
                    "clock_jump", prev, self.description,
                    f"the source's clock moved {-delta:+.3f} s; stamps re-anchored",
                    -delta,
                )
            )  # fmt: skip
            log.warning(
                "%s: the source's clock jumped by %+.3f s; its stamps now continue the timeline",
                self.description, -delta,
            )  # fmt: skip
            self._lag_ref = now - float(ts[-1])
            return
        n = ts.shape[0]
        steps = self._steps[:n]
        steps[0] = float(ts[0]) - prev
        np.subtract(ts[1:], ts[:-1], out=steps[1:])
        lag = now - float(ts[-1])
        ref = lag if self._lag_ref is None else self._lag_ref
        moved = lag - ref  # > 0: the stamps fell behind arrival (or this process is behind)
        advance = float(ts[-1]) - prev - n * period  # stamp time beyond the samples' own
        jump = -1
        if steps.min() < 0.25 * period:  # backwards, held by liblsl's monotonize
            jump = int(np.flatnonzero(steps < 0.25 * period)[0])
        elif (
            abs(advance) >= CLOCK_STEP * period
            and abs(advance + moved) < 0.5 * abs(advance)
            and not self._counter_skips(raw)
        ):
            # the stamps moved ahead (or fell behind) by what arrival did not: a clock move
            # (lost samples leave the lag as it was; a fast replay's stamps advance by the
            # samples' own count, however far ahead of the clock they run)
            jump = int(np.argmax(steps)) if advance > 0 else 0
        if jump < 0:
            self._lag_ref = ref + float(np.clip(moved, -_LAG_FALL_S, _LAG_RISE_S))
            return
        before = prev if jump == 0 else float(ts[jump - 1])
        ts[jump:] = before + period * np.arange(1, n - jump + 1)
        self._resync = True
        if self._inlet is not None and self.processing_flags & (
            pylsl.proc_dejitter | pylsl.proc_monotonize
        ):  # toggling makes liblsl drop its regression and its last stamp
            obj, flags = self._inlet.obj, self.processing_flags
            handle_error(_lsl.lsl_set_postprocessing(obj, pylsl.proc_clocksync & flags))
            handle_error(_lsl.lsl_set_postprocessing(obj, flags))

    def _counter_skips(self, raw: F64) -> bool:
        """True when the source's sample counter says samples were lost in this chunk."""
        col = self.channels.counter if self.channels is not None else None
        if col is None or self._last_counter is None:
            return False
        counter = raw[:, col]
        return bool(counter[-1] - self._last_counter > raw.shape[0])

    def _gap(self, cut: _Cut, index: int, before: float | None, times: F64) -> Gap:
        """The gap ``cut`` as seen at output position ``index`` (``before``: last sample's time)."""
        after = float(times[index])
        start = after if before is None else before
        if cut.lost is not None:  # counted by the source, in its samples
            missing = round(cut.lost * self.fs / self._source_fs)
        else:
            missing = max(0, round((after - start) * self.fs) - 1)
        return Gap(index, start, after, missing, cut.reason)

    def _resample(self, raw: F64, ts: F64, cuts: list[_Cut]) -> tuple[F64, F64, tuple[Gap, ...]]:
        """Map and resample segment by segment; at a gap the resampler is flushed and restarted.

        ``Resampler.process_timed`` removes the filter's group delay and interpolates the output
        timestamps, so events keep their true times at 256 Hz too.
        """
        channels, rs = self.channels, self._resampler
        if channels is None or rs is None:  # pragma: no cover - set by _adopt
            raise RuntimeError("no channel map or resampler")
        at = {c.pos: c for c in cuts}
        bounds = [0, *[i for i in at if i > 0], raw.shape[0]]
        parts: list[F64] = []
        stamps: list[F64] = []
        # gaps found, with the output position after them and the time before them
        pending: list[tuple[_Cut, int, float | None]] = [(c, 0, t) for c, t in self._carry]
        self._carry = []
        produced = 0
        last_time = self._last_ts

        def add(out: F64, times: F64) -> None:
            nonlocal produced, last_time
            if out.shape[0]:
                parts.append(out)
                stamps.append(times)
                produced += out.shape[0]
                last_time = float(times[-1])

        for a, b in itertools.pairwise(bounds):
            if a in at:
                add(*rs.flush_timed())  # the samples before the gap, then a fresh start
                pending.append((at[a], produced, last_time))
            x = np.take(raw[a:b], channels.electrodes, axis=1)
            if not channels.unity:  # units and absent electrodes: one multiply
                np.multiply(x, channels.scale, out=x)
            add(*rs.process_timed(x, ts[a:b]))
        if not parts:
            self._carry = [(c, t) for c, _, t in pending]
            return self._empty.data, self._empty.timestamps, ()
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        times_all = np.concatenate(stamps) if len(stamps) > 1 else stamps[0]
        gaps = []
        for cut, index, before in pending:
            if index >= times_all.shape[0]:  # its first output sample is still to come
                self._carry.append((cut, before))
            else:
                gaps.append(self._gap(cut, index, before, times_all))
        return data, times_all, tuple(gaps)
