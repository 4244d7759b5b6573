"""Offline detection and evaluation: the live :class:`~eegstream.detector.Detector` run over a file.

``eegstream detect FILE`` feeds the recording to the very same detector a live stream uses, in
chunks, as fast as the engine allows, and writes the final-phase events as JSON Lines, a BIDS
``events.tsv`` or an MNE annotations file (``--format mne``: ``BAD_blink`` / ``BAD_jaw_clench`` /
``BAD_signal_fault``). FILE is an EmotivPRO CSV, or EDF/BDF/FIF read through MNE. ``eegstream evaluate FILE...`` does the same and compares the events with the
files' markers (:mod:`eegstream.evaluate`).

Times: event onsets and offsets are in the file's clock (its ``Timestamp`` column, unix seconds
for EmotivPRO exports); the detection time of each message is the data clock (the timestamp of
the last sample of the window that decided), so the output is reproducible and its latency is
the one a live detector would have had.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import numpy as np

from eegstream.detector import Detector
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.recording import Recording
from eegstream.preprocess import FeaturePipeline
from eegstream.settings import ELECTRODES, FS, MODEL_ELECTRODES, WINDOW, Settings

if TYPE_CHECKING:
    from eegstream.bundle import ModelBundle
    from eegstream.evaluate import EvaluationReport, GestureReport
    from eegstream.io.epochs import Epoch, EpochSession, Part

log = logging.getLogger(__name__)

__all__ = [
    "CHUNK_S",
    "DetectFormat",
    "EpochEvaluation",
    "EpochSelection",
    "FileDetection",
    "FilesEvaluation",
    "check_detect_output",
    "check_out_path",
    "detect_file",
    "detect_messages",
    "detect_recording",
    "detections_text",
    "evaluate_epochs",
    "evaluate_files",
    "final_events",
    "load_model",
    "write_bids",
    "write_detections",
    "write_jsonl",
    "write_outputs",
]

#: Seconds of data per ``Detector.process`` call. 10 s = 160 windows per engine call: large enough
#: that per-call overhead is negligible, small enough for a smooth progress bar.
CHUNK_S: float = 10.0
#: Recordings longer than this (s) get a progress bar (when stderr is a terminal).
PROGRESS_MIN_S: float = 120.0
#: Emotiv contact quality (0-4 scale) at or below which an electrode counts as poorly connected.
POOR_CONTACT: float = 1.0

#: BIDS events.tsv columns, in order, with their sidecar descriptions.
BIDS_COLUMNS: dict[str, str] = {
    "onset": "Artifact onset in seconds from the first sample of the recording",
    "duration": "Artifact duration in seconds",
    "trial_type": "Artifact class: blink or jaw_clench",
    "confidence": "Peak window probability of the class (0-1)",
    "sample": "Index of the onset sample in the recording (at the model rate, 128 Hz)",
    "onset_source": "Artifact onset in the recording's own clock (its Timestamp column, s)",
    "flags": "interpolated / poor_contact when the event overlaps such samples, else n/a",
    "event_id": "Detector event id",
}


def _stream_id(rec: Recording) -> str:
    name = Path(rec.source).name if rec.source else "recording"
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name or "recording"


def _unix_offset(rec: Recording) -> float:
    """Seconds to add to the file's timestamps to get unix time (0 for unix-stamped exports)."""
    t0 = float(rec.timestamps[0]) if rec.n_samples else 0.0
    if t0 > 1e8:  # already unix time (any date after 1973)
        return 0.0
    start = rec.metadata.get("start timestamp")
    try:
        return float(start) - t0 if start is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _check(rec: Recording, features: FeaturePipeline) -> list[int]:
    """Refuse what detection cannot use; the model electrodes to feed as dead (empty ones).

    An electrode with more than half its samples non-finite would make every window
    unclassifiable (0 events, silently). It is fed as a flat line instead, which the detector
    reports as a ``dead_electrode`` and gives features at the training mean, as for any dead
    electrode, so detection runs on the others.
    """
    if rec.fs != FS:
        raise EegstreamError(
            f"{rec.source}: sampling rate {rec.fs:g} Hz; the detector expects {FS} Hz; read the "
            f"file with read_recording(..., target_fs={FS}) so it is resampled"
        )
    missing = [e for e in features.electrodes if e in rec.missing]
    if missing:
        found = [e for e in ELECTRODES if e not in rec.missing]
        raise MissingChannelsError(rec.source, missing, found)
    if rec.n_samples < WINDOW:
        raise EegstreamError(
            f"recording {rec.source} has {rec.n_samples} sample(s) ({rec.duration:.2f} s at "
            f"{FS} Hz) but detection needs at least one window of {WINDOW} samples "
            f"({WINDOW / FS:g} s); give a longer recording"
        )
    empty, notes = _signal_checks(rec, features)
    for note in notes:
        log.warning("%s: %s", rec.source, note)
    return empty


def _signal_checks(rec: Recording, features: FeaturePipeline) -> tuple[list[int], list[str]]:
    """Empty model electrodes (columns) and what detection does about non-finite samples."""
    cols = [ELECTRODES.index(e) for e in features.electrodes]
    bad = np.count_nonzero(~np.isfinite(rec.data[:, cols]), axis=0)
    empty = [c for c, k in zip(cols, bad.tolist(), strict=True) if k > 0.5 * rec.n_samples]
    notes: list[str] = []
    if empty:
        notes.append(
            f"electrode(s) {', '.join(ELECTRODES[c] for c in empty)} have no usable samples "
            "(non-finite in more than half the rows): detection reports them as dead_electrode "
            "and runs on the others"
        )
    rest = int(sum(k for c, k in zip(cols, bad.tolist(), strict=True) if c not in empty))
    if rest:
        notes.append(
            f"{rest:,} non-finite sample(s) left on the model electrodes: the windows that hold "
            "them are not classified"
        )
    return empty, notes


def recording_notes(rec: Recording, features: FeaturePipeline) -> list[str]:
    """What the reader repaired and what detection works around, in words (for summaries)."""
    repairs = [str(r) for r in rec.metadata.get("repairs", [])]
    return repairs + _signal_checks(rec, features)[1]


def detect_messages(
    rec: Recording,
    engine: Engine,
    features: FeaturePipeline,
    settings: Settings,
    *,
    progress: bool = True,
    chunk_s: float = CHUNK_S,
) -> list[Message]:
    """Every message the detector emits over ``rec`` (onset and final events, statuses)."""
    empty = _check(rec, features)
    det = Detector(engine, features, settings, _stream_id(rec), clock=None)
    offset = _unix_offset(rec)
    step = max(1, int(round(chunk_s * FS)))
    out: list[Message] = []
    from tqdm import tqdm

    disable = True if not progress or rec.duration < PROGRESS_MIN_S else None
    with tqdm(
        total=round(rec.duration),
        unit="s",
        desc=_stream_id(rec),
        file=sys.stderr,
        disable=disable,
        leave=False,
    ) as bar:
        for a in range(0, rec.n_samples, step):
            chunk = rec.data[a : a + step]
            if empty:  # a flat line: the detector's dead-electrode path (features -> mean)
                chunk = chunk.copy()
                chunk[:, empty] = 0.0
            out += det.process(chunk, rec.timestamps[a : a + step], offset)
            bar.update(round(min(step, rec.n_samples - a) / FS))
        out += det.flush()
    st = det.stats
    if st["nan_windows"]:
        log.warning(
            "%s: %d of %d windows held non-finite samples and were not classified",
            det.stream_id,
            st["nan_windows"],
            st["windows"],
        )
    log.info(
        "%s: %d windows, %d classified, %d with NaN, %d signal-fault windows, %d events",
        det.stream_id,
        st["windows"],
        st["classified"],
        st["nan_windows"],
        st["fault_windows"],
        st["events"],
    )
    return out


def detect_recording(
    rec: Recording,
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    *,
    progress: bool = True,
) -> list[ArtifactEvent]:
    """Final-phase events of ``rec``, flagged where they overlap interpolated or poor samples."""
    msgs = detect_messages(rec, engine, bundle.features, settings, progress=progress)
    return final_events(msgs, rec)


def final_events(messages: Sequence[Message], rec: Recording) -> list[ArtifactEvent]:
    """The final-phase events of ``messages``, flagged from ``rec`` (what ``detect`` writes)."""
    events = [m for m in messages if isinstance(m, ArtifactEvent) and m.phase == "final"]
    return flag_events(events, rec)


def flag_events(events: Sequence[ArtifactEvent], rec: Recording) -> list[ArtifactEvent]:
    """Add ``interpolated`` / ``poor_contact`` flags from the recording's sample annotations."""
    if not events or (rec.interpolated is None and rec.quality is None):
        return list(events)
    on = np.array([e.onset_lsl for e in events])
    off = np.array([e.offset_lsl for e in events])
    a = np.searchsorted(rec.timestamps, on, side="left")
    b = np.searchsorted(rec.timestamps, off, side="right")
    interp = None
    if rec.interpolated is not None:
        c = np.concatenate(([0], np.cumsum(rec.interpolated)))
        interp = c[b] - c[a] > 0
    poor = None
    if rec.quality is not None:
        idx = [ELECTRODES.index(e) for e in MODEL_ELECTRODES]
        q = rec.quality[:, idx]
        with np.errstate(invalid="ignore"):
            bad = (q <= POOR_CONTACT).any(axis=1)
        c = np.concatenate(([0], np.cumsum(bad)))
        poor = c[b] - c[a] > 0
    out: list[ArtifactEvent] = []
    for i, e in enumerate(events):
        flags = list(e.flags)
        if interp is not None and interp[i]:
            flags.append("interpolated")
        if poor is not None and poor[i]:
            flags.append("poor_contact")
        out.append(e.model_copy(update={"flags": flags}) if flags != e.flags else e)
    return out


# -- writers ----------------------------------------------------------------------------------


def write_jsonl(events: Iterable[ArtifactEvent], fh: IO[str]) -> None:
    """One event object per line (the schema of :class:`~eegstream.events.ArtifactEvent`)."""
    for e in events:
        fh.write(e.model_dump_json())
        fh.write("\n")


def write_bids(events: Iterable[ArtifactEvent], rec: Recording, fh: IO[str]) -> None:
    """A BIDS ``events.tsv``: onset from the first sample, duration, trial_type and extras."""
    t0 = float(rec.timestamps[0]) if rec.n_samples else 0.0
    fh.write("\t".join(BIDS_COLUMNS) + "\n")
    for e in events:
        sample = int(np.searchsorted(rec.timestamps, e.onset_lsl - 0.5 / FS))
        row = (
            f"{e.onset_lsl - t0:.4f}",
            f"{e.duration:.4f}",
            e.label,
            f"{e.confidence:.3f}",
            str(sample),
            f"{e.onset_lsl:.6f}",
            ",".join(e.flags) or "n/a",
            e.id,
        )
        fh.write("\t".join(row) + "\n")


def _bids_sidecar() -> dict[str, object]:
    cols: dict[str, object] = {k: {"Description": v} for k, v in BIDS_COLUMNS.items()}
    cols["onset"] = {"Description": BIDS_COLUMNS["onset"], "Units": "s"}
    cols["duration"] = {"Description": BIDS_COLUMNS["duration"], "Units": "s"}
    cols["trial_type"] = {
        "Description": BIDS_COLUMNS["trial_type"],
        "Levels": {"blink": "eye blink", "jaw_clench": "jaw clench (EMG burst)"},
    }
    return cols


# -- files in, files out (``eegstream detect`` / ``evaluate``) ------------------------------------

#: What ``detect`` writes: JSON Lines, a BIDS events.tsv (+ sidecar), or an MNE annotations file.
DetectFormat = Literal["jsonl", "bids", "mne"]


def load_model(settings: Settings) -> tuple[Settings, ModelBundle, Engine]:
    """The bundle and engine ``settings`` name, with the person's profile applied if it names one.

    Returns the settings too: a profile (``eegstream calibrate``) may change thresholds. The
    caller closes the engine.
    """
    from eegstream.bundle import ModelBundle
    from eegstream.engines import load_engine

    bundle = ModelBundle.load(settings.model_dir)
    if settings.profile is not None:  # the person's baseline and thresholds (eegstream calibrate)
        from eegstream.profile import apply_profile

        bundle, settings = apply_profile(settings.profile, bundle, settings)
    engine = load_engine(settings.backend, bundle, max_batch=settings.max_batch)
    log.info("model %s (%s), engine %s", bundle.dir, bundle.sha256[:12], engine.name)
    return settings, bundle, engine


def _read(path: Path, marker_map: dict[int, str] | None = None) -> Recording:
    """A recording file of any supported format (CSV; EDF/BDF/FIF through MNE)."""
    from eegstream.io.emotiv import read_recording

    return read_recording(path, marker_map=marker_map)


def _check_mne_output(out: str) -> Path:
    """``--format mne`` needs a file whose suffix says which annotation format to write."""
    from eegstream.io.mne_io import ANNOTATION_SUFFIXES, import_mne

    path = Path(out)
    if out == "-" or path.suffix.lower() not in ANNOTATION_SUFFIXES:
        raise EegstreamError(
            f"--format mne writes an annotations file: give --output NAME with a suffix of "
            f"{', '.join(ANNOTATION_SUFFIXES)} (got {out!r}); .fif keeps confidence and id"
        )
    import_mne("detect --format mne")
    check_out_path("--output", path)
    return path


def check_detect_output(output: str, fmt: DetectFormat) -> None:
    """``detect --output`` (``-``: stdout) can be written in ``fmt``: checked before the work."""
    if fmt == "mne":
        _check_mne_output(output)
    elif output != "-":
        check_out_path("--output", Path(output))
        if fmt == "bids":
            check_out_path("--output (BIDS sidecar)", Path(output).with_suffix(".json"))


@dataclass
class FileDetection:
    """One recording file detected: what ``detect`` writes, in any format."""

    recording: Recording
    messages: list[Message]  #: everything the detector emitted (events and statuses)
    events: list[ArtifactEvent]  #: the final-phase events, flagged (:func:`final_events`)

    def counts(self) -> dict[str, int]:
        """Events per class (blink, jaw_clench), for the summary line."""
        return {
            lab: sum(1 for e in self.events if e.label == lab) for lab in ("blink", "jaw_clench")
        }


def detect_file(
    path: Path, settings: Settings, *, marker_map: dict[int, str] | None = None
) -> FileDetection:
    """Load the model ``settings`` name, read ``path`` and detect over it, as fast as possible."""
    settings, bundle, engine = load_model(settings)
    try:
        rec = _read(path, marker_map)
        msgs = detect_messages(rec, engine, bundle.features, settings, progress=True)
    finally:
        engine.close()
    return FileDetection(rec, msgs, final_events(msgs, rec))


def detections_text(detection: FileDetection, fmt: DetectFormat) -> str:
    """The events as JSON Lines or a BIDS events.tsv (what ``detect -o -`` prints)."""
    if fmt == "mne":
        raise EegstreamError("--format mne writes an annotations file; give --output NAME.fif")
    buf = io.StringIO()
    if fmt == "bids":
        write_bids(detection.events, detection.recording, buf)
    else:
        write_jsonl(detection.events, buf)
    return buf.getvalue()


def write_detections(detection: FileDetection, fmt: DetectFormat, path: Path) -> None:
    """Write the events file (a BIDS one with its JSON sidecar) whole or not at all."""
    if fmt == "mne":
        from eegstream.io.mne_io import to_annotations, write_annotations

        msgs = detection.messages
        faults = [m for m in msgs if isinstance(m, StatusMessage) and m.status == "signal_fault"]
        write_annotations(to_annotations([*detection.events, *faults]), path)
        return
    files = [("--output", path, detections_text(detection, fmt))]
    if fmt == "bids":
        text = json.dumps(_bids_sidecar(), indent=2) + "\n"
        files.append(("--output (BIDS sidecar)", path.with_suffix(".json"), text))
    write_outputs(files)


def evaluate_recording(
    rec: Recording,
    engine: Engine,
    features: FeaturePipeline,
    settings: Settings,
    *,
    progress: bool = True,
) -> EvaluationReport:
    """Detect over ``rec`` and score the events against its markers."""
    from eegstream.evaluate import evaluate_messages

    msgs = detect_messages(rec, engine, features, settings, progress=progress)
    if not [m for m in rec.markers if m.label in ("blink", "jaw_clench")]:
        log.warning(
            "%s has no blink/jaw_clench markers: every detection counts as a false alarm",
            rec.source,
        )
    return evaluate_messages(msgs, rec.markers, rec.duration, name=_stream_id(rec))


def check_out_path(flag: str, path: Path | None) -> None:
    """An output path must be writable: checked before minutes of detection, not after."""
    if path is None:
        return
    if path.is_dir():
        raise EegstreamError(f"{flag} {path} is a folder; give a file name")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise EegstreamError(f"{flag} {path}: folder {parent} does not exist; create it first")
    if path.exists() and not path.is_file():
        return  # a device or pipe (/dev/null, /dev/stdout): written in place
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EegstreamError(
            f"{flag} {path}: folder {parent} is not writable; choose another folder"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise EegstreamError(f"{flag} {path} exists and is read-only; choose another file name")


def write_outputs(files: Sequence[tuple[str, Path, str]]) -> None:
    """Write ``(flag, path, text)`` files whole or not at all.

    Temp files in the same folder are renamed once every one is written, so a failure never
    leaves a partial file, nor a ``.tsv`` without its sidecar.
    """
    done: list[tuple[Path, Path]] = []
    current = files[0][:2]  # the file being written, for the message
    try:
        for flag, path, text in files:
            current = (flag, path)
            if path.exists() and not path.is_file() and not path.is_dir():
                with path.open("w", encoding="utf-8", newline="\n") as fh:  # device or pipe
                    fh.write(text)
                continue
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            done.append((tmp, path))
            with tmp.open("w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
        for tmp, path in done:
            current = next((f, p) for f, p, _ in files if p == path)
            os.replace(tmp, path)
    except OSError as exc:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)
        raise EegstreamError(
            f"{current[0]} {current[1]}: cannot write ({exc.strerror or exc}); choose a writable file path"
        ) from None


@dataclass(frozen=True)
class EpochSelection:
    """Which labelled epochs ``evaluate --epochs`` joins into a session, and what it draws."""

    folder: Path
    label_map: Mapping[str, str] | None = None  #: gesture -> class (default: the MusEEG map)
    fs: float = 256.0  #: sampling rate of the epoch files
    part: Part = "held-out"  #: the held-out third no training sees, "train" or "all"
    as_labelled: bool = False  #: keep rest epochs holding a spontaneous blink as rest
    plot: Path | None = None  #: PNG of the per-gesture table and a timeline


@dataclass
class FilesEvaluation:
    """``evaluate``'s result: the tables it prints and the JSON document ``--json`` writes."""

    tables: list[str]
    doc: dict[str, object]


def evaluate_files(
    files: Sequence[Path],
    settings: Settings,
    *,
    marker_map: dict[int, str] | None = None,
    epochs: EpochSelection | None = None,
) -> FilesEvaluation:
    """Detect over each file and score against its markers; also a session joined from epochs.

    One model and engine for everything; a table per file (with what the reader repaired), per
    gesture and for the epoch session, and a total when there is more than one report.
    """
    from eegstream.evaluate import EvaluationReport

    settings, bundle, engine = load_model(settings)
    reports: list[EvaluationReport] = []
    blocks: list[str] = []
    doc: dict[str, object] = {}
    checks: dict[str, list[str]] = {}
    try:
        for path in files:
            rec = _read(path, marker_map)
            reports.append(evaluate_recording(rec, engine, bundle.features, settings))
            blocks.append(reports[-1].table())
            notes = recording_notes(rec, bundle.features)
            if notes:
                checks[str(path)] = notes
                blocks[-1] += "\nchecked and repaired:\n" + "\n".join(f"  {n}" for n in notes)
        if epochs is not None:
            epoch_report, gesture_table, doc["epochs"] = _evaluate_epochs(
                epochs, engine, bundle, settings
            )
            reports.append(epoch_report)
            blocks += [gesture_table, epoch_report.table()]
    finally:
        engine.close()
    total = EvaluationReport("all files", 0.0, {})
    for r in reports:
        total.merge(r)
    if len(reports) > 1:
        blocks.append(total.table())
    doc |= {
        "model": str(bundle.dir),
        "model_sha256": bundle.sha256,
        "backend": engine.name,
        "settings": {
            k: getattr(settings, k)
            for k in ("hop", "threshold", "min_windows", "min_duration", "refractory")
        },
        "files": [r.summary() for r in reports],
        "total": total.summary(),
        "checks": checks,
    }
    return FilesEvaluation(blocks, doc)


@dataclass
class EpochEvaluation:
    """Detection over a session joined from labelled epochs, scored two ways."""

    session: EpochSession
    messages: list[Message]
    gestures: GestureReport  #: per gesture: how often called blink / jaw_clench / nothing
    events: EvaluationReport  #: event figures against the blink / jaw-clench onsets

    @property
    def finals(self) -> list[ArtifactEvent]:
        """The final-phase artifact events."""
        return [m for m in self.messages if isinstance(m, ArtifactEvent) and m.phase == "final"]


def evaluate_epochs(
    epochs: Sequence[Epoch],
    engine: Engine,
    features: FeaturePipeline,
    settings: Settings,
    *,
    source: str = "epochs",
    progress: bool = True,
) -> EpochEvaluation:
    """Join epochs the way a session looks (rest warm-up, gestures between rest), detect, score."""
    from eegstream.evaluate import evaluate_messages, gesture_report
    from eegstream.io.epochs import assemble_session, spontaneous_blink

    session = assemble_session(epochs, source=source)
    by_name = {(e.gesture, e.index): e for e in epochs}
    shaped = {
        k: e.label == "nothing" and spontaneous_blink(e) is not None for k, e in by_name.items()
    }
    rec = session.recording
    msgs = detect_messages(rec, engine, features, settings, progress=progress)
    t = rec.timestamps
    dt = 1.0 / rec.fs
    spans = [(s.gesture, float(t[s.start]), float(t[s.stop - 1]) + dt) for s in session.spans]
    finals = [m for m in msgs if isinstance(m, ArtifactEvent) and m.phase == "final"]
    gestures = gesture_report(
        finals,
        spans,
        {e.gesture: e.label for e in epochs},
        warmup_s=session.warmup_s,
        t0=float(t[0]),
        rest_gesture=session.rest_gesture,
        shaped=[shaped[(s.gesture, s.index)] for s in session.spans],
    )
    report = evaluate_messages(msgs, rec.markers, rec.duration, name=f"session of {source}")
    return EpochEvaluation(session, msgs, gestures, report)


def _evaluate_epochs(
    selection: EpochSelection, engine: Engine, bundle: ModelBundle, settings: Settings
) -> tuple[EvaluationReport, str, dict[str, object]]:
    """``evaluate --epochs``: read the chosen part, evaluate, plot; the tables and JSON."""
    from eegstream.io.epochs import (
        DEFAULT_LABEL_MAP,
        HOLDOUT_RULE,
        read_epochs,
        with_spontaneous_blinks,
    )

    label_map = selection.label_map if selection.label_map is not None else DEFAULT_LABEL_MAP
    epochs = read_epochs(
        selection.folder, label_map, fs=selection.fs, part=selection.part, progress=True
    )
    if not selection.as_labelled:
        epochs = with_spontaneous_blinks(epochs)
    ev = evaluate_epochs(
        epochs,
        engine,
        bundle.features,
        settings,
        source=f"{selection.folder.name}-{selection.part}",
    )
    if selection.plot is not None:
        from eegstream.plot import plot_epoch_evaluation

        plot_epoch_evaluation(
            selection.plot, ev.gestures, ev.finals, ev.session.recording, ev.session.spans
        )
        log.info("wrote %s", selection.plot)
    doc: dict[str, object] = {
        "folder": str(selection.folder),
        "part": selection.part,
        "holdout_rule": HOLDOUT_RULE,
        "as_labelled": selection.as_labelled,
        "session_s": ev.session.recording.duration,
        "gestures": ev.gestures.summary(),
        "events": ev.events.summary(),
    }
    return ev.events, ev.gestures.table(), doc
