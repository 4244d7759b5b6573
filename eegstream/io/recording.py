"""The in-memory form of a recording that every stage (reader, simulator, training, replay) shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from eegstream.resample import Resampler
from eegstream.settings import ELECTRODES


@dataclass(frozen=True)
class Marker:
    """One marker: an artifact onset (or any other event) at a sample of the recording."""

    sample: int  #: index of the onset sample in the recording
    time: float  #: timestamp of that sample (the recording's clock, seconds)
    value: int  #: EmotivPRO MarkerValueInt (22 blink, 23 jaw clench by default)
    label: str  #: label after mapping ("blink", "jaw_clench", or "marker_<value>")
    duration: float = 0.0  #: seconds, 0 when unknown


@dataclass
class Recording:
    """EEG samples of the 14 Emotiv electrodes with their timestamps and markers.

    ``data`` is ``(n_samples, 14)`` float64 in microvolts, columns in ``ELECTRODES`` order
    (electrodes absent from the source are NaN columns and listed in ``missing``).
    """

    data: npt.NDArray[np.float64]
    timestamps: npt.NDArray[np.float64]
    fs: float
    markers: list[Marker] = field(default_factory=list)
    channels: tuple[str, ...] = ELECTRODES
    missing: tuple[str, ...] = ()
    #: True where EmotivPRO interpolated a lost sample (``EEG.Interpolated``); None if unknown.
    interpolated: npt.NDArray[np.bool_] | None = None
    #: Contact quality per electrode (``CQ.<electrode>``) as ``(n_samples, 14)``; None if absent.
    quality: npt.NDArray[np.float32] | None = None
    #: Parsed metadata line (headset, serial, sampling rate, start time, ...) and extra columns.
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.data.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs if self.fs else 0.0


def resample_recording(rec: Recording, target_fs: float) -> Recording:
    """Resample data, timestamps, flags and markers to ``target_fs`` (same filter as live)."""
    rs = Resampler(rec.fs, target_fs, rec.data.shape[1])
    head, head_t = rs.process_timed(rec.data, rec.timestamps)
    tail, tail_t = rs.flush_timed()
    data = np.concatenate([head, tail])
    ts = np.concatenate([head_t, tail_t])
    n = data.shape[0]
    # Input sample aligned with each output sample (exact for the integer ratios allowed).
    src = np.minimum(np.arange(n) * rs.down // rs.up, rec.n_samples - 1)
    interpolated = None
    if rec.interpolated is not None:
        # An output is flagged if either input sample it replaces was interpolated.
        step = max(1, rs.down // rs.up)
        flags = np.zeros(n * step, dtype=bool)
        m = min(flags.shape[0], rec.n_samples)
        flags[:m] = rec.interpolated[:m]
        interpolated = np.asarray(flags.reshape(n, step).any(axis=1), dtype=np.bool_)
    quality = None if rec.quality is None else np.ascontiguousarray(rec.quality[src])
    ratio = rs.up / rs.down
    markers = []
    for m in rec.markers:
        k = min(int(math.floor(m.sample * ratio + 0.5)), n - 1)
        markers.append(Marker(k, float(ts[k]), m.value, m.label, m.duration))
    metadata = dict(rec.metadata)
    metadata["resampled_from"] = rec.fs
    metadata.pop("counter", None)
    if "original_timestamps" in metadata:
        metadata["original_timestamps"] = np.asarray(metadata["original_timestamps"])[src]
    return Recording(
        data=data,
        timestamps=ts,
        fs=float(target_fs),
        markers=markers,
        channels=rec.channels,
        missing=rec.missing,
        interpolated=interpolated,
        quality=quality,
        metadata=metadata,
        source=rec.source,
    )
