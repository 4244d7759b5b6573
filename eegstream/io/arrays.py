"""Arrays in: samples ``(n_samples, n_channels)`` with channel names -> a :class:`Recording`.

The one place that maps channel *labels* to the 14 Emotiv electrodes for in-memory data (numpy
arrays from Python, MNE ``Raw`` objects, EDF/FIF files): ``AF3``, ``EEG.AF3``, ``EEG AF3`` or
``eeg-af3``, any case, any order; other channels are ignored. No MNE here, so
``eegstream.detect(array, ...)`` works without the ``mne`` extra.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.io.recording import Marker, Recording, resample_recording
from eegstream.resample import check_rate
from eegstream.settings import ELECTRODES, FS, MODEL_ELECTRODES

__all__ = ["electrode_columns", "electrode_for", "recording_from_array"]

_UPPER = {e.upper(): e for e in ELECTRODES}
_PREFIX = re.compile(r"^EEG[\s._-]+")


def electrode_for(name: str) -> str | None:
    """The Emotiv electrode a channel label names (``EEG.AF3`` -> ``AF3``), or None."""
    u = _PREFIX.sub("", name.strip().upper())
    return _UPPER.get(u)


def electrode_columns(names: Sequence[str], source: str) -> dict[str, int]:
    """Electrode -> column index, by label; two columns for one electrode is an error."""
    cols: dict[str, int] = {}
    for i, name in enumerate(names):
        e = electrode_for(str(name))
        if e is None:
            continue
        if e in cols:
            raise EegstreamError(
                f"{source}: channels {names[cols[e]]!r} and {name!r} both hold {e}; "
                "drop one of them (raw.drop_channels) or rename it"
            )
        cols[e] = i
    return cols


def recording_from_array(
    data: npt.ArrayLike,
    fs: float,
    channels: Sequence[str],
    *,
    timestamps: npt.NDArray[np.float64] | None = None,
    markers: Sequence[Marker] = (),
    metadata: Mapping[str, Any] | None = None,
    source: str = "<array>",
    target_fs: float | None = FS,
    require_electrodes: bool = True,
) -> Recording:
    """A recording from microvolts ``(n_samples, n_channels)``; resampled to ``target_fs``.

    Timestamps default to seconds from the first sample. Errors name the argument
    (``data``, ``fs``, ``channels``) as the Python API spells it.
    """
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise EegstreamError(
            f"data: expected a numeric array (n_samples, n_channels) in microvolts, got "
            f"{type(data).__name__}; convert it with numpy.asarray first"
        ) from None
    if arr.ndim != 2:
        raise EegstreamError(
            f"data: expected a 2-D array (n_samples, n_channels) in microvolts, got shape "
            f"{arr.shape}; reshape it"
        )
    if not (isinstance(fs, int | float) and math.isfinite(fs) and fs > 0):
        raise EegstreamError(f"fs: expected the sampling rate in Hz (128 or 256), got {fs!r}")
    names = [str(c) for c in channels]
    if len(names) != arr.shape[1]:
        hint = (
            "; the array looks transposed: pass data.T (samples in rows)"
            if len(names) == arr.shape[0]
            else ""
        )
        raise EegstreamError(
            f"channels: {len(names)} name(s) for an array of shape {arr.shape} (n_samples, "
            f"n_channels): expected {arr.shape[1]}{hint}"
        )
    cols = electrode_columns(names, source)
    found = [e for e in ELECTRODES if e in cols]
    missing = tuple(e for e in ELECTRODES if e not in cols)
    if not found or (require_electrodes and any(e in missing for e in MODEL_ELECTRODES)):
        raise MissingChannelsError(
            source, [e for e in MODEL_ELECTRODES if e in missing] or list(MODEL_ELECTRODES), found
        )
    n = arr.shape[0]
    out = np.full((n, len(ELECTRODES)), np.nan, dtype=np.float64)
    out[:, [ELECTRODES.index(e) for e in found]] = arr[:, [cols[e] for e in found]]
    if timestamps is None:
        timestamps = np.arange(n, dtype=np.float64) / float(fs)
    elif timestamps.shape != (n,):
        raise EegstreamError(
            f"timestamps: expected {n} (one per sample), got shape {timestamps.shape}"
        )
    meta: dict[str, Any] = {
        "source_fs": float(fs),
        "fs_source": "argument",
        "source_samples": n,
        "columns": names,
        "timestamps_synthesised": False,
        "repairs": [],
    }
    meta.update(metadata or {})
    rec = Recording(
        data=out,
        timestamps=np.ascontiguousarray(timestamps, dtype=np.float64),
        fs=float(fs),
        markers=list(markers),
        missing=missing,
        metadata=meta,
        source=source,
    )
    if target_fs is not None and rec.fs != target_fs:
        check_rate(rec.fs, target_fs, source)
        rec = resample_recording(rec, target_fs)
    return rec
