"""Calibration to the person: a guided two-minute session that makes a user profile (issue #16).

The protocol (:class:`Protocol`): 30 s relaxed, then blink and jaw-clench cues in random order
3.5-5 s apart (10 and 6 by default), then 20 s relaxed. A cue is a marker (live: an LSL marker
and a terminal / dashboard prompt; in a file: ``MarkerValueInt`` 41 ``cue_blink`` and 42
``cue_jaw_clench``, or markers labelled so). From the recording, :func:`calibrate_recording`

1. finds each response's onset from the signal in a short window after its cue, with rules
   independent of the model (:func:`find_responses`: a bilateral frontal rise for a blink, a
   20-60 Hz EMG burst for a clench, both judged against the same person's relaxed signal);
   a cue without a clear response is *missed*: dropped and reported, never learnt as an artifact;
2. measures the person's resting log-power (location and spread per electrode and bin) on the
   relaxed parts: the starting state of the person baseline, warm from the first window;
3. runs the detector once with that baseline (window probabilities do not depend on the
   thresholds), then sweeps per-class thresholds through the :class:`EventBuilder` alone, and
   keeps those that maximise event F1 on the session; the report's "after" figures are
   cross-validated over the cues (thresholds chosen on k-1 folds, scored on the held-out one);
4. writes a :class:`~eegstream.profile.Profile` tied to the model's sha256.

No last-layer fine-tune: not implemented (see README "Calibration").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from eegstream.baseline import robust_location
from eegstream.detector import Detector, EventBuilder
from eegstream.errors import EegstreamError
from eegstream.evaluate import match_events
from eegstream.events import ArtifactEvent, Message
from eegstream.io.recording import Marker, Recording
from eegstream.profile import Profile
from eegstream.settings import ARTIFACT_LABELS, ELECTRODES, FS, MODEL_ELECTRODES, WINDOW, Settings

if TYPE_CHECKING:
    from eegstream.bundle import ModelBundle
    from eegstream.engines.base import Engine
    from eegstream.io.epochs import Epoch
    from eegstream.simulate import SimulationRanges, Subject

log = logging.getLogger(__name__)

__all__ = [
    "CUE_LABELS",
    "CUE_VALUES",
    "CalibrationResult",
    "Cue",
    "Protocol",
    "assemble_calibration",
    "calibrate_recording",
    "cues_from_markers",
    "find_responses",
    "simulate_protocol",
]

F64 = npt.NDArray[np.float64]

#: Marker label of each cue (LSL marker strings, EmotivPRO marker labels).
CUE_LABELS: dict[str, str] = {"blink": "cue_blink", "jaw_clench": "cue_jaw_clench"}
#: ``MarkerValueInt`` of each cue in EmotivPRO CSVs (22/23 are the artifacts themselves).
CUE_VALUES: dict[str, int] = {"blink": 41, "jaw_clench": 42}
#: A response's onset must lie this long after its cue (s): earlier is anticipation or chance.
RESPONSE_S: tuple[float, float] = (0.1, 1.5)
#: The response's peak is looked for up to this long after the cue (s).
PEAK_S: float = 2.5
#: Seconds before a cue whose median is the response's starting level.
PRE_CUE_S: float = 0.5
#: Relaxed signal starts this long after the recording does and ends this long before a cue.
REST_MARGIN_S: float = 1.0
#: Blink rule: 0.5-8 Hz, both sides' frontal rise (min over sides of max(AF3, F7) and
#: max(AF4, F8)) at least BLINK_MIN_UV and BLINK_OVER_REST x the median |level| of the same
#: signal at rest (real EPOC+ rest: 6 uV, simulated: 2-4 uV; spontaneous blinks at rest do not
#: move a median); onset where the rise last passes BLINK_ONSET_FRACTION of its peak.
BLINK_BAND_HZ: tuple[float, float] = (0.5, 8.0)
BLINK_MIN_UV: float = 25.0
BLINK_OVER_REST: float = 8.0
BLINK_ONSET_FRACTION: float = 0.15
#: Clench rule: 20-60 Hz rms (50 ms), summed over the model electrodes, smoothed 0.1 s; its peak
#: at least CLENCH_OVER_REST x the resting median; onset
#: at the last crossing of level + 20 % (peak - level) before the peak (as ``find_onset``).
CLENCH_BAND_HZ: tuple[float, float] = (20.0, 60.0)
CLENCH_OVER_REST: float = 1.8
CLENCH_ONSET_FRACTION: float = 0.2
#: Threshold grid swept per class.
GRID: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Most folds of the cross-validation (fewer when a class has fewer kept cues).
MAX_FOLDS: int = 5
#: Least relaxed signal (s) a profile's baseline is measured on.
MIN_REST_S: float = 15.0
#: Band-passed (1-50 Hz) resting std (uV) outside which an electrode's contact is suspect.
FLAT_STD_UV: float = 0.5
NOISY_STD_UV: float = 100.0


# --- the protocol ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    """One cue: when (seconds from the session's start, or a timestamp) and which gesture."""

    time: float
    label: str  #: "blink" or "jaw_clench"


@dataclass(frozen=True)
class Protocol:
    """The calibration session's plan; same seed, same cue order and times."""

    blinks: int = 10
    clenches: int = 6
    rest_before_s: float = 30.0
    rest_after_s: float = 20.0
    gap_s: tuple[float, float] = (3.5, 5.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.blinks < 1 or self.clenches < 0:
            raise EegstreamError(
                f"--blinks must be >= 1 and --clenches >= 0; got {self.blinks} and "
                f"{self.clenches}; the defaults are 10 and 6"
            )
        if self.rest_before_s < MIN_REST_S:
            raise EegstreamError(
                f"rest_before_s must be at least {MIN_REST_S:g} s (the resting baseline is "
                f"measured there); got {self.rest_before_s:g}"
            )

    def cues(self) -> list[Cue]:
        """Cue times (s from the start) in the session's random order."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 16]))
        labels = ["blink"] * self.blinks + ["jaw_clench"] * self.clenches
        order = [labels[i] for i in rng.permutation(len(labels)).tolist()]
        gaps = rng.uniform(self.gap_s[0], self.gap_s[1], len(order))
        t = self.rest_before_s + np.concatenate(([0.0], np.cumsum(gaps[:-1])))
        return [Cue(float(round(a, 3)), lab) for a, lab in zip(t.tolist(), order, strict=True)]

    @property
    def duration(self) -> float:
        """Seconds from the start to the end of the final rest."""
        cues = self.cues()
        return cues[-1].time + self.gap_s[1] + self.rest_after_s


def cues_from_markers(rec: Recording) -> list[Cue]:
    """The cues of a recording: markers labelled ``cue_blink`` / ``cue_jaw_clench`` or 41 / 42."""
    by_label = {v: k for k, v in CUE_LABELS.items()}
    by_value = {v: k for k, v in CUE_VALUES.items()}
    out = []
    for m in rec.markers:
        lab = by_label.get(m.label) or by_value.get(m.value)
        if lab is not None:
            out.append(Cue(float(m.time), lab))
    return sorted(out, key=lambda c: c.time)


# --- responses: onsets from the signal ---------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """What followed one cue: the onset found in the signal, or None (missed)."""

    cue: Cue
    onset: float | None  #: timestamp of the response's onset
    size: float  #: peak of the rule's signal (uV for blinks, x rest for clenches)
    needed: float  #: what the rule needed to call it a response

    @property
    def kept(self) -> bool:
        """True when a response was found (the cue is learnt from)."""
        return self.onset is not None


def _rest_mask(t: F64, cues: Sequence[Cue]) -> npt.NDArray[np.bool_]:
    """Samples of the relaxed parts: before the first cue and after the last response."""
    first, last = cues[0].time, cues[-1].time
    mask = ((t >= t[0] + REST_MARGIN_S) & (t < first - REST_MARGIN_S)) | (t > last + 4.0)
    return np.asarray(mask, dtype=np.bool_)


def _blink_signal(rec: Recording) -> F64:
    from scipy.signal import butter, sosfiltfilt

    col = {e: ELECTRODES.index(e) for e in ("AF3", "F7", "F8", "AF4")}
    sos = butter(2, BLINK_BAND_HZ, btype="band", fs=rec.fs, output="sos")
    x = np.nan_to_num(rec.data - np.nanmedian(rec.data, axis=0))
    y = sosfiltfilt(sos, x, axis=0)  # zero-phase: a label, offline, must not be delayed
    left = np.maximum(y[:, col["AF3"]], y[:, col["F7"]])
    right = np.maximum(y[:, col["AF4"]], y[:, col["F8"]])
    return np.asarray(np.minimum(left, right), np.float64)


def _emg_signal(rec: Recording) -> F64:
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import butter, sosfiltfilt

    cols = [ELECTRODES.index(e) for e in MODEL_ELECTRODES]
    hi = min(CLENCH_BAND_HZ[1], 0.95 * rec.fs / 2)
    sos = butter(4, (CLENCH_BAND_HZ[0], hi), btype="band", fs=rec.fs, output="sos")
    x = np.nan_to_num(rec.data[:, cols] - np.nanmedian(rec.data[:, cols], axis=0))
    y = sosfiltfilt(sos, x, axis=0)
    rms = np.sqrt(uniform_filter1d(y * y, max(1, round(0.05 * rec.fs)), axis=0, mode="nearest"))
    env = uniform_filter1d(rms.sum(axis=1), max(1, round(0.1 * rec.fs)), mode="nearest")
    return np.asarray(env, np.float64)


def _blink_need(sig: F64, rest: npt.NDArray[np.bool_]) -> float:
    """Least frontal rise (uV) that is a blink: well above the resting background."""
    return max(BLINK_MIN_UV, BLINK_OVER_REST * float(np.median(np.abs(sig[rest]))))


def _onset(sig: F64, a: int, peak: int, level: float, fraction: float) -> int:
    """Last sample before ``peak`` (not before ``a``) where ``sig`` is below the rise's fraction."""
    thr = level + fraction * (float(sig[peak]) - level)
    below = np.flatnonzero(sig[a : peak + 1] < thr)
    return a + (int(below[-1]) + 1 if below.size else 0)


def find_responses(rec: Recording, cues: Sequence[Cue]) -> list[Response]:
    """Each cue's response onset found in the signal (model-independent rules), or missed."""
    t = rec.timestamps
    rest = _rest_mask(t, cues)
    if rest.sum() < MIN_REST_S * rec.fs:
        raise EegstreamError(
            f"calibration recording {rec.source} has {rest.sum() / rec.fs:.1f} s of relaxed "
            f"signal before its first cue and after its last; at least {MIN_REST_S:g} s are "
            "needed (the protocol has 30 s before and 20 s after): record the whole protocol"
        )
    signals = {"blink": _blink_signal(rec), "jaw_clench": _emg_signal(rec)}
    need = {
        "blink": _blink_need(signals["blink"], rest),
        "jaw_clench": CLENCH_OVER_REST * float(np.median(signals["jaw_clench"][rest])),
    }
    out: list[Response] = []
    pre = int(round(PRE_CUE_S * rec.fs))
    for cue in cues:
        c = int(np.searchsorted(t, cue.time))
        a = c + int(round(RESPONSE_S[0] * rec.fs))
        b = min(c + int(round(PEAK_S * rec.fs)), rec.n_samples)
        sig = signals[cue.label]
        if b - a < 2 or c - pre < 0:
            out.append(Response(cue, None, 0.0, need[cue.label]))
            continue
        level = float(np.median(sig[c - pre : c]))
        peak = a + int(np.argmax(sig[a:b]))
        size = float(sig[peak]) - (level if cue.label == "blink" else 0.0)
        if cue.label == "jaw_clench":
            size = float(sig[peak])
        onset = None
        if size >= need[cue.label]:
            frac = BLINK_ONSET_FRACTION if cue.label == "blink" else CLENCH_ONSET_FRACTION
            base = float(sig[c : peak + 1].min()) if cue.label == "blink" else level
            k = _onset(sig, c, peak, base, frac)
            if RESPONSE_S[0] <= t[k] - cue.time <= RESPONSE_S[1]:
                onset = float(t[k])
        out.append(Response(cue, onset, size, need[cue.label]))
    return out


# --- the threshold sweep -----------------------------------------------------------------------


class _RecordingBuilder(EventBuilder):
    """An event builder that keeps every call, so other thresholds can be replayed exactly."""

    def __init__(self, settings: Settings, stream_id: str) -> None:
        super().__init__(settings, stream_id, clock=None)
        self.calls: list[tuple[Any, ...]] = []

    def feed(
        self, probs: F64, onset_times: F64, end_times: F64, unix_offset: float
    ) -> list[tuple[int, ArtifactEvent]]:
        self.calls.append((probs.copy(), onset_times.copy(), end_times.copy(), unix_offset))
        return super().feed(probs, onset_times, end_times, unix_offset)

    def close(self, unix_offset: float) -> list[ArtifactEvent]:
        self.calls.append((unix_offset,))
        return super().close(unix_offset)


def _replay(calls: Sequence[tuple[Any, ...]], settings: Settings) -> list[ArtifactEvent]:
    """Final events of the recorded builder calls under ``settings``' thresholds."""
    b = EventBuilder(settings, "calibration", clock=None)
    out: list[ArtifactEvent] = []
    for call in calls:
        evs = [e for _, e in b.feed(*call)] if len(call) == 4 else b.close(call[0])
        out += [e for e in evs if e.phase == "final"]
    return out


def _detect(
    rec: Recording, engine: Engine, bundle: ModelBundle, settings: Settings
) -> tuple[list[Message], _RecordingBuilder, Detector]:
    det = Detector(engine, bundle.features, settings, "calibration", clock=None)
    rb = _RecordingBuilder(settings, "calibration")
    det.builder = rb
    msgs = det.process(rec.data, rec.timestamps) + det.flush()
    return msgs, rb, det


# --- scoring regions and folds -----------------------------------------------------------------


@dataclass
class _Regions:
    """Scored stretches of the session, each in one fold; stretches left out are not scored."""

    spans: list[tuple[float, float, int]]  #: (start, stop, fold)
    excluded: list[tuple[float, float]]  #: missed cues' responses, spontaneous blinks at rest

    def fold_of(self, t: float) -> int | None:
        if any(a <= t < b for a, b in self.excluded):
            return None
        for a, b, f in self.spans:
            if a <= t < b:
                return f
        return None


def _regions(
    rec: Recording, responses: Sequence[Response], k: int, blink_sig: F64, blink_need: float
) -> _Regions:
    t = rec.timestamps
    t0, t1 = float(t[0]), float(t[-1]) + 1.0 / rec.fs
    cues = [r.cue for r in responses]
    spans: list[tuple[float, float, int]] = []
    excluded: list[tuple[float, float]] = []
    count = dict.fromkeys(ARTIFACT_LABELS, 0)
    for i, r in enumerate(responses):
        a = r.cue.time - 0.5
        b = cues[i + 1].time - 0.5 if i + 1 < len(cues) else r.cue.time + 4.0
        if not r.kept:
            excluded.append((a, b))
            continue
        spans.append((a, b, count[r.cue.label] % k))
        count[r.cue.label] += 1
    # the relaxed parts, cut into pieces dealt round the folds
    for a, b in ((t0, cues[0].time - 0.5), (cues[-1].time + 4.0, t1)):
        if b <= a:
            continue
        edges = np.linspace(a, b, k + 1)
        spans += [(float(edges[j]), float(edges[j + 1]), j) for j in range(k)]
    # blinks nobody cued (people blink at rest and between cues; found by the same rule as a
    # cued blink) are real: neither false alarms nor misses
    above = blink_sig >= blink_need
    for r in responses:
        if r.onset is not None:  # a cued gesture's own frontal swing is not an uncued blink
            above[(t >= r.onset - 0.7) & (t < r.onset + 2.0)] = False
    edges_i = np.flatnonzero(np.diff(np.concatenate(([0], above.astype(np.int8), [0]))))
    for s0, s1 in zip(edges_i[::2].tolist(), edges_i[1::2].tolist(), strict=True):
        excluded.append((float(t[s0]) - 0.6, float(t[min(s1, len(t) - 1)]) + 0.6))
    excluded.append((t0, t0 + REST_MARGIN_S))  # the filters' start-up
    return _Regions(spans, excluded)


@dataclass
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: _Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan


def _fold_counts(
    events: Sequence[ArtifactEvent], markers: Sequence[Marker], regions: _Regions, k: int
) -> dict[str, list[_Counts]]:
    """Per label and fold: TP / FP / FN of the events against the response onsets."""
    ev = [e for e in events if regions.fold_of(e.onset_lsl) is not None]
    matches, _ = match_events(ev, markers)
    hit = {(m.label, m.marker_time) for m in matches}
    found = {(m.label, m.onset) for m in matches}
    out = {lab: [_Counts() for _ in range(k)] for lab in ARTIFACT_LABELS}
    for m in markers:
        f = regions.fold_of(m.time)
        if f is None:
            continue
        if (m.label, m.time) in hit:
            out[m.label][f].tp += 1
        else:
            out[m.label][f].fn += 1
    for e in ev:
        f = regions.fold_of(e.onset_lsl)
        if f is not None and (e.label, e.onset_lsl) not in found:
            out[e.label][f].fp += 1
    return out


def _pool(counts: dict[str, list[_Counts]], folds: Sequence[int]) -> dict[str, _Counts]:
    out = {lab: _Counts() for lab in counts}
    for lab, per in counts.items():
        for f in folds:
            out[lab].add(per[f])
    return out


def _score(
    pooled: dict[str, _Counts], combo: tuple[float, ...], default: float
) -> tuple[float, float]:
    f1 = sum(0.0 if math.isnan(c.f1) else c.f1 for c in pooled.values())
    return (f1, -sum(abs(x - default) for x in combo))  # ties: closest to the default


# --- the result --------------------------------------------------------------------------------


@dataclass
class CalibrationResult:
    """The profile and the report of one calibration."""

    profile: Profile
    responses: list[Response]
    before: dict[str, _Counts]  #: the uncalibrated model on the scored stretches
    after: dict[str, _Counts]  #: with the profile, thresholds cross-validated over the cues
    rest_s: float
    folds: int
    warnings: list[str] = field(default_factory=list)
    false_per_min: tuple[float, float] = (math.nan, math.nan)  #: before, after (scored time)
    t0: float = 0.0  #: the recording's first timestamp (the report's times are from it)

    def summary(self) -> dict[str, Any]:
        """The JSON form (stored in the profile under ``calibration``)."""

        def c(x: _Counts) -> dict[str, Any]:
            r: dict[str, Any] = {"tp": x.tp, "fp": x.fp, "fn": x.fn}
            for k, v in (("recall", x.recall), ("precision", x.precision), ("f1", x.f1)):
                r[k] = None if math.isnan(v) else round(v, 3)
            return r

        classes = {}
        for lab in ARTIFACT_LABELS:
            rs = [r for r in self.responses if r.cue.label == lab]
            classes[lab] = {
                "cues": len(rs),
                "kept": sum(r.kept for r in rs),
                "missed_at_s": [round(r.cue.time - self.t0, 2) for r in rs if not r.kept],
                "median_reaction_s": _round(
                    float(np.median([r.onset - r.cue.time for r in rs if r.onset is not None]))
                    if any(r.kept for r in rs)
                    else math.nan
                ),
                "threshold": self.profile.thresholds.get(lab),
                "before": c(self.before[lab]),
                "after_cross_validated": c(self.after[lab]),
            }
        return {
            "rest_s": round(self.rest_s, 1),
            "folds": self.folds,
            "classes": classes,
            "false_events_per_min": {
                "before": _round(self.false_per_min[0]),
                "after_cross_validated": _round(self.false_per_min[1]),
            },
            "warnings": self.warnings,
        }

    def table(self) -> str:
        """The report for the terminal."""
        rows = [
            f"profile {self.profile.name}: resting baseline from {self.rest_s:.0f} s, "
            f"thresholds {', '.join(f'{k} {v:.2f}' for k, v in self.profile.thresholds.items())}",
            f"{'class':<11} {'cues':>4} {'kept':>4} {'missed':>6}   "
            f"{'before: recall':>14} {'prec':>5} {'F1':>5}   "
            f"{'after (cv): recall':>18} {'prec':>5} {'F1':>5}",
        ]
        for lab in ARTIFACT_LABELS:
            rs = [r for r in self.responses if r.cue.label == lab]
            b, a = self.before[lab], self.after[lab]
            rows.append(
                f"{lab:<11} {len(rs):>4} {sum(r.kept for r in rs):>4} "
                f"{sum(not r.kept for r in rs):>6}   {_f(b.recall):>14} {_f(b.precision):>5} "
                f"{_f(b.f1):>5}   {_f(a.recall):>18} {_f(a.precision):>5} {_f(a.f1):>5}"
            )
        missed = [r for r in self.responses if not r.kept]
        if missed:
            rows.append(
                "missed cues (dropped, not learnt): "
                + ", ".join(f"{r.cue.label} at {r.cue.time - self.t0:.1f} s" for r in missed)
            )
        rows.append(
            f"false events per minute of scored time: before {_f(self.false_per_min[0], 2)}, "
            f"after {_f(self.false_per_min[1], 2)} ({self.folds}-fold cross-validated over cues)"
        )
        rows += [f"warning: {w}" for w in self.warnings]
        return "\n".join(rows)


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 3)


# --- calibration -------------------------------------------------------------------------------


def _signal_warnings(rec: Recording, rest: npt.NDArray[np.bool_]) -> list[str]:
    from scipy.signal import butter, sosfiltfilt

    cols = [ELECTRODES.index(e) for e in MODEL_ELECTRODES]
    sos = butter(4, (1.0, 50.0), btype="band", fs=rec.fs, output="sos")
    x = np.nan_to_num(rec.data[:, cols] - np.nanmedian(rec.data[:, cols], axis=0))
    std = sosfiltfilt(sos, x, axis=0)[rest].std(axis=0)
    out = []
    flat = [e for e, s in zip(MODEL_ELECTRODES, std.tolist(), strict=True) if s < FLAT_STD_UV]
    noisy = [e for e, s in zip(MODEL_ELECTRODES, std.tolist(), strict=True) if s > NOISY_STD_UV]
    if flat:
        out.append(f"electrode(s) {', '.join(flat)} flat at rest: bad contact; wet the sensors")
    if noisy:
        out.append(
            f"electrode(s) {', '.join(noisy)} noisy at rest (> {NOISY_STD_UV:g} uV rms, "
            "1-50 Hz): poor contact; reseat and calibrate again"
        )
    return out


def calibrate_recording(
    rec: Recording,
    bundle: ModelBundle,
    engine: Engine,
    settings: Settings,
    *,
    name: str = "profile",
    progress: bool = False,
) -> CalibrationResult:
    """Calibrate on a recording of the protocol (cues as markers); see the module docstring.

    Raises :class:`EegstreamError` when the recording has no cues, too little rest, or a class
    none of whose cues got a clear response (a person who never blinked on cue).
    """
    from tqdm import tqdm

    from eegstream.offline import _check

    _check(rec, bundle.features)
    cues = cues_from_markers(rec)
    if not cues:
        raise EegstreamError(
            f"calibration recording {rec.source} has no cue markers; expected markers "
            f"{CUE_LABELS['blink']} / {CUE_LABELS['jaw_clench']} (MarkerValueInt "
            f"{CUE_VALUES['blink']} / {CUE_VALUES['jaw_clench']}) at each cue: record the "
            "protocol with `eegstream calibrate --stream-name NAME` or mark the cues"
        )
    responses = find_responses(rec, cues)
    for lab in ARTIFACT_LABELS:
        rs = [r for r in responses if r.cue.label == lab]
        if rs and not any(r.kept for r in rs):
            what = "blink" if lab == "blink" else "jaw-clench burst"
            where = "AF3/F7/F8/AF4" if lab == "blink" else "the temporal electrodes"
            raise EegstreamError(
                f"calibration recording {rec.source}: no clear {what} after any of the "
                f"{len(rs)} {CUE_LABELS[lab]} cues (largest response {max(r.size for r in rs):.1f}, "
                f"needed {rs[0].needed:.1f}); check the contact on {where} and that the person "
                "follows the cues, then calibrate again"
            )
    t = rec.timestamps
    rest = _rest_mask(t, cues)
    rest_s = float(rest.sum() / rec.fs)
    warnings = _signal_warnings(rec, rest)
    for lab in ARTIFACT_LABELS:
        rs = [r for r in responses if r.cue.label == lab]
        kept = sum(r.kept for r in rs)
        if rs and kept < len(rs) / 2:
            warnings.append(
                f"only {kept} of {len(rs)} {lab} cues had a clear response: the profile's "
                f"{lab} threshold rests on few examples; calibrate again if the contact was poor"
            )
    with tqdm(total=4, desc="calibrate", unit="step", disable=not progress, leave=False) as bar:
        # 1. the person's resting log-power: windows wholly inside the relaxed parts
        ends = np.arange(WINDOW, rec.n_samples + 1, settings.hop)
        inside = np.concatenate(([0], np.cumsum(rest)))
        ok = inside[ends] - inside[ends - WINDOW] == WINDOW
        idx = ends[ok][:, None] - WINDOW + np.arange(WINDOW)[None, :]
        windows = np.transpose(rec.data[idx], (0, 2, 1))
        windows = windows[np.isfinite(windows).all(axis=(1, 2))]
        logp = bundle.features.log_power(windows)
        loc, spread = robust_location(logp)
        profile = Profile(
            name=name,
            model_name=bundle.name,
            model_sha256=bundle.sha256,
            loc=loc,
            spread=spread,
            electrodes=tuple(bundle.features.electrodes),
            rest_s=rest_s,
            thresholds={},
        )
        bar.update()
        # 2. before: the model as shipped; after: with the person's baseline (thresholds later)
        from eegstream.profile import apply_profile

        _, rb_before, _ = _detect(rec, engine, bundle, settings)
        bar.update()
        cal_bundle, _ = apply_profile(profile, bundle, settings)
        plain = settings.model_copy(update={"class_thresholds": {}})
        _, rb_after, _ = _detect(rec, engine, cal_bundle, plain)
        bar.update()
        # 3. sweep: events for every threshold pair, counted per fold
        markers = [
            Marker(int(np.searchsorted(t, r.onset)), r.onset, 0, r.cue.label)
            for r in responses
            if r.onset is not None
        ]
        kept_n = [sum(r.kept for r in responses if r.cue.label == lab) for lab in ARTIFACT_LABELS]
        k = max(2, min(MAX_FOLDS, *[n for n in kept_n if n > 0]))
        blink_sig = _blink_signal(rec)
        need = _blink_need(blink_sig, rest)
        regions = _regions(rec, responses, k, blink_sig, need)
        combos = [(b, j) for b in GRID for j in GRID]
        per_combo = {}
        for combo in combos:
            s = settings.model_copy(
                update={"class_thresholds": dict(zip(ARTIFACT_LABELS, combo, strict=True))}
            )
            per_combo[combo] = _fold_counts(_replay(rb_after.calls, s), markers, regions, k)
        before_counts = _fold_counts(_replay(rb_before.calls, settings), markers, regions, k)
        default = settings.threshold
        after = {lab: _Counts() for lab in ARTIFACT_LABELS}
        for f in range(k):
            train = [g for g in range(k) if g != f]
            best = max(combos, key=lambda c: _score(_pool(per_combo[c], train), c, default))
            for lab, cnt in _pool(per_combo[best], [f]).items():
                after[lab].add(cnt)
        final = max(combos, key=lambda c: _score(_pool(per_combo[c], range(k)), c, default))
        bar.update()
    before = _pool(before_counts, range(k))
    scored_min = sum(b - a for a, b, _ in regions.spans) / 60.0
    excl_min = sum(b - a for a, b in regions.excluded) / 60.0
    minutes = max(scored_min - excl_min, 1e-9)
    fpm = (
        sum(c.fp for c in before.values()) / minutes,
        sum(c.fp for c in after.values()) / minutes,
    )
    profile = replace(profile, thresholds=dict(zip(ARTIFACT_LABELS, final, strict=True)))
    result = CalibrationResult(
        profile, responses, before, after, rest_s, k, warnings, fpm, float(t[0])
    )
    profile = replace(
        profile,
        calibration={
            "source": rec.source,
            "cue_labels": CUE_LABELS,
            "cue_values": CUE_VALUES,
            **result.summary(),
        },
    )
    result.profile = profile
    return result


# --- calibration sessions made from labelled epochs and by the simulator ----------------------


def assemble_calibration(
    epochs: Sequence[Epoch],
    protocol: Protocol = Protocol(),
    *,
    seed: int = 0,
    blink_gesture: str = "hardblink",
    clench_gesture: str = "bitelowerlip",
    rest_gesture: str = "neutral",
) -> Recording:
    """A protocol session joined from labelled epochs (pass their training part).

    Rest epochs fill ``rest_before_s``; then the protocol's cues in its order, each gesture epoch
    (the first ``blinks`` / ``clenches`` of each gesture by file index) followed by one rest
    epoch, so cues are one gesture and one rest epoch apart (3 s for 1.5 s epochs); then rest
    epochs fill ``rest_after_s``. Joined as :func:`eegstream.io.epochs.assemble_session` joins
    (no steps), at 128 Hz, with a cue marker 0.3-0.6 s (a reaction time) before each gesture's
    onset (:func:`eegstream.io.epochs.find_onset`) and the artifact markers 22 / 23 at the onsets.
    """
    from eegstream.io.epochs import DC_OFFSET_UV, JOIN_S, SESSION_T0, _joined, find_onset
    from eegstream.io.recording import resample_recording

    gestures = {
        "blink": sorted((e for e in epochs if e.gesture == blink_gesture), key=lambda e: e.index),
        "jaw_clench": sorted(
            (e for e in epochs if e.gesture == clench_gesture), key=lambda e: e.index
        ),
    }
    rests = sorted((e for e in epochs if e.gesture == rest_gesture), key=lambda e: e.index)
    need = {"blink": protocol.blinks, "jaw_clench": protocol.clenches}
    for lab, n in need.items():
        if len(gestures[lab]) < n:
            raise EegstreamError(
                f"assemble_calibration needs {n} {lab} epochs; got {len(gestures[lab])}; "
                "pass more epochs or a smaller protocol"
            )
    if not rests:
        raise EegstreamError(f"assemble_calibration needs {rest_gesture} (rest) epochs; got none")
    fs = rests[0].fs
    ep_s = rests[0].data.shape[0] / fs
    order: list[Epoch] = []
    k = 0

    def fill(seconds: float) -> None:
        nonlocal k
        for _ in range(int(math.ceil(seconds / ep_s))):
            order.append(rests[k % len(rests)])
            k += 1

    fill(protocol.rest_before_s)
    used = dict.fromkeys(need, 0)
    for cue in protocol.cues():
        order.append(gestures[cue.label][used[cue.label]])
        used[cue.label] += 1
        fill(ep_s)
    fill(protocol.rest_after_s)
    parts = _joined(order, rest_gesture, max(2, round(JOIN_S * fs)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    markers: list[Marker] = []
    pos = 0
    for e, y in zip(order, parts, strict=True):
        if e.gesture != rest_gesture:
            onset = pos + find_onset(e)
            at = max(0, onset - int(round(rng.uniform(0.3, 0.6) * fs)))
            lab = e.label
            markers.append(Marker(at, SESSION_T0 + at / fs, CUE_VALUES[lab], CUE_LABELS[lab]))
            value = 22 if lab == "blink" else 23
            markers.append(Marker(onset, SESSION_T0 + onset / fs, value, lab))
        pos += y.shape[0]
    markers.sort(key=lambda m: m.sample)
    data = np.concatenate(parts) + DC_OFFSET_UV
    rec = Recording(
        data=data,
        timestamps=SESSION_T0 + np.arange(pos, dtype=np.float64) / fs,
        fs=fs,
        markers=markers,
        metadata={"title": "calibration session from epochs", "headset": "EPOC+"},
        source=f"<calibration session from {Path(rests[0].source).parent.name}>",
    )
    return resample_recording(rec, FS) if fs != FS else rec


#: Reaction time to a cue (s), log-normal: median and spread (simple visual reaction times).
REACTION_MEDIAN_S: float = 0.45
REACTION_SD: float = 0.25


def simulate_protocol(
    seed: int,
    protocol: Protocol = Protocol(),
    *,
    subject: Subject | None = None,
    miss: float = 0.0,
    never: Sequence[str] = (),
    confounders: bool = True,
    ranges: SimulationRanges | None = None,
) -> Recording:
    """A simulated person doing the protocol: cue markers (41 / 42) and their responses.

    Each response starts a reaction time after its cue (log-normal, median 0.45 s, clipped to
    0.2-1.2 s); with probability ``miss`` a cue is ignored (no response), and cues of the
    labels in ``never`` are always ignored. The responses carry the usual artifact markers 22 /
    23 (the truth, which calibration does not read). ``subject`` (default: drawn from ``seed``)
    lets two recordings show the same person.
    """
    from eegstream.simulate import RANGES, simulate_with_truth

    rng = np.random.default_rng(np.random.SeedSequence([seed, 18]))
    cues = protocol.cues()
    delay = np.clip(
        REACTION_MEDIAN_S * np.exp(REACTION_SD * rng.standard_normal(len(cues))), 0.2, 1.2
    )
    ignored = rng.random(len(cues)) < miss
    schedule = [
        (c.time + float(d), c.label)
        for c, d, skip in zip(cues, delay.tolist(), ignored.tolist(), strict=True)
        if not skip and c.label not in never
    ]
    rec, _ = simulate_with_truth(
        protocol.duration,
        seed,
        blink_rate=0.0,
        clench_rate=0.0,
        confounders=confounders,
        ranges=RANGES if ranges is None else ranges,
        subject=subject,
        schedule=schedule,
    )
    t0 = float(rec.timestamps[0])
    cue_markers = [
        Marker(
            int(round(c.time * rec.fs)),
            t0 + int(round(c.time * rec.fs)) / rec.fs,
            CUE_VALUES[c.label],
            CUE_LABELS[c.label],
        )
        for c in cues
    ]
    rec.markers = sorted([*rec.markers, *cue_markers], key=lambda m: m.sample)
    rec.source = f"<simulated calibration seed={seed}>"
    return rec
