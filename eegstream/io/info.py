"""``eegstream info``: what a user checks first about a recording, before trusting detections.

:func:`analyse_recording` does the work and returns a :class:`RecordingInfo` (tested directly);
:func:`format_info` turns it into the text ``eegstream info`` prints. The recording is looked at
as recorded (no resampling), so counts such as interpolated samples refer to the file's own rows.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from eegstream.io.emotiv import read_recording
from eegstream.io.recording import Recording
from eegstream.resample import check_rate
from eegstream.settings import FS, MODEL_ELECTRODES

log = logging.getLogger(__name__)

__all__ = ["ChannelSummary", "RecordingInfo", "analyse_recording", "format_info"]

SEGMENT_S = 2.0  #: length of the segments whose spread flags flat / noisy electrodes
FLAT_UV = 1.0  #: segment std below this is a flat line (Emotiv's LSB is ~0.13 uV)
FLAT_FRACTION = 0.5  #: an electrode flat in at least this share of segments is flagged flat
NOISY_UV = 100.0  #: typical (median) segment std above this is flagged noisy
STUCK_RUN = 3  #: identical consecutive samples at a channel's extreme that count as stuck
DEFAULT_FAULT_LIMIT_UV = 1000.0  #: |x - median| beyond this is a glitch (Settings.fault_limit_uv)
#: Emotiv contact quality scale (CQ.*): 0 none, 1 bad, 2 poor, 3 fair, 4 good.
CQ_LABELS = ("none", "bad", "poor", "fair", "good")


@dataclass
class ChannelSummary:
    """Signal summary of one electrode."""

    name: str
    present: bool
    mean: float = math.nan  #: uV, includes the ~4,200 uV Emotiv offset
    std: float = math.nan  #: uV over the whole recording
    typical_std: float = math.nan  #: median of the 2 s segments' std (robust to artifacts)
    flat_seconds: float = 0.0
    out_of_range: int = 0  #: samples beyond the fault limit from the channel median
    stuck: int = 0  #: samples stuck at the channel's minimum or maximum
    flat: bool = False
    saturated: bool = False
    noisy: bool = False
    quality_mean: float | None = None  #: mean contact quality (0-4) when CQ columns exist
    quality_min: float | None = None
    quality_good: float | None = None  #: share of samples with quality 4 (good)
    nonfinite: int = 0  #: samples that are not numbers (NaN, inf) after the reader's repairs
    empty: bool = False  #: no finite sample at all: the column is there but holds nothing

    @property
    def flags(self) -> list[str]:
        """Names of the raised flags."""
        return [f for f in ("flat", "saturated", "noisy") if getattr(self, f)]

    @property
    def quality_label(self) -> str | None:
        """Contact quality in words, from the mean."""
        if self.quality_mean is None or math.isnan(self.quality_mean):
            return None
        return CQ_LABELS[int(np.clip(round(self.quality_mean), 0, 4))]


@dataclass
class RecordingInfo:
    """Everything ``eegstream info`` reports about a recording."""

    path: str
    n_samples: int
    fs: float  #: the file's rate
    fs_source: str  #: "metadata", "timestamps", "argument" or "default"
    model_fs: float
    duration: float  #: seconds (samples / rate)
    headset: str | None = None
    serial: str | None = None
    firmware: str | None = None
    subject: str | None = None
    title: str | None = None
    start_time: float | None = None
    channels_found: list[str] = field(default_factory=list)
    channels_missing: list[str] = field(default_factory=list)
    missing_for_detection: list[str] = field(default_factory=list)
    marker_counts: dict[str, int] = field(default_factory=dict)
    interpolated: int | None = None  #: None when the file has no EEG.Interpolated column
    counter_gaps: int | None = None  #: None when the file has no EEG.Counter column
    counter_missing: int | None = None
    timestamp_gaps: int = 0
    timestamp_missing: int = 0
    timestamps_synthesised: bool = False
    quality_source: str | None = None
    channels: list[ChannelSummary] = field(default_factory=list)
    #: what the reader repaired (duplicated rows dropped, bad cells interpolated, ...), in words
    repairs: list[str] = field(default_factory=list)

    @property
    def resampled(self) -> bool:
        """True when detection resamples this recording to the model rate."""
        return self.fs != self.model_fs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly form."""
        out = asdict(self)
        for ch, summary in zip(out["channels"], self.channels, strict=True):
            ch["flags"] = summary.flags
            ch["quality_label"] = summary.quality_label
        return out


def _runs_at_extremes(x: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Per column, samples in runs of >= ``STUCK_RUN`` equal values at the column's min or max."""
    n = x.shape[0]
    if n < STUCK_RUN:
        return np.zeros(x.shape[1], dtype=np.int64)
    same = x[1:] == x[:-1]  # (n-1, ch)
    run = same[: n - STUCK_RUN + 1].copy()
    for k in range(1, STUCK_RUN - 1):  # STUCK_RUN - 1 equalities in a row
        run &= same[k : n - STUCK_RUN + 1 + k]
    mark = np.zeros_like(x, dtype=bool)
    for k in range(STUCK_RUN):
        mark[k : k + run.shape[0]] |= run
    lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    extreme = ((x == lo) | (x == hi)) & (hi > lo)
    return np.asarray((mark & extreme).sum(axis=0), dtype=np.int64)


def _channel_summaries(rec: Recording, fault_limit_uv: float) -> list[ChannelSummary]:
    """Vectorised statistics over all present electrodes at once."""
    out = [ChannelSummary(name=e, present=e not in rec.missing) for e in rec.channels]
    if rec.n_samples == 0:
        return out
    finite = np.isfinite(rec.data)
    for i, s in enumerate(out):
        if s.present:
            s.nonfinite = int(rec.n_samples - np.count_nonzero(finite[:, i]))
            s.empty = s.nonfinite == rec.n_samples
    # statistics over electrodes with at least one number (an empty column has none to give)
    present = [i for i, s in enumerate(out) if s.present and not s.empty]
    if not present:
        return out
    x = rec.data[:, present]
    if any(out[i].nonfinite for i in present):
        with warnings.catch_warnings():
            # all-NaN segments of a partly empty column: their NaN statistics are intended
            warnings.simplefilter("ignore", RuntimeWarning)
            return _fill_summaries(rec, x, present, out, fault_limit_uv)
    return _fill_summaries(rec, x, present, out, fault_limit_uv)


def _fill_summaries(
    rec: Recording,
    x: npt.NDArray[np.float64],
    present: list[int],
    out: list[ChannelSummary],
    fault_limit_uv: float,
) -> list[ChannelSummary]:
    """The statistics of :func:`_channel_summaries` for the columns ``present`` (``x``)."""
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    seg_len = max(2, round(SEGMENT_S * rec.fs))
    n_seg = max(1, rec.n_samples // seg_len)
    seg = x[: n_seg * seg_len] if rec.n_samples >= seg_len else x
    seg_std = np.nanstd(seg.reshape(n_seg, -1, len(present)), axis=1)  # (n_seg, ch)
    typical = np.nanmedian(seg_std, axis=0)
    flat_segments = (seg_std < FLAT_UV).sum(axis=0)
    median = np.nanmedian(x, axis=0)
    with np.errstate(invalid="ignore"):
        out_of_range = (np.abs(x - median) > fault_limit_uv).sum(axis=0)
    stuck = _runs_at_extremes(x)
    seg_s = seg.shape[0] / n_seg / rec.fs
    q = None if rec.quality is None else rec.quality[:, present].astype(np.float64)
    for j, i in enumerate(present):
        s = out[i]
        s.mean, s.std, s.typical_std = float(mean[j]), float(std[j]), float(typical[j])
        s.flat_seconds = float(flat_segments[j] * seg_s)
        s.out_of_range, s.stuck = int(out_of_range[j]), int(stuck[j])
        s.flat = bool(flat_segments[j] >= FLAT_FRACTION * n_seg)
        s.saturated = not s.flat and (s.out_of_range > 0 or s.stuck > 0)
        s.noisy = not s.flat and bool(typical[j] > NOISY_UV)
        if q is not None and np.isfinite(q[:, j]).any():
            col = q[:, j]
            s.quality_mean = float(np.nanmean(col))
            s.quality_min = float(np.nanmin(col))
            s.quality_good = float(np.mean(col[np.isfinite(col)] >= 4))
    return out


def _counter_gaps(counter: npt.NDArray[np.float64], fs: float) -> tuple[int, int]:
    """Gaps in ``EEG.Counter`` (it counts samples and restarts every second)."""
    c = counter[np.isfinite(counter) & (np.abs(counter) < 2**62)].astype(np.int64)
    if c.shape[0] < 2:
        return 0, 0
    modulus = max(round(fs), int(c.max()) + 1)
    step = np.diff(c) % modulus
    gaps = step != 1
    return int(gaps.sum()), int(((step[gaps] - 1) % modulus).sum())


def analyse_recording(
    rec: Recording, *, model_fs: float = FS, fault_limit_uv: float = DEFAULT_FAULT_LIMIT_UV
) -> RecordingInfo:
    """Summarise ``rec`` (read at its own rate) for ``eegstream info``."""
    md = rec.metadata
    info = RecordingInfo(
        path=rec.source,
        n_samples=rec.n_samples,
        fs=rec.fs,
        fs_source=str(md.get("fs_source", "unknown")),
        model_fs=model_fs,
        duration=rec.duration,
        headset=md.get("headset"),
        serial=md.get("serial"),
        firmware=md.get("firmware"),
        subject=md.get("subject"),
        title=md.get("title"),
        start_time=float(rec.timestamps[0]) if rec.n_samples else None,
        channels_found=[e for e in rec.channels if e not in rec.missing],
        channels_missing=list(rec.missing),
        missing_for_detection=[e for e in MODEL_ELECTRODES if e in rec.missing],
        marker_counts=dict(Counter(m.label for m in rec.markers)),
        interpolated=None if rec.interpolated is None else int(rec.interpolated.sum()),
        timestamps_synthesised=bool(md.get("timestamps_synthesised", False)),
        quality_source=md.get("quality_source"),
        repairs=[str(r) for r in md.get("repairs", [])],
    )
    counter = md.get("counter")
    if counter is not None:
        info.counter_gaps, info.counter_missing = _counter_gaps(np.asarray(counter), rec.fs)
    if not info.timestamps_synthesised and rec.n_samples > 1:
        dt = np.diff(rec.timestamps)
        gap = dt > 1.5 / rec.fs
        info.timestamp_gaps = int(gap.sum())
        info.timestamp_missing = int(np.maximum(np.round(dt[gap] * rec.fs) - 1, 0).sum())
    info.channels = _channel_summaries(rec, fault_limit_uv)
    return info


def inspect_recording(
    path: str | os.PathLike[str], *, fs: float | None = None, fault_limit_uv: float | None = None
) -> RecordingInfo:
    """Read ``path`` as recorded (no resampling, missing electrodes allowed) and analyse it.

    Raises :class:`EegstreamError` for unreadable files and for rates detection cannot use.
    """
    rec = read_recording(path, fs=fs, target_fs=None, require_electrodes=False)
    check_rate(rec.fs, FS, f"recording {path}")
    limit = DEFAULT_FAULT_LIMIT_UV if fault_limit_uv is None else fault_limit_uv
    return analyse_recording(rec, fault_limit_uv=limit)


def _fmt_time(t: float | None) -> str:
    if t is None or not math.isfinite(t) or t < 1e8:  # synthesised clocks start near 0
        return "unknown"
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_info(info: RecordingInfo) -> str:
    """The human-readable report (one fact per line, then a per-electrode table)."""
    lines: list[str] = [f"recording: {info.path}"]
    if info.headset:
        extra = ", ".join(
            f"{k} {v}" for k, v in (("serial", info.serial), ("firmware", info.firmware)) if v
        )
        lines.append(f"headset: {info.headset}" + (f" ({extra})" if extra else ""))
    else:
        lines.append("headset: unknown (no EmotivPRO metadata line)")
    if info.subject:
        lines.append(f"subject: {info.subject}")
    lines.append(f"start: {_fmt_time(info.start_time)}")
    minutes, seconds = divmod(info.duration, 60.0)
    lines.append(f"duration: {info.duration:.1f} s ({int(minutes)} min {seconds:04.1f} s)")
    lines.append(f"samples: {info.n_samples:,} samples")
    source = {
        "metadata": "from the metadata line",
        "timestamps": "from the timestamps",
        "argument": "as given with --fs",
        "default": "assumed: the file states none; pass --fs if it differs",
    }.get(info.fs_source, info.fs_source)
    rate = f"sampling rate: {info.fs:g} Hz ({source})"
    if info.resampled:
        rate += f"; detection resamples it to the model's {info.model_fs:g} Hz"
    lines.append(rate)
    if info.timestamps_synthesised:
        lines.append("timestamps: none in the file; synthesised from the sampling rate")
    lines.append(f"channels found: {len(info.channels_found)} ({' '.join(info.channels_found)})")
    if info.channels_missing:
        line = f"channels missing: {', '.join(info.channels_missing)}"
        if info.missing_for_detection:
            need = ", ".join(info.missing_for_detection)
            line += f" -- detection needs {need}: detect, train, replay and serve refuse this file"
        lines.append(line)
    else:
        lines.append("channels missing: none")
    if info.marker_counts:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(info.marker_counts.items()))
        lines.append(f"markers: {sum(info.marker_counts.values())} ({counts})")
    else:
        lines.append("markers: none")
    if info.interpolated is None:
        lines.append("interpolated: unknown (no EEG.Interpolated column)")
    else:
        share = 100.0 * info.interpolated / info.n_samples if info.n_samples else 0.0
        lines.append(f"interpolated: {info.interpolated:,} interpolated samples ({share:.2f} %)")
    gaps = []
    if info.counter_gaps is not None:
        gaps.append(
            f"counter gaps {info.counter_gaps} ({info.counter_missing:,} samples)"
            if info.counter_gaps
            else "counter gaps none"
        )
    if not info.timestamps_synthesised:
        gaps.append(
            f"timestamp gaps {info.timestamp_gaps} (~{info.timestamp_missing:,} samples)"
            if info.timestamp_gaps
            else "timestamp gaps none"
        )
    lines.append(f"missing samples: {'; '.join(gaps) if gaps else 'unknown'}")

    if info.repairs:
        lines.append("checked and repaired:")
        lines += [f"  {r}" for r in info.repairs]
    has_q = any(c.quality_mean is not None for c in info.channels)
    head = f"{'electrode':<10}{'mean uV':>10}{'std uV':>9}{'typ std':>9}"
    head += f"  {'contact quality':<22}" if has_q else "  "
    lines += ["", "per electrode (typ std = median std of 2 s segments):", head + "flags"]
    for c in info.channels:
        if not c.present:
            lines.append(f"{c.name:<10}{'missing':>10}")
            continue
        if c.empty:
            lines.append(
                f"{c.name:<10}{'empty':>10}  the column holds no numbers (all "
                f"{info.n_samples:,} samples NaN/inf): detection treats it as a dead electrode"
            )
            continue
        row = f"{c.name:<10}{c.mean:>10.1f}{c.std:>9.1f}{c.typical_std:>9.1f}"
        if has_q:
            q = (
                f"{c.quality_label} {c.quality_mean:.1f} (min {c.quality_min:.0f})"
                if c.quality_mean is not None and c.quality_min is not None
                else "-"
            )
            row += f"  {q:<22}"
        else:
            row += "  "
        notes = []
        if c.flat:
            notes.append(f"flat ({c.flat_seconds:.0f} s)")
        if c.saturated:
            why = []
            if c.out_of_range:
                why.append(f"{c.out_of_range:,} samples beyond the fault limit")
            if c.stuck:
                why.append(f"{c.stuck:,} stuck at the rail")
            notes.append(f"saturated ({', '.join(why)})")
        if c.noisy:
            notes.append("noisy")
        if c.nonfinite:
            notes.append(f"{c.nonfinite:,} samples not numbers")
        row += ", ".join(notes) if notes else "ok"
        lines.append(row.rstrip())
    if has_q:
        lines.append(f"contact quality from {info.quality_source}.* columns (0 none .. 4 good)")
    return "\n".join(lines)
