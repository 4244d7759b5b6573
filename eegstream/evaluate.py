"""Event-level evaluation of detections against a recording's markers (``eegstream evaluate``).

Matching rule: a detected event matches a marker of the same label when its onset lies within
``tolerance`` (default 0.3 s) of the marker's onset; each marker and each event is used at most
once, closest pairs first (greedy on the onset distance, which is optimal for well-separated
artifacts such as blinks >= 0.8 s apart). Unmatched events are false alarms, unmatched markers
misses. Metrics per label:

* precision, recall and F1 over events (not windows);
* onset error = detected onset - marker onset over matched pairs: median of its absolute value
  (the acceptance figure) and its median (the bias);
* detection latency = the time the ``onset`` message was produced - marker onset. Offline the
  detector stamps messages with the data clock, so this is the time a live detector would have
  needed: the end of the window that confirmed the event (``min_windows`` windows after onset);
* false alarms per minute of recording (all labels together).

Everything here is plain arithmetic on small lists, free of I/O; :mod:`eegstream.offline` runs
the detector and prints the report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eegstream.events import ArtifactEvent, Message
from eegstream.io.recording import Marker
from eegstream.settings import ARTIFACT_LABELS

__all__ = [
    "ClassReport",
    "EvaluationReport",
    "GestureReport",
    "Match",
    "evaluate_messages",
    "gesture_report",
    "match_events",
    "suggest_timing",
]

#: Default matching tolerance on the onset (s).
TOLERANCE_S: float = 0.3


@dataclass(frozen=True)
class Match:
    """A detected event paired with the marker it found."""

    label: str
    marker_time: float
    onset: float
    latency: float | None  #: onset message's detection time - marker time (None: no onset msg)
    offset_error: float | None = None  #: detected offset - marker end (None: unknown duration)

    @property
    def onset_error(self) -> float:
        """Detected onset - true onset (s)."""
        return self.onset - self.marker_time


@dataclass
class ClassReport:
    """Counts and timing of one label (pooled over files when merged)."""

    label: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    onset_errors: list[float] = field(default_factory=list, repr=False)
    offset_errors: list[float] = field(default_factory=list, repr=False)
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def precision(self) -> float:
        """Share of detections that are real: TP / (TP + FP); NaN with no detections."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        """Share of markers found: TP / (TP + FN); NaN with no markers."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        """2tp / (2tp + fp + fn); NaN with neither markers nor detections."""
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else math.nan

    @property
    def median_abs_onset_error(self) -> float:
        """Median of |detected onset - true onset| (s) over matches."""
        return _median(np.abs(self.onset_errors))

    @property
    def median_onset_error(self) -> float:
        """Median signed onset error (s): the estimator's bias."""
        return _median(self.onset_errors)

    @property
    def median_offset_error(self) -> float:
        """Median signed offset error (s) where the marker has a duration."""
        return _median(self.offset_errors)

    def latency(self, q: float) -> float:
        """Quantile ``q`` (0-100) of the detection latency (s)."""
        return float(np.percentile(self.latencies, q)) if self.latencies else math.nan

    def merge(self, other: ClassReport) -> None:
        """Add another file's counts and pooled errors."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.onset_errors += other.onset_errors
        self.offset_errors += other.offset_errors
        self.latencies += other.latencies

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON (NaN -> None)."""
        return _clean(
            {
                "label": self.label,
                "tp": self.tp,
                "fp": self.fp,
                "fn": self.fn,
                "precision": self.precision,
                "recall": self.recall,
                "f1": self.f1,
                "median_abs_onset_error_ms": 1000 * self.median_abs_onset_error,
                "median_onset_error_ms": 1000 * self.median_onset_error,
                "median_offset_error_ms": 1000 * self.median_offset_error,
                "latency_median_ms": 1000 * self.latency(50),
                "latency_p95_ms": 1000 * self.latency(95),
                "latency_max_ms": 1000 * self.latency(100),
            }
        )


@dataclass
class EvaluationReport:
    """Per-label reports plus recording length, for one file or pooled over several."""

    name: str
    duration_s: float
    classes: dict[str, ClassReport]
    signal_faults: int = 0

    @property
    def false_alarms(self) -> int:
        """Detections that match no marker, all labels."""
        return sum(c.fp for c in self.classes.values())

    @property
    def false_alarms_per_min(self) -> float:
        """False alarms per minute of recording."""
        return self.false_alarms / (self.duration_s / 60.0) if self.duration_s > 0 else math.nan

    @property
    def median_abs_onset_error(self) -> float:
        """Median |onset error| over all matched events of all labels (s)."""
        return _median(np.abs([e for c in self.classes.values() for e in c.onset_errors]))

    def merge(self, other: EvaluationReport) -> None:
        """Pool another file into this report."""
        self.duration_s += other.duration_s
        self.signal_faults += other.signal_faults
        for label, c in other.classes.items():
            self.classes.setdefault(label, ClassReport(label)).merge(c)

    def summary(self) -> dict[str, Any]:
        """The JSON form of the report."""
        return _clean(
            {
                "name": self.name,
                "duration_s": self.duration_s,
                "false_alarms": self.false_alarms,
                "false_alarms_per_min": self.false_alarms_per_min,
                "median_abs_onset_error_ms": 1000 * self.median_abs_onset_error,
                "signal_faults": self.signal_faults,
                "classes": {k: c.summary() for k, c in self.classes.items()},
            }
        )

    def table(self) -> str:
        """A fixed-width text table for the terminal."""
        head = (
            f"{'label':<11} {'TP':>5} {'FP':>5} {'FN':>5} {'prec':>6} {'recall':>6} {'F1':>6} "
            f"{'|onset err|':>11} {'bias':>7} {'offset':>7} {'latency':>8} {'p95':>7}"
        )
        rows = [f"{self.name}: {self.duration_s / 60:.1f} min", head]
        for c in self.classes.values():
            rows.append(
                f"{c.label:<11} {c.tp:>5} {c.fp:>5} {c.fn:>5} {_f(c.precision):>6} "
                f"{_f(c.recall):>6} {_f(c.f1):>6} {_ms(c.median_abs_onset_error):>11} "
                f"{_ms(c.median_onset_error):>7} {_ms(c.median_offset_error):>7} "
                f"{_ms(c.latency(50)):>8} {_ms(c.latency(95)):>7}"
            )
        rows.append(
            f"false alarms: {self.false_alarms} ({_f(self.false_alarms_per_min, 2)}/min); "
            f"median |onset error| {_ms(self.median_abs_onset_error)}; "
            f"signal faults: {self.signal_faults}"
        )
        return "\n".join(rows)


def suggest_timing(report: EvaluationReport) -> dict[str, tuple[float, float]]:
    """New ``(onset_shift, offset_shift)`` per label that cancel the report's median biases.

    How :data:`eegstream.detector.TIMING` is calibrated: evaluate the model on simulated
    subjects it never saw, then subtract the median signed onset and offset errors from the
    shifts in use.
    """
    from eegstream.detector import TIMING

    out: dict[str, tuple[float, float]] = {}
    for label, c in report.classes.items():
        tm = TIMING[label]
        d_on = c.median_onset_error
        d_off = c.median_offset_error
        out[label] = (
            round(tm.onset_shift - (0.0 if math.isnan(d_on) else d_on), 3),
            round(tm.offset_shift - (0.0 if math.isnan(d_off) else d_off), 3),
        )
    return out


def match_events(
    events: Iterable[ArtifactEvent],
    markers: Iterable[Marker],
    *,
    tolerance: float = TOLERANCE_S,
    detected: dict[str, float] | None = None,
    labels: Sequence[str] = ARTIFACT_LABELS,
) -> tuple[list[Match], dict[str, ClassReport]]:
    """Pair final-phase events with markers of the same label; count TP/FP/FN per label.

    ``detected`` maps an event id to its onset message's detection time (for the latency).
    Markers whose label is not one of ``labels`` (other EmotivPRO markers) are ignored.
    """
    ev = [e for e in events if e.phase == "final"]
    mk = [m for m in markers if m.label in labels]
    matches: list[Match] = []
    reports = {lab: ClassReport(lab) for lab in labels}
    for lab in labels:
        e_on = np.array([e.onset_lsl for e in ev if e.label == lab], dtype=np.float64)
        e_off = [e.offset_lsl for e in ev if e.label == lab]
        e_ids = [e.id for e in ev if e.label == lab]
        m_on = np.array([m.time for m in mk if m.label == lab], dtype=np.float64)
        m_dur = [m.duration for m in mk if m.label == lab]
        dist = np.abs(e_on[:, None] - m_on[None, :])
        ei, mi = np.nonzero(dist <= tolerance + 1e-9)
        order = np.argsort(dist[ei, mi], kind="stable")
        used_e: set[int] = set()
        used_m: set[int] = set()
        for i, j in zip(ei[order].tolist(), mi[order].tolist(), strict=True):
            if i in used_e or j in used_m:
                continue
            used_e.add(i)
            used_m.add(j)
            det = detected.get(e_ids[i]) if detected else None
            lat = None if det is None else det - float(m_on[j])
            off = e_off[i] - (float(m_on[j]) + m_dur[j]) if m_dur[j] > 0 else None
            matches.append(Match(lab, float(m_on[j]), float(e_on[i]), lat, off))
        rep = reports[lab]
        rep.tp = len(used_e)
        rep.fp = int(e_on.shape[0]) - rep.tp
        rep.fn = int(m_on.shape[0]) - rep.tp
        mine = [m for m in matches if m.label == lab]
        rep.onset_errors = [m.onset_error for m in mine]
        rep.offset_errors = [m.offset_error for m in mine if m.offset_error is not None]
        rep.latencies = [m.latency for m in mine if m.latency is not None]
    return matches, reports


def evaluate_messages(
    messages: Iterable[Message],
    markers: Iterable[Marker],
    duration_s: float,
    *,
    name: str = "recording",
    tolerance: float = TOLERANCE_S,
) -> EvaluationReport:
    """The report for one recording from everything its detector emitted."""
    msgs = list(messages)
    events = [m for m in msgs if isinstance(m, ArtifactEvent)]
    detected = {e.id: e.detected_lsl for e in events if e.phase == "onset"}
    _, reports = match_events(events, markers, tolerance=tolerance, detected=detected)
    faults = sum(1 for m in msgs if m.type == "status" and m.status == "signal_fault")
    return EvaluationReport(name, float(duration_s), reports, signal_faults=faults)


# -- helpers ----------------------------------------------------------------------------------


def _median(values: Any) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(np.median(a)) if a.size else math.nan


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{1000 * x:.0f} ms"


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None so the JSON is valid."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


# -- labelled epochs: how often each gesture is called what ------------------------------------


@dataclass
class GestureReport:
    """Per gesture of an epoch session: how many epochs were called blink / jaw_clench / nothing.

    Each final event is attributed to the epoch its span overlaps most (an event that overlaps
    none after the warm-up is dropped from the table but still counts in the event figures).
    An epoch is "called" a label when at least one event of that label is attributed to it
    (both labels can apply); "nothing" when none is. Epochs of the warm-up are left out.
    Rest epochs (``rest_gesture``) give the false events per minute of rest.

    ``shaped`` counts, per gesture, the epochs holding a blink-shaped deflection found by a
    rule independent of the model (:func:`eegstream.io.epochs.spontaneous_blink`): people blink
    while they move their tongue or eyes, and a blink detected there is no false alarm.
    ``blink_unshaped`` is the blink calls among the other epochs of the gesture.
    """

    gestures: dict[str, dict[str, int]]  #: gesture -> {"epochs", "blink", "jaw_clench", "nothing"}
    labels: dict[str, str]  #: gesture -> class it should be
    rest_gesture: str
    rest_s: float  #: seconds of rest epochs after the warm-up
    rest_events: int  #: artifact events attributed to those rest epochs
    warmup_s: float

    @property
    def rest_events_per_min(self) -> float:
        """False artifact events per minute of rest after the warm-up."""
        return self.rest_events / (self.rest_s / 60.0) if self.rest_s > 0 else math.nan

    def rate(self, gesture: str, called: str) -> float:
        """Share of the gesture's epochs called ``called`` (blink, jaw_clench or nothing)."""
        g = self.gestures[gesture]
        return g[called] / g["epochs"] if g["epochs"] else math.nan

    def unshaped_blink_rate(self, gesture: str) -> float:
        """Share of the gesture's epochs *without* a blink-shaped deflection called blink."""
        g = self.gestures[gesture]
        n = g["epochs"] - g["shaped"]
        return g["blink_unshaped"] / n if n else math.nan

    def summary(self) -> dict[str, Any]:
        """The JSON form."""
        return _clean(
            {
                "warmup_s": self.warmup_s,
                "rest_gesture": self.rest_gesture,
                "rest_s": self.rest_s,
                "rest_events": self.rest_events,
                "rest_events_per_min": self.rest_events_per_min,
                "gestures": {
                    g: {
                        **c,
                        "class": self.labels[g],
                        **{f"{k}_rate": self.rate(g, k) for k in (*ARTIFACT_LABELS, "nothing")},
                        "blink_rate_without_blink_shape": self.unshaped_blink_rate(g),
                    }
                    for g, c in self.gestures.items()
                },
            }
        )

    def table(self) -> str:
        """Fixed-width text: one row per gesture, the share of its epochs called each label."""
        head = (
            f"{'gesture':<14} {'class':<11} {'epochs':>6} {'blink':>7} {'jaw_clench':>10} "
            f"{'nothing':>8}   {'blink-shaped':>12} {'blink of the others':>19}"
        )
        rows = [f"per gesture (epochs after the {self.warmup_s:g} s warm-up)", head]
        for g, c in self.gestures.items():
            unshaped = self.unshaped_blink_rate(g) if self.labels[g] == "nothing" else math.nan
            rows.append(
                f"{g:<14} {self.labels[g]:<11} {c['epochs']:>6} "
                f"{_pct(self.rate(g, 'blink')):>7} {_pct(self.rate(g, 'jaw_clench')):>10} "
                f"{_pct(self.rate(g, 'nothing')):>8}   {c['shaped']:>12} {_pct(unshaped):>19}"
            )
        rows.append(
            f"rest ({self.rest_gesture}): {self.rest_events} artifact events in "
            f"{self.rest_s / 60:.2f} min = {_f(self.rest_events_per_min, 2)}/min"
        )
        return "\n".join(rows)


def gesture_report(
    events: Iterable[ArtifactEvent],
    spans: Sequence[tuple[str, float, float]],
    labels: dict[str, str],
    *,
    warmup_s: float,
    t0: float,
    rest_gesture: str,
    shaped: Sequence[bool] | None = None,
) -> GestureReport:
    """Attribute final events to epochs; ``spans`` are ``(gesture, start, stop)`` in seconds.

    ``t0`` is the session's first timestamp (warm-up epochs start before ``t0 + warmup_s``);
    ``shaped`` (aligned with ``spans``) marks epochs holding a blink-shaped deflection.
    """
    flags = list(shaped) if shaped is not None else [False] * len(spans)
    keep = [i for i, (_, a, _) in enumerate(spans) if a >= t0 + warmup_s - 1e-9]
    sp = [spans[i] for i in keep]
    sp_shaped = [flags[i] for i in keep]
    starts = np.array([a for _, a, _ in sp], dtype=np.float64)
    stops = np.array([b for _, _, b in sp], dtype=np.float64)
    called: list[set[str]] = [set() for _ in sp]
    for e in events:
        if e.phase != "final" or not sp:
            continue
        overlap = np.minimum(stops, e.offset_lsl) - np.maximum(starts, e.onset_lsl)
        i = int(np.argmax(overlap))
        if overlap[i] > 0 or starts[i] <= e.onset_lsl < stops[i]:
            called[i].add(e.label)
    gestures: dict[str, dict[str, int]] = {}
    rest_s, rest_events = 0.0, 0
    for (g, a, b), c, bs in zip(sp, called, sp_shaped, strict=True):
        row = gestures.setdefault(
            g,
            dict.fromkeys(
                ("epochs", "blink", "jaw_clench", "nothing", "shaped", "blink_unshaped"), 0
            ),
        )
        row["epochs"] += 1
        row["shaped"] += int(bs)
        row["blink_unshaped"] += int(not bs and "blink" in c)
        for lab in c:
            row[lab] += 1
        if not c:
            row["nothing"] += 1
        if g == rest_gesture:
            rest_s += b - a
            rest_events += len(c)
    order = sorted(gestures, key=lambda g: (labels.get(g, "nothing") == "nothing", g))
    return GestureReport(
        {g: gestures[g] for g in order},
        {g: labels.get(g, "nothing") for g in order},
        rest_gesture,
        rest_s,
        rest_events,
        warmup_s,
    )


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"
