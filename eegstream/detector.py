"""Windows to events: the sliding-window detector shared by live streams and offline files.

Data flows ``ingest`` -> :meth:`Detector.due_windows` -> :meth:`Detector.classify` (features +
ONE engine call for every due window) -> :meth:`Detector.apply` -> :class:`EventBuilder`.
:meth:`Detector.process` chains the four for one stream; a multi-stream scheduler calls them
itself and concatenates the features of several streams into one engine call::

    batches = [d.due_windows() for d in detectors]          # after each d.ingest(...)
    probs = engine.infer(np.concatenate([d.featurize(b) for d, b in zip(detectors, batches)]))
    for d, b, p in zip(detectors, batches, np.split(probs, np.cumsum([b.m for b in batches])[:-1])):
        messages += d.apply(b, p)

Events: a run of windows of one label (hysteresis: starts at ``settings.threshold``, continues
down to ``RELEASE``) becomes an ``onset`` message after ``settings.min_windows`` windows and a
``final`` message when it ends; see :class:`EventBuilder` for the rules and :class:`Timing` for
how onset and offset are estimated.

Window geometry: a window is the 64 samples ``[end - 64, end)``; the first ends at sample 64 of a
segment (a segment restarts after every gap) and the next ones every ``settings.hop`` samples.
A window's *onset time* is the timestamp of its sample ``PRE`` (26): the model is trained with the
artifact onset at 0.2 s into the window.

Person baseline: with a bundle that carries a baseline prior, each window's features are
log-power relative to this stream's :class:`~eegstream.preprocess.PersonBaseline`, which
:meth:`Detector.apply` feeds with the classified windows (resting ones once warm). A batch never
spans more than two of its 1 s blocks, so the state a window meets does not depend on chunking;
:attr:`Detector.pending` says when windows are still due after a capped batch.

Signal checks before classification (issue #9), all vectorised over the due windows:

* **NaN/inf** on a model electrode: the window is skipped and counted (the inlet reports the
  samples themselves), and closes any open event.
* **Signal fault**: a sample with ``|x - baseline| > settings.fault_limit_uv`` on a model
  electrode that is not dead, *unless the window is blink-shaped*. Emotiv's rails (0 and
  ~8,400 uV, 14-bit ADC centred near 4,200 uV) lie more than 4,000 uV from the baseline, so
  saturation is caught by the same test. **Every blink is a blink**: forced blinks on a real
  EPOC+ reach 3,000-4,600 uV on F7/F8 with flat, saturated tops, physiological and exactly what
  a user must be told about, so a window whose over-limit excursion has a blink's frontal shape
  goes to the model instead (:func:`blink_shaped`): (1) nothing over the limit on T7/T8, (2) the
  largest deflection of the window is on a frontal electrode (AF3, F7, F8, AF4), larger than on
  FC5/FC6/F3/F4/T7/T8 (an eye's field falls off with distance from the eyes), and (3) both
  sides deflect the same way with comparable size (the larger of AF3/F7 and of AF4/F8 share
  their sign, the smaller at least ``BLINK_SYMMETRY`` (15 %) of the larger). A signal fault is
  what is not physiological: one-sided or temporal excursions (an eyebrow raise that shifts
  the headset by 3,000 uV on F7/FC5/T7), many electrodes railed at once without that frontal
  shape, steps; NaN and packet loss are handled separately. On the real epochs
  (``tests/test_real_epochs.py``) every forced blink passes and the headset shifts do not. Fault
  windows are not classified, close any open event, and each contiguous run of fault windows
  gives one ``signal_fault`` status (span = first..last faulty sample, electrodes involved),
  emitted when the run ends. The baseline is the running mean of the clean samples ingested so
  far until 30 s have been seen, then frozen: in the first 30 s a sample within a few uV of the
  limit can be judged differently depending on how the stream was chunked.
* **Horizontal eye movements** (after classification, in :meth:`Detector.apply`): a window whose
  slow F7 and F8 signals swing in opposite directions (:func:`horizontal_eye_movement`) has its
  blink probability moved to "nothing" (:func:`veto_blinks`): the features are power spectra,
  blind to polarity, and a look to the side otherwise reads as a blink.
* **Flat / dead electrodes**: a model electrode whose window std is below ``FLAT_UV`` gets
  standardised features 0 (the training mean; the model is trained with electrode dropout that
  does exactly this), so a flat line is never fed as if it were signal. Flat for ``DEAD_S``
  seconds makes it *dead*: a ``dead_electrode`` status lists the dead set whenever it changes;
  a dead electrode is also left out of the fault test, so one electrode stuck at a rail does not
  stop detection on the others. It is alive again once its window std exceeds ``ALIVE_UV``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.preprocess import Baseline, FeaturePipeline
from eegstream.settings import (
    ARTIFACT_LABELS,
    CLASSES,
    ELECTRODES,
    FS,
    N_BINS,
    PRE,
    WINDOW,
    Settings,
)
from eegstream.stream.ring import RingBuffer

log = logging.getLogger(__name__)

__all__ = [
    "ALIVE_UV",
    "CROSSING",
    "DEAD_S",
    "FLAT_UV",
    "GAP_S",
    "PREFIX_S",
    "RELEASE",
    "TIMING",
    "Detector",
    "EventBuilder",
    "Timing",
    "WindowBatch",
    "blink_shaped",
    "classify_together",
    "due_batches",
    "estimate_times",
    "featurize_batches",
    "lsl_clock",
]

#: Window std (uV) below which an electrode counts as flat (Emotiv's LSB is ~0.5 uV, EEG >> 1 uV).
FLAT_UV: float = 0.2
#: Window std (uV) above which a dead electrode counts as alive again (hysteresis against flapping).
ALIVE_UV: float = 1.0
#: Seconds an electrode must stay flat to be reported dead.
DEAD_S: float = 2.0
#: A timestamp step larger than this (or backwards) is a gap: no window spans it.
#: 4 samples at 128 Hz: missing 1-2 samples is bridged, file timestamps jitter by < 1 sample.
GAP_S: float = 4.0 / FS

#: Blink-shaped excursions (see the module docstring): the smaller side's frontal peak is at
#: least this fraction of the larger side's. Real EPOC+ forced blinks (MusEEG epochs): F7/F8
#: ratio 0.47-0.89 (10th-90th percentile), lowest 0.18 (F7 601 vs F8 3,243 uV ptp); every
#: headset shift of the EPOC+ eyebrow fixture stays a fault at 0.15 (T7 over the limit, or
#: FC5 larger than any frontal electrode), so the side test is the loosest of the three.
BLINK_SYMMETRY: float = 0.15
#: Frontal electrodes by side, and where over-limit samples rule a blink out.
BLINK_LEFT: tuple[str, ...] = ("AF3", "F7")
BLINK_RIGHT: tuple[str, ...] = ("AF4", "F8")
BLINK_NEVER_OVER: tuple[str, ...] = ("T7", "T8")

#: Horizontal eye movements (:func:`horizontal_eye_movement`): F7-F8 correlation below minus this,
#: both swinging by more than SIDEWAYS_UV, after a SMOOTH_N-sample moving average.
SIDEWAYS_CORR: float = 0.5
SIDEWAYS_UV: float = 60.0
SMOOTH_N: int = 8

#: Codes the event builder sees per window (artifact windows carry their label index >= 0).
NOTHING = -1
BARRIER = -2

FloatArray = npt.NDArray[np.float64]
Clock = Callable[[], tuple[float, float]]


def lsl_clock() -> tuple[float, float]:
    """``(LSL time, unix time)`` now: when a message is emitted on a live stream."""
    import pylsl  # liblsl is loaded only by callers that emit live messages

    return float(pylsl.local_clock()), time.time()


# --------------------------------------------------------------------------------------------
# Event builder: window probabilities -> onset/final events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How one label's onset and offset are read off its run of windows (seconds).

    ``onset = crossing + onset_shift`` where *crossing* is the time the label's probability
    crossed ``CROSSING`` on the run's rising edge, interpolated between the window before the run
    and its first window (sub-hop resolution; the first window's onset when the previous window
    is unknown). ``offset = last window's onset + offset_shift``, at least ``min_length`` after
    the onset (a run cut short by a fault or a gap says little about the artifact's length).
    The shifts are calibrated on simulated subjects the model never saw with
    :func:`eegstream.evaluate.suggest_timing`; ``tests/test_offline.py`` checks the result.
    """

    onset_shift: float
    offset_shift: float
    min_length: float = 0.1


#: Probability level whose rising-edge crossing marks an onset.
CROSSING: float = 0.5
#: Per-label timing (see :class:`Timing`), calibrated for ``eegstream/models/default`` (sha256 bd8e50f4...)
#: on 8 simulated subjects it never saw (seeds 1001-1008, 24 min): residual median |onset error|
#: 20 ms (blink) and 26 ms (jaw clench), bias ~0. Recalibrate after retraining the model.
TIMING: dict[str, Timing] = {
    "blink": Timing(onset_shift=0.117, offset_shift=-0.059),
    "jaw_clench": Timing(onset_shift=0.156, offset_shift=-0.041),
}
#: Seconds after a sustained signal fault's last faulty sample in which windows are not
#: classified: the electrodes are still settling (on the real EPOC+ eyebrow recording the
#: headset's slow recovery swings of 100-600 uV last 1-2 s after the > 1,000 uV fault) and
#: look like blinks. A fault is sustained when one window holds at least FAULT_SETTLE_MIN_S of
#: faulty samples (the recording's faults last 0.2-0.9 s); a one-sample wireless spike is not.
FAULT_HOLDOFF_S: float = 1.5
FAULT_SETTLE_MIN_S: float = 0.1
#: A run continues on windows whose label probability is at least this (hysteresis), so a brief
#: dip inside a long jaw clench does not split it into several events. Runs only *start* on
#: windows above ``settings.threshold``.
RELEASE: float = 0.3
#: Longest rising edge (s) looked back over when a run starts: windows just before the first
#: strong window whose probability is already >= RELEASE belong to the onset estimate.
PREFIX_S: float = 0.5


@dataclass
class _Run:
    """Consecutive windows of one label (the candidate event) and the rising edge before it."""

    label: int
    first_on: float
    lead: float  #: the label's probability in the window before the prefix (NaN: unknown)
    pre_p: FloatArray  #: the rising edge: windows just before the run with p >= RELEASE
    pre_on: FloatArray
    p: list[FloatArray] = field(default_factory=list)
    on: list[FloatArray] = field(default_factory=list)
    n: int = 0
    id: str | None = None  #: set once confirmed (onset message emitted)
    cut: bool = False  #: continues a run cut at max_duration: starts exactly at the cut

    def arrays(self, upto: int | None = None) -> tuple[FloatArray, FloatArray]:
        """Probability and onset time of the prefix and the run's (first ``upto``) windows."""
        p = np.concatenate([self.pre_p, *self.p])
        on = np.concatenate([self.pre_on, *self.on])
        if upto is None:
            return p, on
        k = self.pre_p.shape[0] + upto
        return p[:k], on[:k]


def estimate_times(
    label: str, p: FloatArray, on: FloatArray, lead: float, hop_s: float
) -> tuple[float, float]:
    """Onset and offset (source clock) of an artifact from its windows (rising edge + run).

    The onset is where the label's probability first crossed ``CROSSING`` and stayed above it
    for the next window too, interpolated between that window and the one before it; the offset
    follows the last window. Computed from all
    windows each time (never accumulated), so the result does not depend on how the stream was
    chunked. See :class:`Timing` and :data:`TIMING`.
    """
    tm = TIMING[label]
    above = p >= CROSSING
    # the first crossing that holds for two windows: one early window that fires and drops
    # again (a borderline fluctuation) does not drag the onset forward
    held = np.flatnonzero(above & np.append(above[1:], True))
    i = int(held[0]) if held.size else 0
    crossing = float(on[i])
    prev = float(p[i - 1]) if i > 0 else lead
    if math.isfinite(prev) and prev < CROSSING <= p[i]:
        crossing -= hop_s * (float(p[i]) - CROSSING) / (float(p[i]) - prev)
    onset = crossing + tm.onset_shift
    offset = max(float(on[-1]) + tm.offset_shift, onset + tm.min_length)
    return onset, offset


class EventBuilder:
    """Turns per-window class probabilities into artifact events; a small state machine.

    Rules (the values are :class:`~eegstream.settings.Settings` fields unless noted):

    * a window is *strong* for label ``argmax`` when its probability is ``>= threshold``;
      a run of that label starts on a strong window and continues over windows whose
      probability for the label stays ``>= RELEASE`` (hysteresis), until a window falls below,
      another label is strong, or a barrier (gap, NaN, signal fault) comes;
    * the run is *confirmed* (``phase="onset"`` message) once it has ``min_windows`` windows and
      its provisional duration is ``>= min_duration``; runs never confirmed are dropped;
    * a confirmed run ends with a ``phase="final"`` message (same id) when the run ends, or at
      ``max_duration`` (then the next window starts a new run right away);
    * refractory: a run of a label cannot start on a window whose onset time is within
      ``refractory`` s after the previous event of that label ended.

    Window codes are computed with numpy; the loop runs over runs, not windows.
    """

    def __init__(
        self,
        settings: Settings,
        stream_id: str,
        clock: Clock | None = None,
        *,
        release: float = RELEASE,
        first_id: int = 1,
    ) -> None:
        self.settings = settings
        self.stream_id = stream_id
        self.labels: tuple[str, ...] = ARTIFACT_LABELS
        #: per label: where a run starts (``settings.threshold`` unless a user profile set one)
        own = {str(k): v for k, v in settings.class_thresholds.items()}
        self.thresholds = np.array([own.get(lab, settings.threshold) for lab in self.labels])
        self.release = min(release, float(self.thresholds.min()))
        self.hop_s = settings.hop / FS
        self._prefix_n = max(1, int(math.ceil(PREFIX_S / self.hop_s)))
        self._clock = clock
        self._next_id = first_id
        self.n_onset = 0
        self.n_final = 0
        self.n_dropped = 0
        self.reset()

    def reset(self) -> None:
        """Forget the open run and the refractory state (a new stream)."""
        self._run: _Run | None = None
        self._last_end = np.full(len(self.labels), -np.inf)
        self._prev_code = BARRIER  #: code of the last window fed (hysteresis across calls)
        # the last windows fed (probabilities, onset times): rising edges reach back into them
        self._hist_p = np.zeros((0, len(self.labels) + 1))
        self._hist_on = np.zeros(0)
        self._last_end_time = 0.0  #: end time of the last window fed (detection time at close)

    @property
    def open(self) -> bool:
        """True while a run (confirmed or not) is in progress."""
        return self._run is not None

    def codes(self, probs: FloatArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Per-window label code (label index, ``NOTHING`` or ``BARRIER``) and *strong* mask.

        ``probs`` is ``(k, classes)`` with ``NaN`` rows for windows that were not classified.
        Hysteresis is applied per label: a weak window takes the label when the window before it
        (possibly from the previous call) carries that label.
        """
        k = probs.shape[0]
        na = len(self.labels)
        valid = np.asarray(~np.isnan(probs).any(axis=1))
        lab = np.where(valid[:, None], probs, -1.0).argmax(axis=1)
        top = probs[np.arange(k), lab]
        strong = valid & (lab < na) & (top >= self.thresholds[np.minimum(lab, na - 1)])
        codes = np.where(valid, NOTHING, BARRIER)
        codes[strong] = lab[strong]
        if self.release < self.thresholds.max():
            with np.errstate(invalid="ignore"):
                weak_all = probs[:, :na] >= self.release  # NaN rows: False
            for L in range(na):
                weak = weak_all[:, L] & ~(strong & (lab != L))
                if not (weak & ~strong).any():  # nothing for hysteresis to extend
                    continue
                pos = np.arange(k)
                starts = weak & ~np.concatenate(([False], weak[:-1]))
                block = np.maximum.accumulate(np.where(starts, pos, -1))
                seen = np.maximum.accumulate(np.where(strong & (lab == L), pos, -1))
                carried = (block == 0) & (self._prev_code == L)
                is_l = weak & ((seen >= block) | carried)
                codes[is_l & (codes == NOTHING)] = L
        return codes, strong

    def feed(
        self,
        probs: FloatArray,
        onset_times: FloatArray,
        end_times: FloatArray,
        unix_offset: float,
    ) -> list[tuple[int, ArtifactEvent]]:
        """Advance over ``k`` windows; return ``(window position, event)`` in emission order.

        ``probs`` ``(k, classes)`` (NaN rows: not classified, a barrier); times are the
        windows' onset (sample ``PRE``) and last-sample timestamps. A message's detection time
        is the emitting window's end (data clock) unless the builder was given a wall clock.
        """
        out: list[tuple[int, ArtifactEvent]] = []
        k = int(probs.shape[0])
        if k == 0:
            return out
        if self._run is None and self._quiet(probs, onset_times, end_times):
            return out
        s = self.settings
        codes, strong = self.codes(probs)
        base = self._hist_p.shape[0]
        all_p = np.concatenate([self._hist_p, probs])  # with the history, for rising edges
        all_on = np.concatenate([self._hist_on, onset_times])
        change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        bounds = np.concatenate(([0], change, [k])).tolist()
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            c = int(codes[a])
            if self._run is not None and self._run.label != c:
                out += self._end(end_times, unix_offset, emit_at=a, split_at=None)
            if c < 0:
                continue
            i = a
            while i < b:
                if self._run is None:  # a new run: on a strong window past the refractory time
                    ok = strong[i:b] & (onset_times[i:b] >= self._last_end[c] + s.refractory)
                    nz = np.flatnonzero(ok)
                    if nz.size == 0:
                        break
                    i += int(nz[0])
                    self._run = self._start(c, base + i, all_p, all_on)
                run = self._run
                lim = i + int(
                    np.searchsorted(onset_times[i:b], run.first_on + s.max_duration, side="left")
                )
                if lim > i:
                    out += self._extend(i, lim, probs[:, c], onset_times, end_times, unix_offset)
                if lim < b:  # max_duration reached: close here, continue with a new run
                    out += self._end(end_times, unix_offset, emit_at=lim, split_at=onset_times[lim])
                    self._run = self._start(c, base + lim, all_p, all_on, edge=False)
                i = lim
        self._prev_code = int(codes[-1])
        self._hist_p = all_p[-(self._prefix_n + 1) :].copy()
        self._hist_on = all_on[-(self._prefix_n + 1) :].copy()
        self._last_end_time = float(end_times[-1])
        return out

    def _quiet(self, probs: FloatArray, onset_times: FloatArray, end_times: FloatArray) -> bool:
        """Advance over windows that cannot start a run (most of them); False if one might.

        No artifact probability reaches even the release level, so every code is NOTHING (or
        BARRIER for an unclassified window) and no run is open: only the history moves on,
        exactly as :meth:`feed` would move it. Why: the scheduler feeds every stream every
        tick, and this spares it :meth:`codes`' dozen numpy calls per stream.
        """
        with np.errstate(invalid="ignore"):
            if (probs[:, : len(self.labels)] >= self.release).any():
                return False
        keep = self._prefix_n + 1
        if probs.shape[0] >= keep:
            self._hist_p = probs[-keep:].copy()
            self._hist_on = onset_times[-keep:].copy()
        else:
            self._hist_p = np.concatenate([self._hist_p, probs])[-keep:]
            self._hist_on = np.concatenate([self._hist_on, onset_times])[-keep:]
        self._prev_code = BARRIER if np.isnan(probs[-1]).any() else NOTHING
        self._last_end_time = float(end_times[-1])
        return True

    def close(self, unix_offset: float) -> list[ArtifactEvent]:
        """End the open run at a gap, a signal fault or the end of a file."""
        self._prev_code = BARRIER
        self._hist_p = self._hist_p[:0]
        self._hist_on = self._hist_on[:0]
        if self._run is None:
            return []
        t = np.array([self._last_end_time])
        return [e for _, e in self._end(t, unix_offset, emit_at=0, split_at=None)]

    # -- internals ----------------------------------------------------------------------------

    def _start(
        self, c: int, ci: int, all_p: FloatArray, all_on: FloatArray, *, edge: bool = True
    ) -> _Run:
        """A run of label ``c`` from window ``ci`` (index into history + this call's windows).

        With ``edge`` the rising edge is taken along: up to ``PREFIX_S`` of windows right before
        ``ci`` whose probability for ``c`` is already >= RELEASE, after the refractory time.
        """
        start = ci
        if edge:
            lo = max(0, ci - self._prefix_n)
            with np.errstate(invalid="ignore"):
                ok = (all_p[lo:ci, c] >= self.release) & (
                    all_on[lo:ci] >= self._last_end[c] + self.settings.refractory
                )
            bad = np.flatnonzero(~ok)
            start = lo + (int(bad[-1]) + 1 if bad.size else 0)
        lead = float(all_p[start - 1, c]) if start > 0 else math.nan
        return _Run(
            label=c,
            first_on=float(all_on[ci]),
            lead=lead,
            pre_p=all_p[start:ci, c].copy(),
            pre_on=all_on[start:ci].copy(),
            cut=not edge,
        )

    def _times(self, run: _Run, label: str, upto: int | None = None) -> tuple[float, float]:
        p, on = run.arrays(upto)
        onset, offset = estimate_times(label, p, on, run.lead, self.hop_s)
        if run.cut:
            onset = run.first_on
            offset = max(offset, onset + 1.0 / FS)
        return onset, offset

    def _extend(
        self,
        i: int,
        lim: int,
        p: FloatArray,
        on: FloatArray,
        end: FloatArray,
        unix_offset: float,
    ) -> list[tuple[int, ArtifactEvent]]:
        run = self._run
        if run is None:  # pragma: no cover - callers guarantee a run
            return []
        n0 = run.n
        run.p.append(p[i:lim])
        run.on.append(on[i:lim])
        run.n += lim - i
        if run.id is not None:
            return []
        s = self.settings
        label = self.labels[run.label]
        for j in range(max(i, i + s.min_windows - n0 - 1), lim):  # usually one iteration
            onset, offset = self._times(run, label, n0 + (j - i) + 1)
            if offset - onset + 1e-9 < s.min_duration:
                continue
            run.id = f"{self.stream_id}-{self._next_id}"
            self._next_id += 1
            self.n_onset += 1
            n = n0 + (j - i) + 1
            ev = self._event(run, "onset", n, onset, offset, float(end[j]), unix_offset)
            return [(j, ev)]
        return []

    def _end(
        self,
        end: FloatArray,
        unix_offset: float,
        *,
        emit_at: int,
        split_at: float | None,
    ) -> list[tuple[int, ArtifactEvent]]:
        run, self._run = self._run, None
        if run is None or run.n == 0:
            return []
        if run.id is None:
            self.n_dropped += 1
            return []
        onset, offset = self._times(run, self.labels[run.label])
        if split_at is not None:  # cut by max_duration: the next piece starts where this ends
            offset = float(split_at)
        self._last_end[run.label] = offset
        self.n_final += 1
        lsl = float(end[min(emit_at, end.shape[0] - 1)])
        return [(emit_at, self._event(run, "final", run.n, onset, offset, lsl, unix_offset))]

    def _event(
        self,
        run: _Run,
        phase: Literal["onset", "final"],
        n: int,
        onset: float,
        offset: float,
        lsl: float,
        unix_offset: float,
    ) -> ArtifactEvent:
        det_lsl, det_unix = (lsl, lsl + unix_offset) if self._clock is None else self._clock()
        peak = float(np.concatenate(run.p)[:n].max())  # the run's windows, not the rising edge
        return ArtifactEvent(
            id=run.id or "",
            seq=0,
            phase=phase,
            stream_id=self.stream_id,
            label=self.labels[run.label],  # type: ignore[arg-type]
            onset_lsl=onset,
            offset_lsl=offset,
            onset_unix=onset + unix_offset,
            offset_unix=offset + unix_offset,
            duration=offset - onset,
            confidence=min(1.0, max(0.0, peak)),
            n_windows=n,
            detected_lsl=det_lsl,
            detected_unix=det_unix,
        )


# --------------------------------------------------------------------------------------------
# Detector: ring buffer + window cursor + signal checks + event builder
# --------------------------------------------------------------------------------------------


def featurize_batches(
    features: FeaturePipeline, batches: Sequence[WindowBatch]
) -> npt.NDArray[np.float32]:
    """Model input of the classifiable windows of several batches (streams) in one pass.

    One log-power computation over all windows, flat electrodes marked NaN (-> features 0, the
    training mean, as electrode dropout taught), the log-power kept in each batch for its
    person baseline to learn from, then each window standardised relative to its stream's
    baseline location (``refs``).
    """
    parts = [b for b in batches if b.m]
    if not parts:
        return np.zeros((0, len(features.electrodes), N_BINS), np.float32)
    windows = parts[0].windows if len(parts) == 1 else np.concatenate([b.windows for b in parts])
    logp = features.log_power(windows)
    flat = np.concatenate([b.flat for b in parts]) if len(parts) > 1 else parts[0].flat
    if flat.any():
        logp[flat] = np.nan
    pos = 0
    for b in parts:
        if b.logp is not None:
            b.logp[...] = logp[pos : pos + b.m]
        pos += b.m
    refs = [b.refs for b in parts]
    if all(r is None for r in refs):
        return features.standardise(logp)
    if any(r is None for r in refs):
        raise EegstreamError("featurize_batches: batches mix detectors with and without baselines")
    ref = refs[0] if len(parts) == 1 else np.concatenate([r for r in refs if r is not None])
    return features.standardise(logp, ref)


def classify_together(
    engine: Engine, features: FeaturePipeline, batches: Sequence[WindowBatch]
) -> list[npt.NDArray[np.float32] | None]:
    """Probabilities for the classifiable windows of several streams in ONE engine call.

    One feature pass over the concatenated windows (:func:`featurize_batches`:
    flat electrodes set to 0, each stream relative to its own person baseline), one
    ``engine.infer``; the result is split back per batch
    (``None`` where a batch has nothing to classify), ready for :meth:`Detector.apply`.
    """
    sizes = [b.m for b in batches]
    if not any(sizes):
        return [None] * len(batches)
    feats = featurize_batches(features, batches)
    probs = engine.infer(feats)
    ends = np.cumsum(sizes).tolist()
    return [probs[e - m : e] if m else None for m, e in zip(sizes, ends, strict=True)]


def horizontal_eye_movement(windows: FloatArray) -> npt.NDArray[np.bool_]:
    """Which raw windows ``(m, 14, 64)`` hold a horizontal eye movement rather than a blink.

    The model sees power spectra, which carry no polarity, so a look to the side (F7 and F8
    swinging hundreds of uV in *opposite* directions: the horizontal EOG) has a blink's spectrum;
    a blink moves both sides the same way. A window is a horizontal eye movement when its slow
    F7 and F8 signals (demeaned, 62.5 ms moving average) are anti-correlated (below
    ``-SIDEWAYS_CORR``) and both swing by more than ``SIDEWAYS_UV`` (peak to peak). On the real
    EPOC+ epochs: look-left / look-right epochs F7-F8 correlation -0.64 / -0.48 (medians),
    forced blinks +0.97, tongue movements +0.73.
    """
    if windows.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    f7, f8 = ELECTRODES.index("F7"), ELECTRODES.index("F8")
    c = np.cumsum(windows[:, [f7, f8], :], axis=2)
    slow = (c[:, :, SMOOTH_N:] - c[:, :, :-SMOOTH_N]) / SMOOTH_N  # moving average, vectorised
    slow -= slow.mean(axis=2, keepdims=True)
    a, b = slow[:, 0], slow[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    swing = np.minimum(np.ptp(a, axis=1), np.ptp(b, axis=1))
    return np.asarray((corr < -SIDEWAYS_CORR) & (swing > SIDEWAYS_UV), dtype=bool)


def veto_blinks(probs: FloatArray, sideways: npt.NDArray[np.bool_]) -> FloatArray:
    """Move the blink probability of horizontal-eye-movement windows to "nothing"."""
    if not sideways.any():
        return probs
    out = probs.copy()
    blink, nothing = CLASSES.index("blink"), CLASSES.index("nothing")
    out[sideways, nothing] += out[sideways, blink]
    out[sideways, blink] = 0.0
    return out


def blink_shaped(
    peak: FloatArray, over: npt.NDArray[np.bool_], electrodes: tuple[str, ...]
) -> npt.NDArray[np.bool_]:
    """Which over-limit windows have a blink's frontal shape (the rule in the module docstring).

    ``peak`` ``(k, electrodes)`` is each electrode's signed deviation from the baseline at its
    largest ``|deviation|`` in the window (0 for dead electrodes), ``over`` ``(k, electrodes)``
    whether it crossed the fault limit. Vectorised over windows.
    """
    k = peak.shape[0]
    names = list(electrodes)
    need = (*BLINK_LEFT, *BLINK_RIGHT)
    if k == 0 or any(e not in names for e in need):
        return np.zeros(k, dtype=bool)
    idx = {e: names.index(e) for e in names}
    a = np.abs(peak)
    frontal = [idx[e] for e in need]
    others = [i for i in range(len(names)) if i not in frontal]
    never = [idx[e] for e in BLINK_NEVER_OVER if e in idx]
    ok = ~over[:, never].any(axis=1) if never else np.ones(k, dtype=bool)
    if others:
        ok &= a[:, frontal].max(axis=1) > a[:, others].max(axis=1)

    def side(group: tuple[str, ...]) -> FloatArray:
        cols = [idx[e] for e in group]
        pick = a[:, cols].argmax(axis=1)
        return np.asarray(peak[:, cols][np.arange(k), pick], dtype=np.float64)

    left, right = side(BLINK_LEFT), side(BLINK_RIGHT)
    big = np.maximum(np.abs(left), np.abs(right))
    small = np.minimum(np.abs(left), np.abs(right))
    ok &= (np.sign(left) == np.sign(right)) & (small >= BLINK_SYMMETRY * big)
    return np.asarray(ok, dtype=bool)


@dataclass
class _FaultSpan:
    """An open run of signal-fault windows."""

    start: float
    end: float
    electrodes: npt.NDArray[np.bool_]
    windows: int
    peak: float
    last: float


@dataclass(frozen=True)
class WindowBatch:
    """The windows that became due since the last call, with their signal checks.

    ``k`` windows in time order; ``windows`` holds only the ``m`` classifiable ones (no NaN, no
    fault) for the features. ``breaks`` are positions ``p`` in ``0..k`` where a gap lies
    before window ``p``.
    """

    ends: npt.NDArray[np.int64]  #: (k,) absolute index one past each window's last sample
    onset_times: FloatArray  #: (k,) timestamp of sample PRE (the onset the window stands for)
    end_times: FloatArray  #: (k,) timestamp of the last sample
    classify: npt.NDArray[np.bool_]  #: (k,) window goes to the model
    nan: npt.NDArray[np.bool_]  #: (k,) non-finite sample on a model electrode
    fault: npt.NDArray[np.bool_]  #: (k,) signal fault (and not NaN)
    fault_electrodes: npt.NDArray[np.bool_]  #: (k, model electrodes) involved in the fault
    fault_span: FloatArray  #: (k, 2) first and last faulty sample's timestamp
    fault_peak: FloatArray  #: (k,) largest |x - baseline| (uV) in the window
    dead: npt.NDArray[np.bool_]  #: (k, 14) dead at this window (with hysteresis)
    windows: FloatArray  #: (m, 14, 64) raw windows to classify
    flat: npt.NDArray[np.bool_]  #: (m, model electrodes) flat in the window: features -> 0
    #: (m, model electrodes, bins) the person-baseline location each window is relative to
    #: (None: the bundle has absolute features)
    refs: npt.NDArray[np.float32] | None = None
    #: (m, model electrodes, bins) filled by featurize: the log-power the baseline learns from
    logp: npt.NDArray[np.float32] | None = None
    breaks: tuple[int, ...] = ()
    #: (m,) horizontal eye movement in the window (:func:`horizontal_eye_movement`)
    sideways: npt.NDArray[np.bool_] | None = None

    @property
    def k(self) -> int:
        """Number of due windows."""
        return int(self.ends.shape[0])

    @property
    def m(self) -> int:
        """Number of windows to classify."""
        return int(self.windows.shape[0])


class Detector:
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
        prev = self._last_ts if self._last_ts is not None else t[0]
        dt = np.diff(t, prepend=prev)
        for i in np.flatnonzero((dt > GAP_S) | (dt < 0)).tolist():
            self._add_break(self.ring.total + i)
            log.info(
                "%s: gap of %.3f s before sample %d", self.stream_id, dt[i], self.ring.total + i
            )
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
                na = len(ARTIFACT_LABELS)
                resting = (probs.argmax(axis=1) == na) & (probs[:, :na].max(axis=1) < RELEASE)
                self.person.observe(batch.ends[batch.classify], batch.logp, resting & ~sideways)
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

    def _empty_batch(self, breaks: tuple[int, ...]) -> WindowBatch:
        nm = self.index.shape[0]
        return WindowBatch(
            ends=np.zeros(0, dtype=np.int64),
            onset_times=np.zeros(0),
            end_times=np.zeros(0),
            classify=np.zeros(0, bool),
            nan=np.zeros(0, bool),
            fault=np.zeros(0, bool),
            fault_electrodes=np.zeros((0, nm), bool),
            fault_span=np.zeros((0, 2)),
            fault_peak=np.zeros(0),
            dead=np.zeros((0, len(ELECTRODES)), bool),
            windows=np.zeros((0, len(ELECTRODES), WINDOW)),
            flat=np.zeros((0, nm), bool),
            breaks=breaks,
            sideways=np.zeros(0, bool),
        )

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

    def _close_all(self) -> list[Message]:
        """Close the open event and the open fault span (gap, flush)."""
        out: list[Message] = list(self.builder.close(self._unix_offset))
        if self._fault is not None:
            out.append(self._close_fault())
        return out


# --- the signal checks, vectorised over the windows of every stream ---------------------------


def due_batches(detectors: Sequence[Detector]) -> list[WindowBatch]:
    """Each detector's due windows (:meth:`Detector.due_windows`), checked in ONE numpy pass.

    Why: a scheduler serving many headsets ticks every few milliseconds with one or two new
    windows per stream; checked stream by stream, the fixed cost of ~40 small numpy calls per
    stream outweighed the inference itself. Here the windows of all streams are stacked and
    every check (NaN, flat and dead electrodes with their hysteresis, signal faults with the
    blink-shape exception and the settling time, horizontal eye movements) runs once over the
    stack, with each stream's own state (baseline, dead electrodes, last fault) broadcast to
    its windows; the results are split back per stream. Offline (one detector) takes the same
    code. Detectors sharing one bundle's features are checked together; others one by one.
    """
    dets = list(detectors)
    if len({(d.model_electrodes, d._dead_n) for d in dets}) > 1:
        return [due_batches([d])[0] for d in dets]
    plans = [d._due_ends() for d in dets]
    out: list[WindowBatch | None] = [
        None if p[0].shape[0] else d._empty_batch(p[2]) for d, p in zip(dets, plans, strict=True)
    ]
    live = [i for i, p in enumerate(plans) if p[0].shape[0]]
    if not live:
        return [b for b in out if b is not None]
    first = dets[live[0]]
    index, dead_n = first.index, first._dead_n
    ks = np.array([plans[i][0].shape[0] for i in live])
    bounds = np.concatenate(([0], np.cumsum(ks))).tolist()
    gathered = [dets[i].ring.gather(plans[i][0], WINDOW) for i in live]
    if len(live) == 1:
        (w, t), ends, seg = gathered[0], plans[live[0]][0], plans[live[0]][1]
    else:
        w = np.concatenate([g[0] for g in gathered])
        t = np.concatenate([g[1] for g in gathered])
        ends = np.concatenate([plans[i][0] for i in live])
        seg = np.concatenate([plans[i][1] for i in live])

    def each(values: npt.ArrayLike) -> npt.NDArray[Any]:
        """Per-stream values, one row per window."""
        return np.repeat(np.asarray(values), ks, axis=0)

    k = int(ends.shape[0])
    wm = w[:, index]  # (k, 10, 64)
    nan = np.asarray(~np.isfinite(wm).all(axis=(1, 2)))
    with np.errstate(invalid="ignore"):
        std = w.std(axis=2)  # (k, 14); NaN where a sample is NaN: neither flat nor alive
        flat_all = std < FLAT_UV
        alive = std > ALIVE_UV
    # dead electrodes: only windows with a flat electrode look back DEAD_S seconds
    flat_long = np.zeros((k, len(ELECTRODES)), dtype=bool)
    oldest = each([dets[i].ring.oldest for i in live])
    cand = np.flatnonzero(flat_all.any(axis=1) & (ends - dead_n >= np.maximum(seg, oldest)))
    if cand.size:
        owner = np.searchsorted(bounds, cand, side="right") - 1
        for g in np.unique(owner).tolist():
            rows = cand[owner == g]
            long_w, _ = dets[live[g]].ring.gather(ends[rows], dead_n)
            with np.errstate(invalid="ignore"):
                flat_long[rows] = long_w.std(axis=2) < FLAT_UV
    # hysteresis, vectorised: the state is the last event seen in the stream (1 dead, 2 alive),
    # else the state its previous batch ended in
    code = np.where(flat_long, 1, np.where(alive, 2, 0))
    last = np.maximum.accumulate(np.where(code > 0, np.arange(k)[:, None], -1), axis=0)
    own = last >= each(bounds[:-1])[:, None]
    seen_dead = np.take_along_axis(code, np.maximum(last, 0), axis=0) == 1
    dead = np.where(own, seen_dead, each(np.stack([dets[i]._dead for i in live])))
    dead_m = dead[:, index]
    base = each(np.stack([dets[i].baseline.value[index] for i in live]))
    limit = each([dets[i].settings.fault_limit_uv for i in live])
    signed = wm - base[:, :, None]  # (k, 10, 64)
    with np.errstate(invalid="ignore"):
        dev = np.abs(signed)
        over = np.asarray((dev > limit[:, None, None]) & ~dead_m[:, :, None])
    fault_e = np.asarray(over.any(axis=2))
    fault = fault_e.any(axis=1) & ~nan
    if fault.any():  # every blink is a blink: blink-shaped excursions are classified
        fi = np.flatnonzero(fault)
        at = dev[fi].argmax(axis=2)[:, :, None]
        peak_sd = np.take_along_axis(signed[fi], at, axis=2)[:, :, 0]
        peak_sd[dead_m[fi]] = 0.0
        fault[fi[blink_shaped(peak_sd, fault_e[fi], first.model_electrodes)]] = False
    span = np.zeros((k, 2))
    peak = np.zeros(k)
    sustained = np.zeros(k, dtype=bool)
    if fault.any():
        fs_ = np.flatnonzero(fault)
        samp = np.asarray(over[fs_].any(axis=1))  # (f, 64)
        first_i = samp.argmax(axis=1)
        last_i = WINDOW - 1 - samp[:, ::-1].argmax(axis=1)
        span[fs_, 0] = t[fs_, first_i]
        span[fs_, 1] = t[fs_, last_i]
        peak[fs_] = np.where(over[fs_], dev[fs_], 0.0).max(axis=(1, 2))
        sustained[fs_] = samp.sum(axis=1) >= FAULT_SETTLE_MIN_S * FS
    # windows starting within FAULT_HOLDOFF_S of a sustained fault's end: barrier too
    last_f = each([dets[i]._last_fault_t for i in live]).astype(np.float64)
    for g, i in enumerate(live):
        a, b = bounds[g], bounds[g + 1]
        if sustained[a:b].any():
            last_f[a:b] = np.maximum.accumulate(
                np.where(sustained[a:b], span[a:b, 1], dets[i]._last_fault_t)
            )
            dets[i]._last_fault_t = float(last_f[b - 1])
    settling = ~fault & (t[:, 0] - last_f <= FAULT_HOLDOFF_S)
    classify = ~nan & ~fault & ~settling
    flat = flat_all[:, index]
    windows = w[classify]
    sideways = horizontal_eye_movement(windows)
    m_bounds = np.concatenate(([0], np.cumsum(classify))).astype(np.intp)[bounds].tolist()
    nm = index.shape[0]
    for g, i in enumerate(live):
        a, b = bounds[g], bounds[g + 1]
        ma, mb = m_bounds[g], m_bounds[g + 1]
        d, cls = dets[i], classify[a:b]
        m = mb - ma
        out[i] = WindowBatch(
            ends=ends[a:b],
            onset_times=t[a:b, PRE],
            end_times=t[a:b, -1],
            classify=cls,
            nan=nan[a:b],
            fault=fault[a:b],
            fault_electrodes=fault_e[a:b],
            fault_span=span[a:b],
            fault_peak=peak[a:b],
            dead=dead[a:b],
            windows=windows[ma:mb],
            flat=flat[a:b][cls],
            refs=None if d.person is None else d.person.refs(ends[a:b][cls]),
            logp=np.empty((m, nm, N_BINS), np.float32),
            breaks=plans[i][2],
            sideways=sideways[ma:mb],
        )
    return [b for b in out if b is not None]
