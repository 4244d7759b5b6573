"""One stream's detector: ring buffer + window cursor + signal checks + event builder.

The ``signal_fault`` and ``dead_electrode`` statuses come from its
:class:`~eegstream.detector.status.StatusReports` half.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt

from eegstream.baseline import Baseline
from eegstream.detector.checks import (
    DEAD_S,
    GAP_S,
    WindowBatch,
    due_batches,
    horizontal_eye_movement,
    veto_blinks,
)
from eegstream.detector.classify import classify_together, featurize_batches
from eegstream.detector.events import RELEASE, Clock, EventBuilder, lsl_clock
from eegstream.detector.status import StatusReports, _FaultSpan
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.events import Message
from eegstream.preprocess import FeaturePipeline
from eegstream.settings import ARTIFACT_LABELS, CLASSES, ELECTRODES, FS, WINDOW, Settings
from eegstream.stream.ring import RingBuffer

log = logging.getLogger(__name__)

__all__ = ["Detector"]

FloatArray = npt.NDArray[np.float64]


class Detector(StatusReports):
    """One stream's detector: ``process(chunk) -> messages``, the same code live and offline.

    Parameters
    ----------
    engine
        Inference backend; every due window of a call goes to ONE ``engine.infer``.
    features
        The bundle's :class:`~eegstream.preprocess.FeaturePipeline` (raw windows -> model input).
    settings
        Thresholds and timing (``hop``, ``threshold``, ``min_windows``, ``refractory``, ...).
    stream_id
        Prefix of event ids (``f"{stream_id}-{n}"``) and the ``stream_id`` of every message.
    clock
        ``() -> (lsl, unix)`` stamped as the detection time of messages (default: the LSL and
        unix clocks now). ``None`` (offline) uses the data clock instead: the timestamp of the
        last sample of the window that decided, which makes offline output reproducible and gives
        the latency a live detector would have had.
    """

    def __init__(
        self,
        engine: Engine,
        features: FeaturePipeline,
        settings: Settings,
        stream_id: str,
        *,
        clock: Clock | None = lsl_clock,
    ) -> None:
        self.engine = engine
        self.features = features
        self.settings = settings
        self.stream_id = stream_id
        self.clock = clock
        self.index = np.asarray(features.index, dtype=np.intp)  # model electrodes in ELECTRODES
        self.model_electrodes = tuple(features.electrodes)
        self.ring = RingBuffer(len(ELECTRODES), int(math.ceil(settings.buffer_seconds * FS)))
        self.baseline = Baseline(len(ELECTRODES), FS)
        self.builder = EventBuilder(settings, stream_id, clock=clock)
        #: the person baseline of this stream's features (None: the bundle has absolute ones)
        self.person = features.person_baseline(settings.hop)
        self._dead_n = int(round(DEAD_S * FS))
        self._reset_state()

    def _reset_state(self) -> None:
        """All per-stream state in one place (constructor and :meth:`reset`)."""
        self.ring.reset()
        self.baseline.reset()
        self.builder.reset()
        if self.person is not None:
            self.person.reset()
        self._cursor = WINDOW  #: absolute end index of the next window
        self._segment_start = 0  #: first sample after the latest gap
        self._breaks: list[int] = []  #: gap positions not yet turned into window cursors
        self._last_ts: float | None = None
        self._unix_offset = 0.0
        self._fault: _FaultSpan | None = None  #: the open signal-fault span
        self._last_fault_t = -math.inf  #: latest faulty sample of a sustained fault
        self._dead = np.zeros(len(ELECTRODES), dtype=bool)
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "samples",
                "windows",
                "classified",
                "nan_windows",
                "fault_windows",
                "fault_spans",
                "dropped_windows",
                "gaps",
                "vetoed_blinks",
            ),
            0,
        )
        self.builder.n_onset = self.builder.n_final = self.builder.n_dropped = 0

    @property
    def stats(self) -> dict[str, int]:
        """Counters for ``/status`` and the metrics (windows, NaN/fault windows, events, ...)."""
        b = self.builder
        return {
            **self._counts,
            "dead_electrodes": int(self._dead.sum()),
            "events_confirmed": b.n_onset,
            "events": b.n_final,
            "runs_dropped": b.n_dropped,
        }

    def reset(self) -> None:
        """Forget the stream entirely (a different device on the same detector)."""
        self._reset_state()

    # -- the one-stream entry point ---------------------------------------------------------

    def process(
        self, data: npt.ArrayLike, timestamps: npt.ArrayLike, unix_offset: float = 0.0
    ) -> list[Message]:
        """Ingest ``data`` ``(n, 14)`` uV at 128 Hz with ``timestamps`` ``(n,)``; return messages.

        Messages come in time order: confirmed onsets, finals, ``signal_fault`` and
        ``dead_electrode`` statuses. ``unix_offset`` maps the timestamps' clock to unix time
        (``time.time() - pylsl.local_clock()`` live; 0 for files stamped in unix time).
        Chunks larger than half the ring buffer are processed in pieces, so passing a whole
        recording is fine.
        """
        x, t = self._validate(data, timestamps)
        step = max(WINDOW, self.ring.capacity // 2)
        out: list[Message] = []
        for a in range(0, max(1, x.shape[0]), step):
            self.ingest(x[a : a + step], t[a : a + step], unix_offset)
            out += self._drain()
        return out

    def flush(self) -> list[Message]:
        """End of input: close the open event and any open signal-fault span."""
        return self._drain() + self._close_all()

    def mark_gap(self, start_lsl: float, end_lsl: float) -> list[Message]:
        """A gap reported by the source: close the open event; no window will span the gap.

        Call it before ingesting the samples after the gap. Gaps already visible in the
        timestamps are found by :meth:`ingest` itself, so a report after the fact is a no-op.
        """
        if self._last_ts is not None and self._last_ts >= end_lsl:
            log.debug("gap %s..%s already seen in the timestamps", start_lsl, end_lsl)
            return []
        self._add_break(self.ring.total)
        return self._drain() + self._close_all()

    def _drain(self) -> list[Message]:
        """Classify and apply every due window, batch by batch."""
        out: list[Message] = []
        while True:
            batch = self.due_windows()
            out += self.apply(batch, self.classify(batch))
            if not self.pending:
                return out

    # -- stages, public for a multi-stream scheduler ------------------------------------------

    def ingest(
        self, data: npt.ArrayLike, timestamps: npt.ArrayLike, unix_offset: float = 0.0
    ) -> None:
        """Write samples into the ring buffer; note gaps; feed the signal-fault baseline."""
        x, t = self._validate(data, timestamps)
        n = int(x.shape[0])
        self._unix_offset = float(unix_offset)
        if n == 0:
            return
        prev = self._last_ts if self._last_ts is not None else float(t[0])
        steps = t[1:] - t[:-1]
        first = float(t[0]) - prev
        usual = 0 <= first <= GAP_S and (n == 1 or (steps.min() >= 0 and steps.max() <= GAP_S))
        if not usual:  # a gap or a step back somewhere (NaN stamps are neither, as before)
            self._note_gaps(np.concatenate(([first], steps)))
        self.ring.write(x, t)
        self._last_ts = float(t[-1])
        self._counts["samples"] += n
        if not self.baseline.ready:
            self._update_baseline(x)

    def due_windows(self) -> WindowBatch:
        """Windows complete since the last call (advances the cursor), with signal checks.

        With a person baseline a batch spans at most two of its blocks (``PersonBaseline``):
        later windows stay due for the next call (``process`` loops; live they are a tick away).
        The checks are :func:`due_batches`' (the scheduler's, for all streams at once).
        """
        return due_batches([self])[0]

    def _due_ends(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], tuple[int, ...]]:
        """Advance the cursor: due window ends, each one's segment start, and gap positions."""
        ends_parts: list[npt.NDArray[np.int64]] = []
        breaks: list[int] = []
        seg_parts: list[npt.NDArray[np.int64]] = []
        total = self.ring.total
        count = 0
        cap: int | None = None
        hop = self.settings.hop
        while True:
            limit = self._breaks[0] if self._breaks else total
            first_ok = self.ring.oldest + WINDOW
            if self._cursor < first_ok:  # fell behind the ring (scheduler ingested too much)
                skip = -(-(first_ok - self._cursor) // hop)
                self._counts["dropped_windows"] += skip
                log.warning("%s: %d windows fell out of the buffer", self.stream_id, skip)
                self._cursor += skip * hop
            if cap is None and self.person is not None:
                cap = self.person.max_end(self._cursor)
            hi = limit if cap is None else min(limit, cap)
            if self._cursor <= hi:
                e = np.arange(self._cursor, hi + 1, hop, dtype=np.int64)
                ends_parts.append(e)
                seg_parts.append(np.full(e.shape[0], self._segment_start, dtype=np.int64))
                count += e.shape[0]
                self._cursor = int(e[-1]) + hop
            if not self._breaks or (cap is not None and self._breaks[0] > cap):
                break
            b = self._breaks.pop(0)
            breaks.append(count)
            self._segment_start = b
            self._cursor = b + WINDOW
            self._counts["gaps"] += 1
        if len(ends_parts) == 1:
            return ends_parts[0], seg_parts[0], tuple(breaks)
        ends = np.concatenate(ends_parts) if ends_parts else np.zeros(0, dtype=np.int64)
        seg = np.concatenate(seg_parts) if seg_parts else np.zeros(0, dtype=np.int64)
        return ends, seg, tuple(breaks)

    @property
    def pending(self) -> bool:
        """True while complete windows are still due (a capped batch left some behind)."""
        limit = self._breaks[0] if self._breaks else self.ring.total
        return bool(self._breaks) or self._cursor <= limit

    def classify(self, batch: WindowBatch) -> npt.NDArray[np.float32] | None:
        """Class probabilities ``(m, 3)`` of the batch's classifiable windows in ONE engine call."""
        return classify_together(self.engine, self.features, [batch])[0]

    def featurize(self, batch: WindowBatch) -> npt.NDArray[np.float32]:
        """Model input ``(m, 10, 33)``: the shared feature path, flat electrodes set to 0."""
        return featurize_batches(self.features, [batch])

    def apply(self, batch: WindowBatch, probs: npt.NDArray[np.floating] | None) -> list[Message]:
        """Feed the batch's decisions (``probs`` of its ``m`` classifiable windows) to the builder."""
        k = batch.k
        if k == 0:
            out: list[Message] = []
            for _ in batch.breaks:
                out += self._close_all()
            return out
        n_classes = len(ARTIFACT_LABELS) + 1
        if probs is not None and self._apply_idle(batch, probs):
            return []
        p = np.full((k, n_classes), np.nan)  # NaN rows: not classified (NaN, fault) = barrier
        if batch.m:
            if probs is None or probs.shape != (batch.m, n_classes):
                raise EegstreamError(
                    f"Detector.apply: expected probabilities ({batch.m}, {n_classes}) for the "
                    f"batch's classifiable windows, got {None if probs is None else probs.shape}; "
                    "pass classify(batch)'s result"
                )
            sideways = (
                horizontal_eye_movement(batch.windows) if batch.sideways is None else batch.sideways
            )
            was_blink = probs[:, CLASSES.index("blink")] >= RELEASE
            probs = veto_blinks(np.asarray(probs, dtype=np.float64), sideways)
            p[batch.classify] = probs
            self._counts["vetoed_blinks"] += int((sideways & was_blink).sum())
            if self.person is not None and batch.logp is not None:
                resting = _resting(probs) & ~sideways
                self.person.observe(batch.ends[batch.classify], batch.logp, resting)
        self._counts["windows"] += k
        self._counts["classified"] += batch.m
        self._counts["nan_windows"] += int(batch.nan.sum())
        self._counts["fault_windows"] += int(batch.fault.sum())
        uo = self._unix_offset
        out_idx: list[tuple[int, int, Message]] = []
        parts = [0, *batch.breaks, k]
        for n, (a, b) in enumerate(zip(parts[:-1], parts[1:], strict=True)):
            if n > 0:  # a gap lies before window a
                out_idx += [(a, 0, m) for m in self._close_all()]
            if b <= a:
                continue
            sl = slice(a, b)
            for j, ev in self.builder.feed(p[sl], batch.onset_times[sl], batch.end_times[sl], uo):
                out_idx.append((a + j, 1, ev))
            out_idx += [(a + j, 0, m) for j, m in self._faults(batch, a, b)]
            out_idx += [(a + j, 2, m) for j, m in self._dead_changes(batch, a, b)]
        out_idx.sort(key=lambda r: (r[0], r[1]))
        return [m for _, _, m in out_idx]

    def _apply_idle(self, batch: WindowBatch, probs: npt.NDArray[np.floating]) -> bool:
        """:meth:`apply` for the usual window, in a few calls; False (nothing done) otherwise.

        Usual: every window classified, no gap, no signal fault or dead electrode before or
        in the batch, no horizontal eye movement, no run open and no window strong enough to
        start one (:meth:`EventBuilder.advance_idle`). Then no message can come out, and only
        the counters, the person baseline and the builder's history move, exactly as the
        general path moves them. Why: live, each stream brings one window per tick, and the
        general path's ~40 numpy calls per stream were a quarter of the scheduler's time at
        128 headsets.
        """
        m = batch.m
        if (
            batch.breaks
            or m != batch.k
            or probs.shape != (m, len(ARTIFACT_LABELS) + 1)
            or self._fault is not None
            or batch.sideways is None
            or batch.sideways.any()
            or self._dead.any()
            or batch.dead.any()
        ):
            return False
        p = np.asarray(probs, dtype=np.float64)
        if not self.builder.advance_idle(p, batch.onset_times, batch.end_times):
            return False
        if self.person is not None and batch.logp is not None:
            self.person.observe(batch.ends, batch.logp, _resting(p))
        counts = self._counts
        counts["windows"] += m
        counts["classified"] += m
        return True

    # -- internals ----------------------------------------------------------------------------

    def _validate(
        self, data: npt.ArrayLike, timestamps: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        x = np.asarray(data, dtype=np.float64)
        t = np.asarray(timestamps, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(ELECTRODES) or t.shape != (x.shape[0],):
            raise EegstreamError(
                f"Detector.process: data must be (n, {len(ELECTRODES)}) in the order "
                f"{', '.join(ELECTRODES)} with n timestamps; got data {x.shape} and timestamps "
                f"{t.shape}; map the source's channels by label first"
            )
        return x, t

    def _note_gaps(self, dt: FloatArray) -> None:
        """Breaks before the samples of the chunk being ingested whose step ``dt`` is a gap."""
        for i in np.flatnonzero((dt > GAP_S) | (dt < 0)).tolist():
            self._add_break(self.ring.total + i)
            log.info(
                "%s: gap of %.3f s before sample %d", self.stream_id, dt[i], self.ring.total + i
            )

    def _add_break(self, index: int) -> None:
        if index <= self._segment_start and not self._breaks:
            return
        if self._breaks and self._breaks[-1] == index:
            return
        self._breaks.append(index)

    def _update_baseline(self, x: FloatArray) -> None:
        """Feed the baseline, leaving out samples that are themselves faults (spikes, rails)."""
        ref = self.baseline.value if self.baseline.seen else np.median(x, axis=0)
        with np.errstate(invalid="ignore"):
            bad = np.abs(x - ref) > self.settings.fault_limit_uv
        self.baseline.update(np.where(bad, np.nan, x) if bad.any() else x)

    def _close_all(self) -> list[Message]:
        """Close the open event and the open fault span (gap, flush)."""
        out: list[Message] = list(self.builder.close(self._unix_offset))
        if self._fault is not None:
            out.append(self._close_fault())
        return out


def _resting(probs: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Windows the person baseline may learn from: "nothing" wins, no artifact reaches RELEASE.

    One rule for both paths of :meth:`Detector.apply`; the eye-movement veto is the caller's.
    """
    na = len(ARTIFACT_LABELS)
    return np.asarray((probs.argmax(axis=1) == na) & (probs[:, :na].max(axis=1) < RELEASE))
