"""Signal checks of the due windows before classification (issue #9), vectorised over streams.

All are vectorised over the due windows (of every stream at once, :func:`due_batches`):

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from eegstream.settings import CLASSES, ELECTRODES, FS, N_BINS, PRE, WINDOW

if TYPE_CHECKING:
    from eegstream.detector.core import Detector

__all__ = [
    "ALIVE_UV",
    "DEAD_S",
    "FAULT_HOLDOFF_S",
    "FAULT_SETTLE_MIN_S",
    "FLAT_UV",
    "GAP_S",
    "WindowBatch",
    "blink_shaped",
    "due_batches",
    "horizontal_eye_movement",
    "veto_blinks",
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

#: Seconds after a sustained signal fault's last faulty sample in which windows are not
#: classified: the electrodes are still settling (on the real EPOC+ eyebrow recording the
#: headset's slow recovery swings of 100-600 uV last 1-2 s after the > 1,000 uV fault) and
#: look like blinks. A fault is sustained when one window holds at least FAULT_SETTLE_MIN_S of
#: faulty samples (the recording's faults last 0.2-0.9 s); a one-sample wireless spike is not.
FAULT_HOLDOFF_S: float = 1.5
FAULT_SETTLE_MIN_S: float = 0.1

FloatArray = npt.NDArray[np.float64]


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


def empty_batch(breaks: tuple[int, ...], n_model: int) -> WindowBatch:
    """A batch without windows (nothing due), carrying only the gaps passed (``breaks``)."""
    return WindowBatch(
        ends=np.zeros(0, dtype=np.int64),
        onset_times=np.zeros(0),
        end_times=np.zeros(0),
        classify=np.zeros(0, bool),
        nan=np.zeros(0, bool),
        fault=np.zeros(0, bool),
        fault_electrodes=np.zeros((0, n_model), bool),
        fault_span=np.zeros((0, 2)),
        fault_peak=np.zeros(0),
        dead=np.zeros((0, len(ELECTRODES)), bool),
        windows=np.zeros((0, len(ELECTRODES), WINDOW)),
        flat=np.zeros((0, n_model), bool),
        breaks=breaks,
        sideways=np.zeros(0, bool),
    )


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
        None if p[0].shape[0] else empty_batch(p[2], d.index.shape[0])
        for d, p in zip(dets, plans, strict=True)
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
