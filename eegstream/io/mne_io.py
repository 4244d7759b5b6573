"""MNE in and out: EDF/BDF/FIF recordings and ``Raw`` objects in, ``mne.Annotations`` out.

MNE is optional (``pip install 'eegstream[mne]'``) and imported only inside these functions, so
``import eegstream`` and the CSV path never load it; without it, a clear error names the extra.

Clocks. A recording read through MNE gets unix timestamps when the file has a measurement date
(``meas_date + first_time + raw.times``, like EmotivPRO's CSV ``Timestamp`` column) and seconds
from its first sample when it has none; annotations are placed on the same clock, so markers
and detections line up with MNE's own view of the file. :func:`to_annotations` goes back: its
``orig_time`` makes ``raw.set_annotations`` put each artifact on the samples it was found on.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.arrays import electrode_columns, recording_from_array
from eegstream.io.markers import label_for, label_from_text
from eegstream.io.recording import Marker, Recording
from eegstream.settings import DEFAULT_MARKER_LABELS, FS

if TYPE_CHECKING:
    import mne

__all__ = [
    "ANNOTATION_SUFFIXES",
    "MNE_EXTRA",
    "MNE_SUFFIXES",
    "import_mne",
    "is_mne_path",
    "raw_to_recording",
    "read_mne_recording",
    "to_annotations",
    "write_annotations",
]

MNE_EXTRA = "pip install 'eegstream[mne]'"
#: Recording files read through MNE (anything else is an EmotivPRO / plain CSV).
MNE_SUFFIXES = (".edf", ".bdf", ".fif", ".fif.gz")
#: Annotation files ``detect --format mne`` writes; all read back by ``mne.read_annotations``.
ANNOTATION_SUFFIXES = (".fif", ".txt", ".csv")
#: Annotation description of each detected label / fault span.
DESCRIPTIONS = {
    "blink": "BAD_blink",
    "jaw_clench": "BAD_jaw_clench",
    "signal_fault": "BAD_signal_fault",
}
_FIFF_UNIT_V = 107  #: mne.io.constants.FIFF.FIFF_UNIT_V, the unit MNE gives EEG channels
_NO_CODE = -1  #: Marker.value of annotations named by text rather than by a number


def import_mne(what: str) -> ModuleType:
    """``mne``, or an error saying ``what`` needs it and which extra installs it."""
    try:
        return importlib.import_module("mne")
    except ImportError:
        raise EegstreamError(
            f"{what} needs MNE-Python, which is not installed; install it with {MNE_EXTRA}"
        ) from None


def is_mne_path(path: str | os.PathLike[str]) -> bool:
    """True for the files MNE reads for us (EDF, BDF, FIF)."""
    name = Path(path).name.lower()
    return name.endswith(MNE_SUFFIXES)


def read_mne_recording(
    path: str | os.PathLike[str],
    *,
    marker_labels: Mapping[int, str] | None = None,
    marker_map: Mapping[int, str] | None = None,
    target_fs: float | None = FS,
    require_electrodes: bool = True,
) -> Recording:
    """Read an EDF/BDF/FIF file through MNE into a :class:`Recording` (see :func:`raw_to_recording`)."""
    path = Path(path)
    kind = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1].upper()
    mne = import_mne(f"reading {path.name} ({kind})")
    try:
        with warnings.catch_warnings():
            # MNE warns about harmless header oddities (e.g. EDF highpass/lowpass text); the
            # data and annotations are what we use, and they are checked below.
            warnings.simplefilter("ignore")
            raw = mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as exc:  # MNE raises many types for a damaged file; the cause is kept
        raise EegstreamError(
            f"recording {path}: MNE could not read it as {kind} ({type(exc).__name__}: {exc}); "
            "check that the file is complete, or export it again"
        ) from exc
    return raw_to_recording(
        raw,
        source=str(path),
        marker_labels=marker_labels,
        marker_map=marker_map,
        target_fs=target_fs,
        require_electrodes=require_electrodes,
        file_format=kind,
    )


def raw_to_recording(
    raw: mne.io.BaseRaw,
    *,
    source: str | None = None,
    marker_labels: Mapping[int, str] | None = None,
    marker_map: Mapping[int, str] | None = None,
    target_fs: float | None = FS,
    require_electrodes: bool = True,
    file_format: str = "MNE Raw",
) -> Recording:
    """An MNE ``Raw`` as a :class:`Recording`: electrodes by label, volts -> microvolts.

    Annotations become markers: a numeric description is a marker value (labelled by
    ``marker_map``, then ``marker_labels``), any other is the label itself (``Blink`` ->
    ``blink``; eegstream's own ``BAD_blink`` -> ``blink``).
    """
    labels = dict(DEFAULT_MARKER_LABELS if marker_labels is None else marker_labels)
    src = source or str((raw.filenames or [None])[0] or "<mne.io.Raw>")
    names = list(raw.ch_names)
    cols = electrode_columns(names, src)
    picks = sorted(cols.values())
    for i in picks:
        ch = raw.info["chs"][i]
        if int(ch["unit"]) != _FIFF_UNIT_V:
            raise EegstreamError(
                f"{src}: channel {names[i]!r} is not in volts (MNE unit code {int(ch['unit'])}); "
                "eegstream needs EEG channels (MNE stores them in volts): set the channel type "
                "with raw.set_channel_types({name: 'eeg'})"
            )
    fs = float(raw.info["sfreq"])
    # one (n_channels, n_samples) read, then one scale: MNE keeps volts, eegstream microvolts
    data = raw.get_data(picks=picks).T * 1e6 if picks else np.empty((raw.n_times, 0))
    n = int(raw.n_times)
    meas = raw.info["meas_date"]
    t0 = meas.timestamp() + float(raw.first_time) if meas is not None else 0.0
    timestamps = t0 + np.arange(n, dtype=np.float64) / fs
    markers = _annotation_markers(raw, timestamps, fs, labels, marker_map)
    metadata: dict[str, Any] = {
        "format": file_format,
        "fs_source": "file",
        "timestamps_synthesised": meas is None,
        "measurement_date": meas.isoformat() if meas is not None else None,
    }
    if meas is not None:
        metadata["start_time"] = t0
    return recording_from_array(
        data,
        fs,
        [names[i] for i in picks],
        timestamps=timestamps,
        markers=markers,
        metadata=metadata,
        source=src,
        target_fs=target_fs,
        require_electrodes=require_electrodes,
    )


def _annotation_markers(
    raw: mne.io.BaseRaw,
    timestamps: np.ndarray[Any, np.dtype[np.float64]],
    fs: float,
    labels: Mapping[int, str],
    marker_map: Mapping[int, str] | None,
) -> list[Marker]:
    """Annotations inside the data as markers on their nearest sample."""
    ann = raw.annotations
    if len(ann) == 0 or timestamps.shape[0] == 0:
        return []
    # MNE's annotation onsets count from meas_date (or the first sample with orig_time None)
    # and include first_time: subtracting it gives seconds from the first sample in both cases
    rel = np.asarray(ann.onset, dtype=np.float64) - float(raw.first_time)
    samples = np.rint(rel * fs).astype(np.int64)
    inside = (samples >= 0) & (samples < timestamps.shape[0])
    out: list[Marker] = []
    for k in np.flatnonzero(inside).tolist():
        desc = str(ann.description[k])
        label = label_from_text(desc)
        if label is None:
            try:
                value = int(float(desc))
            except ValueError:
                continue  # an empty description: nothing to label
            label = label_for(value, labels, marker_map)
        else:
            value = _NO_CODE
        s = int(samples[k])
        out.append(Marker(s, float(timestamps[s]), value, label, float(ann.duration[k])))
    return out


# --- annotations out ---------------------------------------------------------------------------


def to_annotations(
    messages: Iterable[Message],
    *,
    orig_time: datetime | Literal["auto"] | None = "auto",
) -> mne.Annotations:
    """Artifact events (and ``signal_fault`` statuses) as ``mne.Annotations``.

    Descriptions are ``BAD_blink``, ``BAD_jaw_clench`` and ``BAD_signal_fault``, so
    ``mne.Epochs(..., reject_by_annotation=True)`` drops the epochs they touch. Final-phase
    events are used (an onset without its final, e.g. a stream closed mid-artifact, counts with
    its provisional end). ``extras`` (MNE >= 1.8) carry each event's ``confidence`` and ``id``.

    ``orig_time``:

    - ``"auto"`` (default): events on a unix clock (EmotivPRO CSVs, EDF/FIF with a measurement
      date, live streams) get an ``orig_time`` and onsets from it, so ``raw.set_annotations``
      aligns them by absolute time; events of arrays or files without a date (seconds from the
      first sample) get ``orig_time=None``, MNE's "from the first sample".
    - ``None``: onsets in the events' own clock (``onset_lsl``), ``orig_time=None``.
    - a ``datetime``: onsets counted from it (naive datetimes are taken as UTC).
    """
    mne = import_mne("eegstream.to_annotations")
    msgs = list(messages)
    finals = {m.id for m in msgs if isinstance(m, ArtifactEvent) and m.phase == "final"}
    events = [
        m
        for m in msgs
        if isinstance(m, ArtifactEvent) and (m.phase == "final" or m.id not in finals)
    ]
    faults = [
        m
        for m in msgs
        if isinstance(m, StatusMessage)
        and m.status == "signal_fault"
        and m.start_lsl is not None
        and m.end_lsl is not None
    ]
    # the events' own clock -> unix (0 for unix-stamped recordings and undated arrays)
    to_unix = (
        round(float(np.median([e.onset_unix - e.onset_lsl for e in events])), 6) if events else 0.0
    )
    starts = [e.onset_lsl for e in events] + [float(f.start_lsl or 0.0) for f in faults]
    if isinstance(orig_time, str):
        if orig_time != "auto":
            raise EegstreamError(
                f"orig_time: expected 'auto', None or a datetime, got {orig_time!r}"
            )
        if to_unix != 0.0:
            origin: datetime | None = datetime.fromtimestamp(to_unix, UTC)
        elif starts and min(starts) > 1e8:  # already unix seconds: count from a whole second
            origin = datetime.fromtimestamp(math.floor(min(starts)), UTC)
        else:
            origin = None
    elif orig_time is None or isinstance(orig_time, datetime):
        origin = orig_time
        if origin is not None and origin.tzinfo is None:
            origin = origin.replace(tzinfo=UTC)
    else:
        raise EegstreamError(
            f"orig_time: expected 'auto', None or a datetime, got {type(orig_time).__name__}"
        )
    ref = origin.timestamp() if origin is not None else 0.0
    shift = (to_unix if origin is not None else 0.0) - ref  # events' clock -> seconds from origin
    onset = [e.onset_lsl + shift for e in events]
    onset += [float(f.start_lsl or 0.0) + shift for f in faults]
    duration = [max(0.0, e.offset_lsl - e.onset_lsl) for e in events]
    duration += [max(0.0, float(f.end_lsl or 0.0) - float(f.start_lsl or 0.0)) for f in faults]
    description = [DESCRIPTIONS[e.label] for e in events] + [DESCRIPTIONS["signal_fault"]] * len(
        faults
    )
    kwargs: dict[str, Any] = {}
    if "extras" in inspect.signature(mne.Annotations).parameters:
        kwargs["extras"] = [{"confidence": float(e.confidence), "id": e.id} for e in events] + [
            {"confidence": float("nan"), "id": f"{f.stream_id}-fault-{i + 1}"}
            for i, f in enumerate(faults)
        ]
    return mne.Annotations(
        onset=np.asarray(onset, dtype=np.float64),
        duration=np.asarray(duration, dtype=np.float64),
        description=description,
        orig_time=origin,
        **kwargs,
    )


def write_annotations(annotations: mne.Annotations, path: Path, flag: str = "--output") -> None:
    """Write annotations whole (temp file + rename) as FIF, MNE text or CSV by suffix.

    ``.fif`` keeps everything (``orig_time``, ``extras``). ``.txt`` is MNE's text layout
    written here with ``orig_time`` to the microsecond (MNE 1.13 writes a whole-second
    ``orig_time`` that its own reader then ignores) and without extras (reading extras back
    needs pandas). ``.csv`` is MNE's own and needs pandas.
    """
    suffix = path.suffix.lower()
    if suffix not in ANNOTATION_SUFFIXES:
        raise EegstreamError(
            f"{flag} {path}: annotations are written as {', '.join(ANNOTATION_SUFFIXES)} "
            f"(mne.read_annotations reads them back), got {suffix or 'no suffix'}; rename it"
        )
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        if suffix == ".txt":
            tmp.write_text(_annotations_txt(annotations), encoding="utf-8")
        else:
            if suffix == ".csv":
                _import_pandas(f"{flag} {path} (annotation CSV)")
            with warnings.catch_warnings():
                # MNE prefers *-annot.fif names; any .fif reads back with mne.read_annotations
                warnings.filterwarnings("ignore", message=".*does not conform to MNE naming")
                annotations.save(tmp, overwrite=True, verbose="error")
        os.replace(tmp, path)
    except OSError as exc:
        raise EegstreamError(
            f"{flag} {path}: cannot write ({exc.strerror or exc}); choose a writable file path"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _import_pandas(what: str) -> ModuleType:
    """``pandas``, which MNE needs for annotation CSV, or an error saying so."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        raise EegstreamError(
            f"{what} needs pandas (MNE writes and reads annotation CSV through it); "
            "install it with pip install pandas, or write .fif or .txt instead"
        ) from None


def _annotations_txt(annotations: mne.Annotations) -> str:
    """MNE's ``# MNE-Annotations`` text: onset, duration, description per line."""
    lines = ["# MNE-Annotations"]
    if annotations.orig_time is not None:
        lines.append(f"# orig_time : {annotations.orig_time:%Y-%m-%d %H:%M:%S.%f}")
    lines.append("# onset, duration, description")
    for o, d, desc in zip(
        annotations.onset, annotations.duration, annotations.description, strict=True
    ):
        lines.append(f"{float(o)!r},{float(d)!r},{str(desc).replace(',', '_')}")
    return "\n".join(lines) + "\n"
