"""Labelled EEG epochs (one gesture per short CSV) in, and continuous sessions built from them.

A folder of epochs such as ``museeg-epocplus-trainbatch1`` holds ``<gesture>_<n>.csv`` files, each
a 1.5 s EPOC+ stretch cut around one gesture, with no onset and no timestamps. The detector works
on continuous streams with a per-person warm-up and markers at artifact onsets, so this module

1. reads the epochs by column name (:func:`read_epochs`), with a fixed held-out part that training
   never sees (:func:`is_held_out`);
2. finds where each blink or lip bite starts from the signal itself (:func:`find_onset`), with the
   simulator's marker convention (the start of the deflection);
3. joins epochs into a 128 Hz :class:`~eegstream.io.recording.Recording` that looks like a session:
   rest epochs first (the warm-up), then every gesture followed by rest, without steps at the joins
   (rest epochs tilted to bridge levels, gestures kept as recorded), on EmotivPRO's ~4,200 uV
   offset, with markers 22/23 at the onsets (:func:`assemble_session`, :func:`training_sessions`).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError
from eegstream.io.emotiv import read_recording
from eegstream.io.recording import Marker, Recording, resample_recording
from eegstream.settings import ARTIFACT_LABELS, CLASSES, DEFAULT_MARKER_LABELS, ELECTRODES, FS

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LABEL_MAP",
    "EPOCH_RATES",
    "HOLDOUT_RULE",
    "REST_GESTURE",
    "Epoch",
    "EpochSession",
    "EpochSpan",
    "assemble_session",
    "find_onset",
    "is_held_out",
    "parse_label_map",
    "read_epochs",
    "spontaneous_blink",
    "training_sessions",
    "with_spontaneous_blinks",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Part = Literal["all", "train", "held-out"]

#: Gesture (file-name prefix) -> class, for the MusEEG EPOC+ epochs.
DEFAULT_LABEL_MAP: dict[str, str] = {
    "hardblink": "blink",
    # Biting the lower lip is the nearest thing to a jaw clench in that data: masseter/facial EMG
    # on every electrode. There is no real clench gesture among the nine.
    "bitelowerlip": "jaw_clench",
    "neutral": "nothing",
    # Confounders: movements with EMG or EOG that the detector must *not* call an artifact.
    "eyebrows": "nothing",
    "smile": "nothing",
    "scrunch": "nothing",
    "tongue": "nothing",
    "lookleft": "nothing",
    "lookright": "nothing",
}
#: The gesture that is plain rest: it fills the warm-up and the gaps between gestures.
REST_GESTURE = "neutral"
#: Epoch sampling rates read (Hz): the model rate, and EPOC+ high-rate mode resampled once.
EPOCH_RATES: tuple[float, ...] = (128.0, 256.0)
#: The fixed held-out part, in words (for reports and ``--help``).
HOLDOUT_RULE = (
    "every third epoch of each gesture by its file index (index % 3 == 2) is held out: "
    "training never sees it"
)
#: Shortest epoch accepted (s): shorter ones cannot hold a gesture and the rest around it.
MIN_EPOCH_S = 1.0
#: Electrodes a blink shows on (frontal, nearest the eyes).
FRONTAL: tuple[str, ...] = ("AF3", "F7", "F8", "AF4")
BLINK_LOWPASS_HZ = 8.0  #: blinks are slow; this removes EMG and line noise before the envelope
BLINK_ONSET_FRACTION = 0.15  #: onset = where the rise passes this fraction of its peak
#: A frontal electrode takes part in blink onsets only if its deflection reaches this fraction of
#: the largest one and ``BLINK_MIN_UV``. The onset is the earliest of the electrodes' rises, each
#: normalised to its own peak, so a weak electrode would turn small slow shifts into early onsets:
#: in forced MusEEG blinks AF3/AF4 move by 300-600 uV (often as a slow plateau from the epoch's
#: start) while F7/F8 swing by 3,000-4,600 uV, and with 0.1 here 16 of 88 onsets fell in the
#: first 30 ms (6 with 0.25: epochs cut mid-blink) and the median moved from 133 ms (the steep
#: F7/F8 rise) to 82 ms. AF4 is also nearly flat in many epochs.
BLINK_MIN_FRACTION = 0.25
BLINK_MIN_UV = 20.0
BLINK_RISE_MIN_S = 0.02  #: a blink peaking this early in its epoch began before it
EMG_BAND_HZ: tuple[float, float] = (20.0, 60.0)  #: jaw/facial EMG band (below 128 Hz Nyquist)
EMG_RMS_S = 0.05  #: moving-rms window of the EMG envelope
EMG_LEVEL_PERCENTILE = 10.0  #: the envelope's resting level
EMG_ONSET_FRACTION = 0.2  #: onset = last crossing of level + this fraction of (peak - level)
JOIN_S = 0.03  #: seconds fitted at each end of an epoch to join it to its neighbour
DC_OFFSET_UV = 4200.0  #: EmotivPRO raw data sit on this offset; sessions carry it too
SESSION_T0 = 1.7e9  #: first timestamp of a session (unix-like seconds, as the simulator uses)
_FILE_NAME = re.compile(r"^(?P<gesture>\S.*?)_(?P<index>\d+)\.csv$")
_MARKER_VALUE = {label: value for value, label in DEFAULT_MARKER_LABELS.items()}


@dataclass(frozen=True, eq=False)
class Epoch:
    """One labelled epoch as read from its file.

    ``eq=False``: epochs compare by identity, since comparing arrays element-wise is ambiguous.
    """

    gesture: str  #: file-name prefix (``hardblink``)
    index: int  #: file-name number (``hardblink_12.csv`` -> 12)
    label: str  #: class from the label map (``blink``, ``jaw_clench`` or ``nothing``)
    data: F64  #: ``(n, 14)`` microvolts in ``ELECTRODES`` order
    fs: float  #: sampling rate (Hz)
    source: str  #: path of the file

    @property
    def name(self) -> str:
        """``<gesture>_<index>``, the file's stem (for messages)."""
        return f"{self.gesture}_{self.index}"


@dataclass
class EpochSpan:
    """Where one epoch lies in a session (samples at 128 Hz)."""

    gesture: str
    label: str
    index: int  #: the epoch's file index
    start: int  #: first sample of the epoch in the session
    stop: int  #: one past its last sample
    onset: int | None  #: the gesture's onset (session sample) for blink / jaw_clench, else None


@dataclass
class EpochSession:
    """A continuous 128 Hz session assembled from epochs, with where each epoch went."""

    recording: Recording  #: markers 22 (blink) / 23 (jaw clench) at the onsets
    spans: list[EpochSpan]  #: every epoch in session order (warm-up included)
    warmup_s: float  #: seconds of rest at the start (the detector's per-person warm-up)
    rest_gesture: str = REST_GESTURE  #: the gesture used as rest (not a confounder)

    def confounders(self) -> I64:
        """``(k, 3)`` ``[start, length, weight]`` of the non-rest "nothing" gestures.

        For :func:`eegstream.dataset.plan_windows`, which samples extra "nothing" windows over
        these spans: smiles, eyebrow raises and eye movements are what the detector confuses with
        blinks and clenches, and plain rest needs no such help.
        """
        rows = [
            (s.start, s.stop - s.start, 1)
            for s in self.spans
            if s.label == "nothing" and s.gesture != self.rest_gesture
        ]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


# --- label map and held-out part ---------------------------------------------------------------


def parse_label_map(text: str) -> dict[str, str]:
    """Parse ``"hardblink=blink, bitelowerlip=jaw_clench, neutral=nothing"`` (``--label-map``).

    Whitespace around names is ignored and empty items (a trailing comma) are skipped; anything
    ambiguous is an :class:`EegstreamError` rather than a silently dropped gesture.
    """
    allowed = ", ".join(CLASSES)
    out: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if "=" not in item:
            raise EegstreamError(
                f"--label-map item {item!r} has no '='; write GESTURE=LABEL items separated by "
                f"commas, LABEL one of {allowed} (e.g. hardblink=blink,neutral=nothing)"
            )
        gesture, _, label = (part.strip() for part in item.partition("="))
        if not gesture or not label:
            which = "gesture" if not gesture else "label"
            raise EegstreamError(
                f"--label-map item {item!r} has an empty {which}; write GESTURE=LABEL with LABEL "
                f"one of {allowed}"
            )
        if gesture in out:
            raise EegstreamError(
                f"--label-map names gesture {gesture!r} twice ({gesture}={out[gesture]} and "
                f"{gesture}={label}); keep one of them"
            )
        if label not in CLASSES:
            raise EegstreamError(
                f"--label-map gives {gesture!r} the label {label!r}; labels are {allowed}: "
                f"use one of them (e.g. {gesture}=nothing)"
            )
        out[gesture] = label
    if not out:
        raise EegstreamError(
            f"--label-map {text!r} names no gesture; write GESTURE=LABEL items separated by "
            f"commas, LABEL one of {allowed}"
        )
    return out


def is_held_out(index: int) -> bool:
    """True for the fixed held-out epochs (see ``HOLDOUT_RULE``).

    By file index rather than at random, so the split is the same for every run, seed and
    reader, and no tuning can ever leak into it.
    """
    return index % 3 == 2


# --- reading -----------------------------------------------------------------------------------


def _check_labels(label_map: Mapping[str, str]) -> None:
    bad = {g: lab for g, lab in label_map.items() if lab not in CLASSES}
    if bad:
        raise EegstreamError(
            f"label map gives {', '.join(f'{g}={lab}' for g, lab in bad.items())}; labels are "
            f"{', '.join(CLASSES)}: use one of them"
        )


def _list_files(folder: Path) -> list[tuple[str, int, Path]]:
    """``(gesture, index, path)`` of every ``*.csv`` in ``folder``, checked and sorted."""
    if not folder.exists():
        raise EegstreamError(
            f"epoch folder {folder} does not exist; give the folder of <gesture>_<n>.csv files "
            f"(current folder: {Path.cwd()})"
        )
    if not folder.is_dir():
        raise EegstreamError(
            f"epoch folder {folder} is a file, not a folder; give the folder that holds the "
            "<gesture>_<n>.csv files"
        )
    paths = sorted(p for p in folder.glob("*.csv") if p.is_file())
    if not paths:
        raise EegstreamError(
            f"epoch folder {folder} has no *.csv files; give a folder of <gesture>_<n>.csv epochs"
        )
    files: dict[tuple[str, int], Path] = {}
    for p in paths:
        m = _FILE_NAME.match(p.name)
        if m is None:
            raise EegstreamError(
                f"epoch file {p} is not named <gesture>_<n>.csv (e.g. hardblink_12.csv), so its "
                "gesture is unknown; rename it or move it out of the folder"
            )
        key = (m.group("gesture"), int(m.group("index")))
        if key in files:
            raise EegstreamError(
                f"epoch files {files[key].name} and {p.name} both are {key[0]} number {key[1]}; "
                "remove one of them"
            )
        files[key] = p
    return [(g, i, p) for (g, i), p in sorted(files.items())]


def _read_one(path: Path, fs: float) -> F64:
    """The ``(n, 14)`` microvolts of one epoch file, by column name, checked."""
    # fs=None: a rate the file states itself (timestamps) must not be overridden silently
    rec = read_recording(
        path, fs=None, target_fs=None, require_electrodes=False, repair_cells=False
    )
    if rec.metadata.get("fs_source") in ("metadata", "timestamps"):
        how = "its metadata line" if rec.metadata["fs_source"] == "metadata" else "its timestamps"
        if rec.fs not in EPOCH_RATES:
            raise EegstreamError(
                f"epoch file {path} is a {rec.fs:g} Hz epoch file (from {how}); only 128 or "
                "256 Hz epochs are supported: export or resample the epochs at 128 or 256 Hz"
            )
        if rec.fs != fs:
            raise EegstreamError(
                f"epoch file {path} is sampled at {rec.fs:g} Hz (from {how}) but fs={fs:g} was "
                f"given; pass fs={rec.fs:g} (--epoch-fs {rec.fs:g})"
            )
    if rec.missing:
        found = [e for e in ELECTRODES if e not in rec.missing]
        raise EegstreamError(
            f"epoch file {path} has no column for electrode {', '.join(rec.missing)} (EEG.<name> "
            f"or <name>); it has: {', '.join(found)}; every epoch needs all 14 EPOC electrodes"
        )
    bad = ~np.isfinite(rec.data)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise EegstreamError(
            f"epoch file {path} holds a non-finite value ({rec.data[row, col]}) in column "
            f"{ELECTRODES[col]}, data row {row + 1}; fix or remove that file"
        )
    return rec.data


def read_epochs(
    folder: str | os.PathLike[str],
    label_map: Mapping[str, str] | None = None,
    *,
    fs: float = 256.0,
    part: Part = "all",
    progress: bool = False,
) -> list[Epoch]:
    """Read every ``<gesture>_<n>.csv`` in ``folder`` as a labelled :class:`Epoch`.

    Parameters
    ----------
    folder
        The epoch folder; other files (a README) are ignored, every ``*.csv`` must be an epoch.
    label_map
        Gesture -> class; every gesture in the folder must be labelled, so that nothing is left
        out of training by a typo. ``None`` uses :data:`DEFAULT_LABEL_MAP` (whose gestures the
        folder need not all have); a map given explicitly must name only gestures the folder has.
    fs
        Sampling rate of files without timestamps (one of :data:`EPOCH_RATES`).
    part
        ``"train"``, ``"held-out"`` (see :data:`HOLDOUT_RULE`) or ``"all"``.
    progress
        Show a progress bar on stderr.

    Returns
    -------
    list[Epoch]
        Sorted by ``(gesture, index)``.
    """
    if part not in ("all", "train", "held-out"):
        raise EegstreamError(f"part must be 'all', 'train' or 'held-out', got {part!r}")
    if float(fs) not in EPOCH_RATES:
        raise EegstreamError(
            f"epochs at fs={fs:g} Hz are not supported; only 128 or 256 Hz epochs are "
            "(EPOC+ standard and high-rate modes): pass fs=128 or fs=256"
        )
    explicit = label_map is not None
    labels = dict(DEFAULT_LABEL_MAP if label_map is None else label_map)
    _check_labels(labels)
    folder = Path(folder)
    files = _list_files(folder)
    present = sorted({g for g, _, _ in files})
    unlabelled = [g for g in present if g not in labels]
    if unlabelled:
        raise EegstreamError(
            f"epoch folder {folder} has gestures the label map does not label: "
            f"{', '.join(unlabelled)}; label each, e.g. --label-map {unlabelled[0]}=nothing"
        )
    unknown = [g for g in labels if g not in present] if explicit else []
    if unknown:
        raise EegstreamError(
            f"unknown gesture {unknown[0]!r} in --label-map; the folder has: "
            f"{', '.join(present)}; fix the name or drop it from the map"
        )
    if part != "all":
        files = [f for f in files if is_held_out(f[1]) == (part == "held-out")]
        if not files:
            raise EegstreamError(
                f"epoch folder {folder} has no {part} epochs ({HOLDOUT_RULE}); it needs at "
                "least three files of a gesture, or use part='all'"
            )

    from tqdm import tqdm

    epochs: list[Epoch] = []
    for gesture, index, path in tqdm(
        files, desc="epochs", unit="file", file=sys.stderr, disable=not progress, leave=False
    ):
        data = _read_one(path, float(fs))
        epochs.append(Epoch(gesture, index, labels[gesture], data, float(fs), str(path)))
    _check_lengths(epochs)
    log.info(
        "read %d %s epochs from %s: %s",
        len(epochs),
        part,
        folder,
        ", ".join(f"{g} {n}" for g, n in sorted(Counter(e.gesture for e in epochs).items())),
    )
    return epochs


def _check_lengths(epochs: Sequence[Epoch]) -> None:
    """All epochs at least ``MIN_EPOCH_S`` long and of one length (a cut-off file is a mistake)."""
    for e in epochs:
        n = e.data.shape[0]
        if n < MIN_EPOCH_S * e.fs:
            raise EegstreamError(
                f"epoch file {e.source} has {n} rows ({n / e.fs:.3f} s at {e.fs:g} Hz), shorter "
                f"than {MIN_EPOCH_S:g} s; epochs must hold the gesture and the rest around it: "
                "remove that file or check fs"
            )
    lengths = Counter(e.data.shape[0] for e in epochs)
    if len(lengths) > 1:
        common = lengths.most_common(1)[0][0]
        odd = next(e for e in epochs if e.data.shape[0] != common)
        raise EegstreamError(
            f"epoch file {odd.source} has {odd.data.shape[0]} rows but the other epochs have "
            f"{common}; every epoch must have the same length: fix or remove that file"
        )


# --- onsets ------------------------------------------------------------------------------------


def _rise_start(env: F64, peak: int, threshold: float) -> int:
    """First sample of the run of ``env >= threshold`` that ends at ``peak`` (0 if it starts before)."""
    below = np.flatnonzero(env[: peak + 1] < threshold)
    return int(below[-1]) + 1 if below.size else 0


def _blink_onset(epoch: Epoch) -> int:
    from scipy.signal import butter, sosfiltfilt

    cols = [ELECTRODES.index(e) for e in FRONTAL]
    x = epoch.data[:, cols]
    sos = butter(4, BLINK_LOWPASS_HZ, btype="low", fs=epoch.fs, output="sos")
    # zero-phase: a label, computed offline, must not be delayed by the filter
    dev = sosfiltfilt(sos, x - np.median(x, axis=0), axis=0)
    at = np.argmax(np.abs(dev), axis=0)
    peaks = np.abs(dev[at, np.arange(dev.shape[1])])
    keep = peaks >= max(BLINK_MIN_UV, BLINK_MIN_FRACTION * float(peaks.max()))
    if not keep.any():
        raise EegstreamError(
            f"epoch {epoch.source} is labelled {epoch.label} but no frontal electrode "
            f"({', '.join(FRONTAL)}) deflects by {BLINK_MIN_UV:g} uV; its onset cannot be found: "
            "check the file or its label"
        )
    # each electrode turned so that its blink deflection is positive, normalised to its peak
    up = dev[:, keep] * np.sign(dev[at[keep], np.flatnonzero(keep)])
    peak = int(np.argmax((up / peaks[keep]).mean(axis=1)))  # where they are together strongest
    if peak < BLINK_RISE_MIN_S * epoch.fs:
        return 0  # no blink rises that fast: it began before the epoch (cut at its peak)
    # The rise is measured from the lowest point before the peak, not from the epoch's median:
    # in most MusEEG blinks the level before the blink is hundreds of uV above the level after
    # it, and from the median 54 of 88 forced blinks seemed to start before their epoch did.
    base = up[: peak + 1].min(axis=0)
    rise = (up - base) / np.maximum(up.max(axis=0) - base, 1e-9)  # a peak at 0: 0/0
    return _rise_start(rise.max(axis=1), peak, BLINK_ONSET_FRACTION)


def _emg_onset(epoch: Epoch) -> int:
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import butter, sosfiltfilt

    hi = min(EMG_BAND_HZ[1], 0.95 * epoch.fs / 2)
    sos = butter(4, (EMG_BAND_HZ[0], hi), btype="band", fs=epoch.fs, output="sos")
    x = epoch.data - np.median(epoch.data, axis=0)
    y = sosfiltfilt(sos, x, axis=0)
    width = max(1, round(EMG_RMS_S * epoch.fs))
    rms = np.sqrt(uniform_filter1d(y * y, width, axis=0, mode="nearest"))
    env = rms.sum(axis=1)
    level = float(np.percentile(env, EMG_LEVEL_PERCENTILE))
    peak = int(np.argmax(env))
    if env[peak] <= level:
        raise EegstreamError(
            f"epoch {epoch.source} is labelled {epoch.label} but holds no EMG burst; its onset "
            "cannot be found: check the file or its label"
        )
    return _rise_start(env, peak, level + EMG_ONSET_FRACTION * (float(env[peak]) - level))


def find_onset(epoch: Epoch) -> int:
    """Sample (at the epoch's own rate) where the epoch's blink or jaw clench starts.

    The epochs carry no onset, and the detector is trained on windows placed relative to one, so
    it is found from the signal with the simulator's convention (the start of the deflection):

    - blink: the frontal electrodes whose deflection (low-passed below 8 Hz, from the epoch's
      median) reaches 25 % of the largest one; each one's rise from its lowest point before the
      joint peak, normalised to its peak; the onset is where the largest of them, going back
      from the joint peak, last reaches 15 % (0 when the joint peak is in the first 20 ms);
    - jaw clench: 20-60 Hz EMG rms (50 ms) summed over electrodes; the onset is the last
      crossing of ``level + 20 % (peak - level)`` before the peak (level: 10th percentile).

    0 means the gesture was already under way when the epoch begins.

    Raises
    ------
    EegstreamError
        For a "nothing" epoch (it has no onset; callers ask only artifact epochs), or an epoch
        without any deflection or EMG burst.
    """
    if epoch.label == "blink":
        return _blink_onset(epoch)
    if epoch.label == "jaw_clench":
        return _emg_onset(epoch)
    raise EegstreamError(
        f"epoch {epoch.source} is labelled {epoch.label!r}; onsets exist only for "
        f"{' and '.join(ARTIFACT_LABELS)} epochs"
    )


#: A spontaneous blink inside a rest epoch (:func:`spontaneous_blink`): both AF3 and F8 rise by
#: at least this much together (0.5-8 Hz), F7 with them, for a blink's duration.
SPONTANEOUS_BLINK_UV: float = 60.0
SPONTANEOUS_BLINK_S: tuple[float, float] = (0.08, 0.5)  #: width at half height
#: The gesture name an epoch flagged by :func:`spontaneous_blink` takes (label blink).
SPONTANEOUS_GESTURE = "neutral_blink"


def spontaneous_blink(epoch: Epoch) -> int | None:
    """Onset sample of a spontaneous blink in a rest epoch, or None; a rule, not the model.

    Relaxed people blink 10-20 times a minute, and the MusEEG "neutral" epochs hold some
    (neutral_14: AF3, F7 and F8 rise 100-160 uV together for ~0.25 s). The issue's figure for
    rest counts *false* artifact events, and detecting those blinks is the product's job, so
    training and ``evaluate --epochs`` (unless ``--as-labelled``) treat such epochs as blinks
    (gesture ``neutral_blink``). The rule, independent of any model: after a 0.5-8 Hz
    zero-phase band-pass, min(AF3, F8) peaks at >= ``SPONTANEOUS_BLINK_UV`` upwards (EPOC+
    blinks are positive: all 88 forced blinks are), F7 moves the same way by at least 20 % of
    that (a horizontal eye movement moves F7 and F8 in opposite directions), and the common rise
    is ``SPONTANEOUS_BLINK_S`` wide at half height. AF4, often without contact, is not used.
    """
    from scipy.signal import butter, sosfiltfilt

    col = {e: ELECTRODES.index(e) for e in ("AF3", "F7", "F8")}
    sos = butter(2, (0.5, 8.0), btype="band", fs=epoch.fs, output="sos")
    y = sosfiltfilt(sos, epoch.data - np.median(epoch.data, axis=0), axis=0)
    af3, f7, f8 = y[:, col["AF3"]], y[:, col["F7"]], y[:, col["F8"]]
    common = np.minimum(af3, f8)
    k = int(np.argmax(common))
    height = float(common[k])
    if height < SPONTANEOUS_BLINK_UV or f7[k] < 0.2 * height:
        return None
    half = common >= height / 2
    lo = k - int(np.argmin(half[k::-1])) + 1 if not half[: k + 1].all() else 0
    hi = k + int(np.argmin(half[k:])) if not half[k:].all() else half.shape[0]
    width = (hi - lo) / epoch.fs
    if not SPONTANEOUS_BLINK_S[0] <= width <= SPONTANEOUS_BLINK_S[1]:
        return None
    return lo


# --- sessions ----------------------------------------------------------------------------------


def _edges(y: F64, width: int) -> tuple[F64, F64]:
    """Per channel, the level just before the first sample and just after the last one.

    Each is a least-squares line through ``width`` samples at that end, evaluated half a sample
    outside it: less noisy than one sample, and unlike a plain mean it follows a steep edge (a
    blink already rising when its epoch begins, which would otherwise start with a step of
    hundreds of uV).
    """
    w = min(width, y.shape[0])
    if w < 2:
        return y[0].copy(), y[-1].copy()
    t = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    half = (w - 1) / 2.0 + 0.5  # from a window's centre to half a sample past its edge
    head, tail = y[:w], y[-w:]
    slope_head = t @ (head - head.mean(axis=0)) / (t @ t)
    slope_tail = t @ (tail - tail.mean(axis=0)) / (t @ t)
    return head.mean(axis=0) - half * slope_head, tail.mean(axis=0) + half * slope_tail


def _joined(order: Sequence[Epoch], rest: str, width: int) -> list[F64]:
    """Each epoch minus its median, joined so that no join has a step and levels never drift.

    Every epoch starts where the one before it ended (the :func:`_edges` levels):

    - a gesture is only shifted (its shape kept exactly as recorded) and ends wherever its own
      recording ends relative to its start (a blink's undershoot, a headset shift);
    - a rest epoch returns from there to its own level along a raised cosine (no kink at either
      end), as the EPOC+'s AC coupling brings a shifted level back after a gesture; before a
      gesture already under way when its epoch begins (an onset at 0: 5 of 88 forced blinks
      start above 30 % of their peak) it goes to that gesture's start instead, so the gesture is
      not turned into a swing of the wrong sign.

    Slow ramps therefore sit *after* gestures, as in a real recording, not before them, where a
    rest epoch ramping hundreds of uV towards a blink's start level looked like a blink itself
    (the first version did that: 16 blink events in held-out rest, 11 of them before a gesture).
    """
    ys = [e.data - np.median(e.data, axis=0) for e in order]
    edges = [_edges(y, width) for y in ys]
    out: list[F64] = []
    previous = edges[0][0] if ys else np.zeros(len(ELECTRODES))
    for i, (e, y) in enumerate(zip(order, ys, strict=True)):
        first, last = edges[i]
        if e.gesture != rest:
            out.append(np.asarray(y + (previous - first), dtype=np.float64))
            previous = previous - first + last
            continue
        nxt = order[i + 1] if i + 1 < len(order) else None
        end = edges[i + 1][0] if nxt is not None and _under_way(nxt, rest) else last
        t = (np.arange(y.shape[0], dtype=np.float64)[:, None] + 0.5) / y.shape[0]
        s = 0.5 - 0.5 * np.cos(np.pi * t)  # 0 -> 1 with zero slope at both ends
        out.append(np.asarray(y + (previous - first) * (1.0 - s) + (end - last) * s, np.float64))
        previous = end
    return out


def _under_way(e: Epoch, rest: str) -> bool:
    """An artifact epoch whose gesture began before the epoch did (onset 0)."""
    return e.gesture != rest and e.label in ARTIFACT_LABELS and find_onset(e) == 0


def _order(
    epochs: Sequence[Epoch], rng: np.random.Generator, warmup_s: float, gap_epochs: int, rest: str
) -> list[Epoch]:
    """Warm-up rest epochs, then each gesture in random order followed by ``gap_epochs`` rests."""
    rests = sorted((e for e in epochs if e.gesture == rest), key=lambda e: e.index)
    others = sorted((e for e in epochs if e.gesture != rest), key=lambda e: (e.gesture, e.index))
    order: list[Epoch] = []
    k = 0  # next rest epoch, cycling
    filled = 0.0
    while filled < warmup_s:
        e = rests[k % len(rests)]
        order.append(e)
        filled += e.data.shape[0] / e.fs
        k += 1
    for i in rng.permutation(len(others)).tolist():
        order.append(others[i])
        for _ in range(gap_epochs):
            order.append(rests[k % len(rests)])
            k += 1
    return order


def assemble_session(
    epochs: Sequence[Epoch],
    *,
    seed: int = 0,
    warmup_s: float = 20.0,
    gap_epochs: int = 1,
    rest_gesture: str = REST_GESTURE,
    source: str = "<epochs>",
) -> EpochSession:
    """Join epochs into one continuous 128 Hz session, the way a recording of them would look.

    Rest epochs (``rest_gesture``) fill ``warmup_s`` first, in file order (the detector's per-person
    warm-up must see rest); then every other epoch comes once, in an order drawn from ``seed``,
    each followed by ``gap_epochs`` rest epochs (cycling through all of them, reused as needed).
    Each epoch is centred on its median and tilted by a linear ramp so that it starts at the level
    where the previous one ended (~30 ms at each end): no step at a join, no drift, and gestures
    after rest kept as recorded (see :func:`_joined`). A 4,200 uV offset is added, as in EmotivPRO raw data. 256 Hz epochs are joined at 256 Hz and
    resampled to 128 Hz once, with the same resampler as a live 256 Hz stream.

    Markers (22 blink, 23 jaw clench, duration 0) sit at :func:`find_onset` of each artifact epoch.
    """
    if not epochs:
        raise EegstreamError("assemble_session got no epochs; read some with read_epochs(folder)")
    if warmup_s < 0 or gap_epochs < 0:
        raise EegstreamError(
            f"warmup_s and gap_epochs must be >= 0, got {warmup_s} and {gap_epochs}"
        )
    rates = sorted({e.fs for e in epochs})
    if len(rates) > 1:
        raise EegstreamError(
            f"epochs at {' and '.join(f'{r:g} Hz' for r in rates)} cannot be joined into one "
            "session; read them with one fs"
        )
    fs = rates[0]
    if fs not in EPOCH_RATES:
        raise EegstreamError(f"epochs at {fs:g} Hz are not supported; only 128 or 256 Hz are")
    gestures = sorted({e.gesture for e in epochs})
    if rest_gesture not in gestures:
        raise EegstreamError(
            f"no rest epochs ({rest_gesture!r}) among the epochs given (gestures: "
            f"{', '.join(gestures)}); a session needs them for its warm-up and the gaps between "
            f"gestures: include the {rest_gesture} files or pass rest_gesture=<one of those>"
        )
    not_rest = {e.label for e in epochs if e.gesture == rest_gesture} - {"nothing"}
    if not_rest:
        raise EegstreamError(
            f"rest gesture {rest_gesture!r} is labelled {', '.join(sorted(not_rest))}; rest must "
            "be 'nothing': fix the label map or choose another rest_gesture"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    order = _order(epochs, rng, warmup_s, gap_epochs, rest_gesture)

    parts = _joined(order, rest_gesture, max(2, round(JOIN_S * fs)))
    spans: list[EpochSpan] = []
    markers: list[Marker] = []
    pos = 0
    for e, y in zip(order, parts, strict=True):
        n = y.shape[0]
        onset = None
        if e.label in ARTIFACT_LABELS:
            onset = pos + find_onset(e)
            value = _MARKER_VALUE[e.label]
            markers.append(Marker(onset, SESSION_T0 + onset / fs, value, e.label, 0.0))
        spans.append(EpochSpan(e.gesture, e.label, e.index, pos, pos + n, onset))
        pos += n
    data = np.concatenate(parts) + DC_OFFSET_UV
    rec = Recording(
        data=data,
        timestamps=SESSION_T0 + np.arange(pos, dtype=np.float64) / fs,
        fs=fs,
        markers=markers,
        metadata={
            "title": f"epoch session seed {seed}",
            "headset": "EPOC+",
            "headset_type": "EPOCPLUS",
            "start_time": SESSION_T0,
            "source_fs": fs,
            "seed": seed,
            "warmup_s": warmup_s,
            "gap_epochs": gap_epochs,
            "rest_gesture": rest_gesture,
        },
        source=source,
    )
    if fs != FS:
        rec = resample_recording(rec, FS)
        ratio = FS / fs

        def convert(sample: int) -> int:
            # the rule resample_recording applies to markers, so spans and markers agree
            return int(math.floor(sample * ratio + 0.5))

        for s in spans:
            s.start, s.stop = convert(s.start), convert(s.stop)
            s.onset = None if s.onset is None else convert(s.onset)
    log.info(
        "assembled %s: %d epochs, %.1f s at %g Hz, %d markers, warm-up %.1f s",
        source,
        len(spans),
        rec.duration,
        rec.fs,
        len(rec.markers),
        warmup_s,
    )
    return EpochSession(rec, spans, float(warmup_s), rest_gesture)


def training_sessions(
    epochs: Sequence[Epoch],
    *,
    seed: int = 0,
    gestures_per_session: int = 60,
    rest_gesture: str = REST_GESTURE,
) -> list[EpochSession]:
    """Split (training) epochs into several sessions so that whole sessions can be held out.

    The non-rest epochs are shuffled with ``seed`` and dealt into sessions of about
    ``gestures_per_session`` each; the rest epochs are dealt out too (each session gets its own,
    reused within it for the gaps), so no epoch appears in two sessions and a session held out for
    validation shares nothing with the others. No warm-up (training needs none).
    Pass the training part only (``read_epochs(..., part="train")``); this function does not look.
    """
    if gestures_per_session < 1:
        raise EegstreamError(f"gestures_per_session must be >= 1, got {gestures_per_session}")
    rests = [e for e in epochs if e.gesture == rest_gesture]
    others = [e for e in epochs if e.gesture != rest_gesture]
    if not rests:
        gestures = sorted({e.gesture for e in epochs})
        raise EegstreamError(
            f"no rest epochs ({rest_gesture!r}) among the epochs given (gestures: "
            f"{', '.join(gestures) or 'none'}); sessions need them between gestures: include the "
            f"{rest_gesture} files or pass rest_gesture=<one of those>"
        )
    k = max(1, min(round(len(others) / gestures_per_session), len(rests)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
    shuffled = [others[i] for i in rng.permutation(len(others)).tolist()]
    rest_order = [rests[i] for i in rng.permutation(len(rests)).tolist()]
    folder = str(Path(epochs[0].source).parent)
    sessions = []
    for i in range(k):
        session_seed = int(np.random.SeedSequence([seed, 6, i]).generate_state(1)[0])
        sessions.append(
            assemble_session(
                shuffled[i::k] + rest_order[i::k],
                seed=session_seed,
                warmup_s=0.0,
                rest_gesture=rest_gesture,
                source=f"{folder} (training session {i + 1} of {k}, seed {seed})",
            )
        )
    return sessions


def with_spontaneous_blinks(
    epochs: Sequence[Epoch], rest_gesture: str = REST_GESTURE
) -> list[Epoch]:
    """The epochs with every rest epoch holding a :func:`spontaneous_blink` relabelled blink.

    They become gesture ``neutral_blink`` (label blink), so sessions place them as blinks with an
    onset, not as rest: a model must not learn that a real blink is "nothing", and a detection
    there is not a false alarm.
    """
    out: list[Epoch] = []
    for e in epochs:
        if e.gesture == rest_gesture and spontaneous_blink(e) is not None:
            e = replace(e, gesture=SPONTANEOUS_GESTURE, label="blink")
        out.append(e)
    return out
