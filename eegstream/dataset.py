"""Training windows from marker-labelled recordings: where to cut, what label, how to augment.

The labels follow what the streaming detector sees. It scores a 64-sample window every 8 samples
(hop 8) with the candidate onset at index 26 (the window's *slot*) and confirms an event after
two consecutive windows agree, so training must make several neighbouring windows per artifact
say so -- not just the one window locked exactly to the marker.

For an artifact with onset ``t0`` and length ``D`` samples, a window whose slot is ``t0 + d``:

* is the artifact when ``-E <= d <= max(L, D - tail)`` with ``E = onset_early = 8`` and
  ``L = onset_late = 12`` samples: 21 slots, so at hop 8 two or three windows around every onset
  (the detector needs 2). Early windows are cut shorter than late ones because a window starting
  12 samples early holds only the rising edge of a slow blink (at ``d = -12`` a first model
  trained with a symmetric +-12 made 90 % of its blink errors at ``d <= -8``). For long jaw
  clenches every window that still lies mostly inside the clench counts (``tail = 26``: at least
  ~40 of its 64 samples), so the detector keeps the event alive for the clench's whole length;
* is "nothing" when it holds at most the first ``lead_in = 12`` samples (0.1 s) of an artifact
  and touches no other artifact span widened by ``margin``. Besides midpoints between
  consecutive markers (the original method), random clean windows (together twice as many as
  the artifact windows) and windows over known unlabelled confounders (saccades, pops, talking;
  the simulator's ground truth), each onset gets ``pre_onset_copies`` windows that end just
  before or just after it (``-42 <= d <= -26``), so the model learns where an artifact starts;
* is excluded from training otherwise: windows that hold a little more than the very start, or
  the tail, of an artifact are ambiguous, and labelling them either way would teach the model to
  contradict itself one hop away. The excluded zone before an onset is only ``-26 < d < -8``
  (two hops): left wider, the model's output there was erratic enough for a slightly
  resampled recording to move a detected onset by a hop.

Markers without a duration (EmotivPRO's default) get only the onset range ``[-E, L]`` as positives and
a conservative extent (``unknown_extent_s``) for the exclusion zone.

Everything is vectorised: window starts are computed with array arithmetic per recording and the
samples of all windows of a batch come out of one fancy-index gather on the concatenated
recordings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from eegstream.baseline import robust_location
from eegstream.errors import EegstreamError
from eegstream.io.recording import Recording
from eegstream.preprocess import electrode_index, log_power, psd_features
from eegstream.settings import ARTIFACT_LABELS, CLASSES, FS, MODEL_ELECTRODES, POST, PRE, WINDOW

log = logging.getLogger(__name__)

__all__ = [
    "Augmentation",
    "WindowConfig",
    "WindowPlan",
    "class_weights",
    "drop_electrodes",
    "person_locations",
    "plan_windows",
    "resting_starts",
    "split_groups",
    "split_units",
    "window_psd",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
NOTHING = CLASSES.index("nothing")
_ARTIFACT_ID = {name: CLASSES.index(name) for name in ARTIFACT_LABELS}


@dataclass(frozen=True)
class WindowConfig:
    """Where windows are cut and how they are labelled (see the module docstring)."""

    onset_early: int = 8  #: samples a window's slot may precede the onset and still be the artifact
    onset_late: int = 12  #: samples a window's slot may follow the onset (at least)
    tail: int = 26  #: a slot up to ``D - tail`` samples into an artifact is still the artifact
    margin: int = 13  #: samples (0.1 s) after an artifact that no "nothing" window touches
    lead_in: int = 12  #: a "nothing" window may hold this many first samples of an artifact
    pre_onset_copies: int = 2  #: "nothing" windows per event ending near its onset
    copies: int = 8  #: windows per artifact event (random slots in its positive range)
    #: "nothing" windows per artifact window (per recording): twice as many as artifact windows
    #: because the stream is mostly "nothing" and its false detections come from the tail of
    #: the background; class weights keep the classes balanced in the loss.
    nothing_ratio: float = 2.0
    confounder_copies: int = 10  #: "nothing" windows over each known confounder
    block_s: float = 4.0  #: split unit: windows within one block of a recording stay together
    #: Assumed artifact extent in seconds for markers that carry no duration (exclusion only).
    unknown_extent_s: Mapping[str, float] = field(
        default_factory=lambda: {"blink": 0.6, "jaw_clench": 2.0}
    )


@dataclass(frozen=True)
class Augmentation:
    """Random distortions of training windows, so the model meets more than its simulator.

    Applied to the raw samples (before the feature pipeline) per window: overall amplitude
    (electrode impedance, head size, headset model), per-channel gain (contact quality), white
    noise (a noisier amplifier or environment); then to the spectrum: a high-frequency roll-off
    (another device's anti-alias filter or a resampler). Time shifts come from the onset jitter of
    :class:`WindowConfig`. Electrode dropout acts on the standardised features instead
    (:func:`drop_electrodes`), because a dead electrode reaches the model as features 0.
    """

    #: Log-uniform factor per window. Narrower than the 0.5-2x first tried: 0.5x shrinks a small
    #: subject's 50 uV blink to 25 uV, below the slow frontal swings of a large 1/f background,
    #: and such swings were then called blinks with p ~ 1. Window accuracy on 10 unseen
    #: subjects (40 training subjects, single runs): 0.985-0.991 at 0.5-2x, 0.988-0.994 here.
    amplitude: tuple[float, float] = (0.7, 1.4)
    channel_gain: tuple[float, float] = (0.8, 1.25)  #: log-uniform factor per window and channel
    noise_uv: float = 4.0  #: white-noise rms drawn uniformly from [0, noise_uv] per window
    #: High-frequency roll-off (applied to the spectrum): up to this many dB less power at the
    #: 64 Hz Nyquist, from a corner drawn in ``rolloff_hz``. Above the 50 Hz band edge a window
    #: holds little but amplifier noise and whatever anti-alias filter the device or a resampler
    #: used; a 256 -> 128 Hz round trip alone moves the 56-64 Hz bins by 2 +- 2 dB, which moved
    #: a borderline probability from 0.55 to 0.77 in a model trained without this.
    rolloff_db: float = 10.0
    rolloff_hz: tuple[float, float] = (46.0, 60.0)


@dataclass(frozen=True)
class WindowPlan:
    """Where each window lies and its label: index arrays, one row per window."""

    rec: I64  #: index of the recording in the list given to :func:`plan_windows`
    start: I64  #: first sample of the window in its recording
    y: I64  #: class index into ``CLASSES``
    unit: I64  #: split unit (recording, time block): copies of one event share it

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, mask: npt.NDArray[np.bool_] | I64) -> WindowPlan:
        """The windows selected by a boolean mask or index array."""
        return WindowPlan(self.rec[mask], self.start[mask], self.y[mask], self.unit[mask])

    def counts(self) -> dict[str, int]:
        """Windows per class name."""
        return {c: int(np.sum(self.y == i)) for i, c in enumerate(CLASSES)}


def _events(rec: Recording, cfg: WindowConfig) -> tuple[I64, I64, I64, I64]:
    """Artifact onsets, labels, last positive offset and exclusion end (all samples)."""
    keep = [m for m in rec.markers if m.label in _ARTIFACT_ID]
    onset = np.array([m.sample for m in keep], dtype=np.int64)
    label = np.array([_ARTIFACT_ID[m.label] for m in keep], dtype=np.int64)
    dur = np.array([round(m.duration * rec.fs) for m in keep], dtype=np.int64)
    unknown = np.array(
        [round(cfg.unknown_extent_s.get(m.label, 2.0) * rec.fs) for m in keep], dtype=np.int64
    )
    known = dur > 0
    hi = np.where(known, np.maximum(cfg.onset_late, dur - cfg.tail), cfg.onset_late)
    extent = np.where(known, dur, unknown)
    return onset, label, hi, onset + extent


def _blocked_cumsum(n: int, begin: I64, end: I64) -> I64:
    """Cumulative count of blocked samples (``[begin, end)`` spans), for O(1) overlap tests."""
    diff = np.zeros(n + 1, dtype=np.int64)
    np.add.at(diff, np.clip(begin, 0, n), 1)
    np.add.at(diff, np.clip(end, 0, n), -1)
    blocked = np.cumsum(diff[:-1]) > 0
    return np.concatenate(([0], np.cumsum(blocked, dtype=np.int64)))


def _plan_one(
    rec: Recording,
    rng: np.random.Generator,
    cfg: WindowConfig,
    cols: I64,
    confounders: I64 | None,
) -> tuple[I64, I64]:
    """Window starts and labels for one recording."""
    n = rec.n_samples
    onset, label, hi, excl_end = _events(rec, cfg)
    bad = ~np.isfinite(rec.data[:, cols]).all(axis=1)
    bad_cum = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
    block_cum = _blocked_cumsum(n, onset + cfg.lead_in, excl_end + cfg.margin)

    def usable(start: I64) -> npt.NDArray[np.bool_]:
        ok = (start >= 0) & (start + WINDOW <= n)
        s = np.clip(start, 0, max(n - WINDOW, 0))
        return np.asarray(ok & (bad_cum[s + WINDOW] - bad_cum[s] == 0), dtype=np.bool_)

    def clean(start: I64) -> npt.NDArray[np.bool_]:
        s = np.clip(start, 0, max(n - WINDOW, 0))
        return np.asarray(usable(start) & (block_cum[s + WINDOW] - block_cum[s] == 0), np.bool_)

    # artifact windows: `copies` random slots per event in [-E, hi]; half near the onset so long
    # clenches still teach the onset as often as blinks do
    k = cfg.copies
    lo = -cfg.onset_early
    span = np.where(np.arange(k)[None, :] % 2 == 0, hi[:, None], cfg.onset_late) - lo + 1
    offs = lo + np.floor(rng.random((len(onset), k)) * span).astype(np.int64)
    a_start = (onset[:, None] + offs - PRE).ravel()
    a_y = np.repeat(label, k)
    ok = usable(a_start)
    a_start, a_y = a_start[ok], a_y[ok]

    # "nothing": windows ending near each onset, midpoints between markers, confounders, then
    # random clean windows
    last_end = onset + cfg.lead_in  # window end (exclusive) at most this
    pre = last_end[:, None] - WINDOW - rng.integers(0, 17, (len(onset), cfg.pre_onset_copies))
    mids = (onset[:-1] + onset[1:]) // 2 - PRE if len(onset) > 1 else np.zeros(0, np.int64)
    conf = np.zeros(0, np.int64)
    if confounders is not None and len(confounders):
        weight = (
            confounders[:, 2] if confounders.shape[1] > 2 else np.ones(len(confounders), np.int64)
        )
        reps = np.repeat(np.arange(len(confounders)), np.maximum(weight, 0) * cfg.confounder_copies)
        c_start, c_len = confounders[reps, 0], confounders[reps, 1]
        # slot anywhere the window overlaps the confounder by >= 8 samples
        first = c_start - POST + 8
        last = c_start + c_len + PRE - 8
        width = np.maximum(last - first, 1)
        conf = first + np.floor(rng.random(len(reps)) * width).astype(np.int64) - PRE
    want = max(int(round(cfg.nothing_ratio * len(a_start))), 1)
    rand = rng.integers(0, max(n - WINDOW, 1), size=3 * want + 16)
    cand = np.concatenate([pre.ravel(), mids, conf, rand]).astype(np.int64)
    cand = cand[clean(cand)][:want]
    n_start = cand
    log.debug(
        "%s: %d artifact windows, %d nothing (%d midpoints, %d confounder candidates)",
        rec.source,
        len(a_start),
        len(n_start),
        len(mids),
        len(conf),
    )
    start = np.concatenate([a_start, n_start])
    y = np.concatenate([a_y, np.full(len(n_start), NOTHING, np.int64)])
    return start, y


def plan_windows(
    recordings: Sequence[Recording],
    *,
    seed: int = 0,
    config: WindowConfig | None = None,
    confounders: Sequence[I64 | None] | None = None,
    electrodes: Sequence[str] = MODEL_ELECTRODES,
) -> WindowPlan:
    """Choose and label windows in every recording (see the module docstring for the rules).

    ``confounders`` optionally gives, per recording, ``(k, 2)`` ``[start, length]`` spans of
    unlabelled look-alikes (the simulator's ground truth) to sample extra "nothing" windows over;
    an optional third column multiplies ``confounder_copies`` for that span (hard negatives).
    Windows with a non-finite sample on a model electrode are skipped.
    """
    cfg = config or WindowConfig()
    if not recordings:
        raise EegstreamError("no recordings given; pass marker-labelled recording files")
    bad_fs = [r.source for r in recordings if r.fs != FS]
    if bad_fs:
        raise EegstreamError(
            f"recordings must be at {FS} Hz for training; {', '.join(bad_fs)} are not; "
            f"read them with read_recording(..., target_fs={FS})"
        )
    labelled = [sum(m.label in _ARTIFACT_ID for m in r.markers) for r in recordings]
    if not any(labelled):
        raise EegstreamError(
            "no blink or jaw_clench markers in "
            f"{', '.join(r.source for r in recordings)}; training needs recordings with markers "
            "(EmotivPRO MarkerValueInt 22 = blink, 23 = jaw clench) or --simulate N"
        )
    cols = np.asarray(electrode_index(electrodes), dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    conf = list(confounders) if confounders is not None else [None] * len(recordings)
    block = max(int(cfg.block_s * FS), WINDOW)
    recs, starts, ys, units = [], [], [], []
    first_unit = 0
    for i, rec in enumerate(recordings):
        start, y = _plan_one(rec, rng, cfg, cols, conf[i])
        recs.append(np.full(len(start), i, np.int64))
        starts.append(start)
        ys.append(y)
        units.append(first_unit + (start + PRE) // block)  # unique across recordings
        first_unit += rec.n_samples // block + 2
    return WindowPlan(
        np.concatenate(recs), np.concatenate(starts), np.concatenate(ys), np.concatenate(units)
    )


def window_psd(
    recordings: Sequence[Recording],
    plan: WindowPlan,
    *,
    electrodes: Sequence[str] = MODEL_ELECTRODES,
    augment: Augmentation | None = None,
    seed: int = 0,
    batch: int = 8192,
) -> npt.NDArray[np.float32]:
    """Unscaled PSD ``(n, electrodes, 33)`` of every planned window, optionally augmented.

    The samples come from one fancy-index gather per batch over the concatenated recordings, and
    the spectrum from :func:`eegstream.preprocess.psd_features`, the same as at run time.
    """
    cols = np.asarray(electrode_index(electrodes), dtype=np.intp)
    data = np.concatenate([r.data[:, cols] for r in recordings], axis=0)
    first = np.cumsum([0] + [r.n_samples for r in recordings])[:-1].astype(np.int64)
    flat = first[plan.rec] + plan.start
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    out = np.empty((len(plan), len(cols), WINDOW // 2 + 1), dtype=np.float32)
    taps = np.arange(WINDOW, dtype=np.int64)
    for b0 in range(0, len(plan), batch):
        idx = flat[b0 : b0 + batch, None] + taps  # (b, 64)
        x = data[idx].transpose(0, 2, 1)  # (b, ch, 64)
        if augment is None:
            out[b0 : b0 + batch] = psd_features(x)
        else:
            out[b0 : b0 + batch] = _rolloff(psd_features(_augment(x, rng, augment)), rng, augment)
    return out


def _rolloff(
    psd: npt.NDArray[np.float32], rng: np.random.Generator, aug: Augmentation
) -> npt.NDArray[np.float32]:
    """A random linear-in-dB roll-off above a random corner, per window (all its electrodes)."""
    freqs = np.fft.rfftfreq(WINDOW, 1.0 / FS)
    b = psd.shape[0]
    corner = rng.uniform(*aug.rolloff_hz, (b, 1, 1))
    depth = rng.uniform(0.0, aug.rolloff_db, (b, 1, 1))
    ramp = np.clip((freqs - corner) / (FS / 2 - corner), 0.0, 1.0)
    return np.asarray(psd * 10.0 ** (-depth * ramp / 10.0), dtype=np.float32)


def _augment(x: F64, rng: np.random.Generator, aug: Augmentation) -> F64:
    """Amplitude, channel gain and white noise, drawn per window (vectorised over the batch)."""
    b, ch, n = x.shape
    lo, hi = np.log(aug.amplitude)
    amp = np.exp(rng.uniform(lo, hi, (b, 1, 1)))
    glo, ghi = np.log(aug.channel_gain)
    gain = np.exp(rng.uniform(glo, ghi, (b, ch, 1)))
    noise = rng.standard_normal((b, ch, n)) * rng.uniform(0.0, aug.noise_uv, (b, 1, 1))
    return np.asarray(x * (amp * gain) + noise, dtype=np.float64)


def drop_electrodes(
    features: npt.NDArray[np.float32], rng: np.random.Generator, p: float = 0.1
) -> npt.NDArray[np.float32]:
    """Copy of standardised features with one random electrode zeroed in a fraction ``p`` of windows.

    Zero is the training mean, exactly what :class:`eegstream.preprocess.Scaler` outputs for a
    dead electrode, so a lost electrode at run time looks like something the model has seen.
    """
    out = features.copy()
    hit = np.flatnonzero(rng.random(len(out)) < p)
    out[hit, rng.integers(0, out.shape[1], len(hit))] = 0.0
    return out


def split_groups(n_groups: int, fraction: float, rng: np.random.Generator) -> I64:
    """Indices of held-out groups (recordings/subjects): ``fraction`` of them, at least one of two+."""
    if n_groups < 2:
        return np.zeros(0, np.int64)
    k = min(max(1, int(round(fraction * n_groups))), n_groups - 1)
    return np.sort(rng.permutation(n_groups)[:k]).astype(np.int64)


def split_units(
    units: I64, fractions: Sequence[float], rng: np.random.Generator
) -> list[npt.NDArray[np.bool_]]:
    """Random split by unit (windows of one time block stay together): one mask per fraction.

    Splitting whole units rather than windows keeps the jittered copies of one event out of both
    training and test, which would otherwise flatter the held-out score.
    """
    uniq = np.unique(units)
    order = rng.permutation(len(uniq))
    edges = np.round(np.cumsum([0.0, *fractions]) / sum(fractions) * len(uniq)).astype(int)
    masks = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        masks.append(np.isin(units, uniq[order[a:b]]))
    return masks


def class_weights(y: I64, n_classes: int = len(CLASSES)) -> dict[int, float]:
    """Inverse-frequency weights (mean 1 over the windows) so every class counts the same."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if np.any(counts == 0):
        absent = [CLASSES[i] for i in np.flatnonzero(counts == 0)]
        raise EegstreamError(
            f"the training windows have no {', '.join(absent)} examples; add recordings that "
            "contain them (or use --simulate N)"
        )
    return {i: float(len(y) / (n_classes * c)) for i, c in enumerate(counts)}


#: Hop (samples) of the resting windows a training recording's person baseline is estimated from.
RESTING_HOP: int = 16


def resting_starts(
    rec: Recording,
    *,
    config: WindowConfig | None = None,
    confounders: I64 | None = None,
    electrodes: Sequence[str] = MODEL_ELECTRODES,
) -> I64:
    """Starts of the windows where this recording's person is at rest (every ``RESTING_HOP``).

    No sample of a labelled artifact (to its exclusion end plus ``margin``), of a known
    confounder, or non-finite: what the live :class:`~eegstream.baseline.PersonBaseline`
    learns from once warm (windows judged "nothing").
    """
    cfg = config or WindowConfig()
    cols = np.asarray(electrode_index(electrodes), dtype=np.int64)
    n = rec.n_samples
    onset, _, _, excl_end = _events(rec, cfg)
    begin, end = [onset], [excl_end + cfg.margin]
    if confounders is not None and len(confounders):
        begin.append(confounders[:, 0])
        end.append(confounders[:, 0] + confounders[:, 1])
    blocked = _blocked_cumsum(n, np.concatenate(begin), np.concatenate(end))
    bad = ~np.isfinite(rec.data[:, cols]).all(axis=1)
    bad_cum = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
    s = np.arange(0, max(n - WINDOW + 1, 0), RESTING_HOP, dtype=np.int64)
    ok = (blocked[s + WINDOW] - blocked[s] == 0) & (bad_cum[s + WINDOW] - bad_cum[s] == 0)
    return np.asarray(s[ok], dtype=np.int64)


def person_locations(
    recordings: Sequence[Recording],
    *,
    config: WindowConfig | None = None,
    confounders: Sequence[I64 | None] | None = None,
    electrodes: Sequence[str] = MODEL_ELECTRODES,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Each recording's person baseline ``(recordings, electrodes, bins)``: location and spread.

    The converged state of the live estimator, in batch form (:func:`robust_location` over the
    recording's :func:`resting_starts` windows), so training features are relative exactly as
    the detector's are once warm.
    """
    conf = list(confounders) if confounders is not None else [None] * len(recordings)
    locs, spreads = [], []
    for i, rec in enumerate(recordings):
        starts = resting_starts(rec, config=config, confounders=conf[i], electrodes=electrodes)
        if starts.shape[0] < 2:
            raise EegstreamError(
                f"{rec.source}: fewer than 2 resting windows (no artifact, no confounder) to "
                "estimate the person baseline from; add rest to the recording"
            )
        plan = WindowPlan(
            np.zeros(len(starts), np.int64), starts, np.zeros(len(starts), np.int64), starts
        )
        loc, spread = robust_location(log_power(window_psd([rec], plan, electrodes=electrodes)))
        locs.append(loc)
        spreads.append(spread)
    return np.stack(locs), np.stack(spreads)
