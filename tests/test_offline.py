"""Offline detection: the live detector over files, the writers, the CLI, and the acceptance
figures of issues #5 and #9 with the real default model on simulated subjects it never saw."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_detector import PowerEngine, identity_features, synthetic

from eegstream.cli import main
from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.evaluate import EvaluationReport, evaluate_messages
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.recording import Marker, Recording
from eegstream.offline import (
    BIDS_COLUMNS,
    _unix_offset,
    detect_messages,
    flag_events,
    write_bids,
    write_jsonl,
)
from eegstream.settings import ELECTRODES, FS, MODEL_ELECTRODES, Settings

HOP_S = 8 / FS


def settings(**kw: Any) -> Settings:
    return Settings(**kw)


def synthetic_recording(seconds: float = 30, seed: int = 0, source: str = "synth.csv") -> Recording:
    x, t, truth = synthetic(seconds, seed)
    markers = [
        Marker(int(round((on) * FS)), float(t[0] + on), 22 if lab == "blink" else 23, lab, 0.3)
        for lab, on in truth
    ]
    return Recording(data=x, timestamps=t, fs=FS, markers=markers, source=source)


def finals(msgs: list[Message]) -> list[ArtifactEvent]:
    return [m for m in msgs if isinstance(m, ArtifactEvent) and m.phase == "final"]


# --- without the model: the plumbing ---------------------------------------------------------


def test_detect_messages_runs_the_live_detector_in_chunks() -> None:
    rec = synthetic_recording(40)
    engine = PowerEngine()
    msgs = detect_messages(rec, engine, identity_features(), settings(), progress=False)
    ev = finals(msgs)
    assert [e.label for e in ev] == [m.label for m in rec.markers]
    assert all(e.stream_id == "synth" for e in ev)
    assert ev[0].id == "synth-1"
    # 10 s chunks: one engine call per chunk, not per window
    assert len(engine.calls) == math.ceil(40 / 10)
    # the data clock: detection time is a sample time of the recording, reproducibly
    again = detect_messages(rec, PowerEngine(), identity_features(), settings(), progress=False)
    assert again == msgs
    assert all(rec.timestamps[0] <= e.detected_lsl <= rec.timestamps[-1] for e in ev)


def test_recording_must_be_at_the_model_rate() -> None:
    rec = synthetic_recording(5)
    rec.fs = 256.0
    with pytest.raises(EegstreamError, match=r"synth.csv: sampling rate 256 Hz; .* expects 128 Hz"):
        detect_messages(rec, PowerEngine(), identity_features(), settings(), progress=False)


def test_missing_model_electrode_is_named() -> None:
    rec = synthetic_recording(5)
    rec.missing = ("AF4",)
    with pytest.raises(MissingChannelsError, match=r"synth.csv has no channel AF4"):
        detect_messages(rec, PowerEngine(), identity_features(), settings(), progress=False)


def test_unix_offset() -> None:
    rec = synthetic_recording(5)
    assert _unix_offset(rec) == 0.0  # EmotivPRO timestamps are unix time already
    rec.timestamps = rec.timestamps - rec.timestamps[0]
    rec.metadata["start timestamp"] = "1576079627.004193"
    assert _unix_offset(rec) == pytest.approx(1576079627.004193)
    rec.metadata["start timestamp"] = "garbage"
    assert _unix_offset(rec) == 0.0


def make_event(onset: float, offset: float, label: str = "blink", id: str = "r-1") -> ArtifactEvent:
    return ArtifactEvent(
        id=id,
        seq=0,
        phase="final",
        stream_id="r",
        label=label,  # type: ignore[arg-type]
        onset_lsl=onset,
        offset_lsl=offset,
        onset_unix=onset,
        offset_unix=offset,
        duration=offset - onset,
        confidence=0.87654,
        n_windows=4,
        detected_lsl=offset,
        detected_unix=offset,
    )


def test_flags_from_interpolated_samples_and_contact_quality() -> None:
    rec = synthetic_recording(10)
    rec.interpolated = np.zeros(rec.n_samples, dtype=bool)
    rec.interpolated[200] = True
    rec.quality = np.full((rec.n_samples, len(ELECTRODES)), 4.0, dtype=np.float32)
    rec.quality[600:700, ELECTRODES.index("O1")] = 0.0  # not a model electrode: no flag
    rec.quality[900:950, ELECTRODES.index("T7")] = 1.0
    t = rec.timestamps
    events = [
        make_event(t[190], t[230], id="r-1"),
        make_event(t[600], t[700], id="r-2"),
        make_event(t[940], t[1000], id="r-3"),
    ]
    out = flag_events(events, rec)
    assert [e.flags for e in out] == [["interpolated"], [], ["poor_contact"]]


def test_jsonl_is_one_event_per_line() -> None:
    events = [make_event(10.0, 10.3), make_event(20.0, 21.0, "jaw_clench", "r-2")]
    buf = io.StringIO()
    write_jsonl(events, buf)
    lines = buf.getvalue().splitlines()
    assert [ArtifactEvent.model_validate_json(line) for line in lines] == events


def test_bids_events_tsv() -> None:
    rec = synthetic_recording(30)
    t0 = float(rec.timestamps[0])
    events = [make_event(t0 + 4.0, t0 + 4.3), make_event(t0 + 6.5, t0 + 7.5, "jaw_clench", "r-2")]
    buf = io.StringIO()
    write_bids(events, rec, buf)
    rows = [line.split("\t") for line in buf.getvalue().splitlines()]
    assert rows[0] == list(BIDS_COLUMNS)
    assert rows[1][:5] == ["4.0000", "0.3000", "blink", "0.877", str(4 * FS)]
    assert rows[2][:5] == ["6.5000", "1.0000", "jaw_clench", "0.877", str(int(6.5 * FS))]
    assert rows[1][6] == "n/a"


# --- with the real default model ----------------------------------------------------------

MODEL_DIR = settings().model_dir  # the default bundle, or EEGSTREAM_MODEL_DIR
needs_model = pytest.mark.skipif(
    not (MODEL_DIR / "model.onnx").is_file(),
    reason=f"no trained model in {MODEL_DIR} yet (eegstream train ... --out eegstream/models/default)",
)


@pytest.fixture(scope="module")
def bundle() -> Any:
    from eegstream.bundle import ModelBundle

    return ModelBundle.load(MODEL_DIR)


@pytest.fixture(scope="module")
def engine(bundle: Any) -> Any:
    from eegstream.engines import load_engine

    eng = load_engine("onnxruntime", bundle)
    yield eng
    eng.close()


def unseen_seeds(bundle: Any, n: int, start: int = 90_000) -> list[int]:
    """Seeds the model was never trained on (model.json lists the training seeds)."""
    sim = bundle.meta.get("training", {}).get("data", {}).get("simulated", {}) or {}
    lo, hi = (sim.get("seeds") or [0, -1])[:2]
    seeds = [s for s in range(start, start + 10 * n) if not lo <= s <= hi][:n]
    assert len(seeds) == n
    return seeds


def simulate(duration: float, seed: int, **kw: Any) -> Recording:
    from eegstream.simulate import simulate_recording

    return simulate_recording(duration, seed, **kw)


def evaluate(
    rec: Recording, engine: Any, bundle: Any, **kw: Any
) -> tuple[EvaluationReport, list[Message]]:
    msgs = detect_messages(rec, engine, bundle.features, settings(**kw), progress=False)
    return evaluate_messages(msgs, rec.markers, rec.duration), msgs


@needs_model
def test_acceptance_unseen_subjects(bundle: Any, engine: Any) -> None:
    total = EvaluationReport("all", 0.0, {})
    for seed in unseen_seeds(bundle, 4):
        rep, _ = evaluate(simulate(180, seed), engine, bundle)
        total.merge(rep)
    print(total.table())  # noqa: T201 -- visible with -s, the figures the README quotes
    for label in ("blink", "jaw_clench"):
        c = total.classes[label]
        assert c.tp >= 20
        assert c.f1 >= 0.95, total.table()
    assert total.median_abs_onset_error <= 0.100, total.table()
    for label in ("blink", "jaw_clench"):  # a stale calibration shows as a bias first
        bias = total.classes[label].median_onset_error
        assert abs(bias) <= 0.060, f"recalibrate detector.TIMING (suggest_timing): {total.table()}"


@needs_model
def test_acceptance_false_alarms_on_artifact_free_recording(bundle: Any, engine: Any) -> None:
    seed = unseen_seeds(bundle, 1, start=91_000)[0]
    rec = simulate(300, seed, blink_rate=0, clench_rate=0)  # confounders stay on
    assert rec.markers == []
    rep, _ = evaluate(rec, engine, bundle)
    assert rep.false_alarms_per_min <= 1.0, rep.table()


@needs_model
def test_four_spikes_give_four_faults_and_no_events(bundle: Any, engine: Any) -> None:
    seed = unseen_seeds(bundle, 1, start=92_000)[0]
    rec = simulate(120, seed)
    busy = [(m.time - 1.0, m.time + m.duration + 1.0) for m in rec.markers]
    t = rec.timestamps
    spikes: list[int] = []
    for cand in np.arange(35 * FS, rec.n_samples - 5 * FS, FS // 2):
        if all(not a <= t[cand] <= b for a, b in busy) and (
            not spikes or cand - spikes[-1] > 5 * FS
        ):
            spikes.append(int(cand))
        if len(spikes) == 4:
            break
    assert len(spikes) == 4
    clean, _ = evaluate(rec, engine, bundle)
    rec.data = rec.data.copy()
    for i, s in enumerate(spikes):
        rec.data[s, :] += 700_000.0 if i % 2 else -700_000.0  # a wireless drop-out, all channels
    rep, msgs = evaluate(rec, engine, bundle)
    faults = [m for m in msgs if isinstance(m, StatusMessage) and m.status == "signal_fault"]
    assert len(faults) == 4
    assert [f.start_lsl for f in faults] == [pytest.approx(t[s]) for s in spikes]
    assert all(f.electrodes == list(MODEL_ELECTRODES) for f in faults)
    near = [
        e for e in finals(msgs) for s in spikes if e.onset_lsl - 0.5 <= t[s] <= e.offset_lsl + 0.5
    ]
    assert near == []
    # the rest of the recording is detected exactly as without the spikes
    for label in ("blink", "jaw_clench"):
        assert rep.classes[label].tp == clean.classes[label].tp


@needs_model
def test_af4_flat_is_reported_and_detection_degrades_gracefully(bundle: Any, engine: Any) -> None:
    total = EvaluationReport("af4", 0.0, {})
    for seed in unseen_seeds(bundle, 2, start=93_000):
        rec = simulate(180, seed)
        rec.data = rec.data.copy()
        rec.data[:, ELECTRODES.index("AF4")] = rec.data[0, ELECTRODES.index("AF4")]
        rep, msgs = evaluate(rec, engine, bundle)
        dead = [m for m in msgs if isinstance(m, StatusMessage) and m.status == "dead_electrode"]
        assert [d.electrodes for d in dead] == [["AF4"]]
        total.merge(rep)
    print(total.table())  # noqa: T201
    for label in ("blink", "jaw_clench"):
        assert total.classes[label].f1 >= 0.9, total.table()


@needs_model
@pytest.mark.parametrize("chunk", [1, 7, 64, 10**9])
def test_chunk_size_gives_the_same_events_with_the_real_model(
    bundle: Any, engine: Any, chunk: int
) -> None:
    from eegstream.detector import Detector

    seed = unseen_seeds(bundle, 1, start=94_000)[0]
    rec = simulate(60, seed)

    def run(step: int) -> list[ArtifactEvent]:
        det = Detector(engine, bundle.features, settings(), "s", clock=None)
        out: list[Message] = []
        for a in range(0, rec.n_samples, step):
            out += det.process(rec.data[a : a + step], rec.timestamps[a : a + step])
        return finals(out + det.flush())

    ref = run(FS)
    got = run(chunk)
    assert len(ref) >= 5
    # batch size can change float rounding inside the engine by ~1e-7: compare with tolerance
    assert [(e.id, e.label, e.n_windows) for e in got] == [
        (e.id, e.label, e.n_windows) for e in ref
    ]
    for a, b in zip(got, ref, strict=True):
        assert a.onset_lsl == pytest.approx(b.onset_lsl, abs=1e-4)
        assert a.offset_lsl == pytest.approx(b.offset_lsl, abs=1e-4)


@needs_model
def test_256_hz_recording_gives_the_same_events(bundle: Any, engine: Any, tmp_path: Path) -> None:
    from eegstream.io.emotiv import read_recording, write_recording
    from eegstream.io.recording import resample_recording

    seed = unseen_seeds(bundle, 1, start=95_000)[0]
    rec = simulate(90, seed)
    hi = resample_recording(rec, 256)
    path = tmp_path / "rec256.csv"
    write_recording(hi, path)
    back = read_recording(path)  # resampled to 128 Hz by the reader
    assert back.fs == FS
    a = finals(detect_messages(rec, engine, bundle.features, settings(), progress=False))
    b = finals(detect_messages(back, engine, bundle.features, settings(), progress=False))
    assert len(a) >= 10
    assert [e.label for e in b] == [e.label for e in a]
    for x, y in zip(a, b, strict=True):
        assert abs(x.onset_lsl - y.onset_lsl) <= HOP_S


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eegstream.io.emotiv import write_recording

    path = tmp_path_factory.mktemp("detect") / "subject.csv"
    write_recording(simulate(120, 96_001), path)
    return path


@needs_model
def test_cli_detect_jsonl(
    sim_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eegstream.io.emotiv import read_recording

    out = tmp_path / "events.jsonl"
    assert main(["detect", str(sim_file), "--backend", "onnxruntime", "-o", str(out)]) == 0
    events = [ArtifactEvent.model_validate_json(line) for line in out.read_text().splitlines()]
    rec = read_recording(sim_file)
    assert len(events) == pytest.approx(len(rec.markers), abs=2)
    assert all(e.phase == "final" and e.stream_id == "subject" for e in events)
    assert [e.onset_lsl for e in events] == sorted(e.onset_lsl for e in events)
    # stdout by default, the same events
    capsys.readouterr()
    assert main(["detect", str(sim_file), "--backend", "onnxruntime"]) == 0
    assert capsys.readouterr().out == out.read_text()


@needs_model
def test_cli_detect_bids(sim_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub-01_task-rest_events.tsv"
    assert main(["detect", str(sim_file), "--format", "bids", "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == list(BIDS_COLUMNS)
    rows = [line.split("\t") for line in lines[1:]]
    assert rows
    onsets = [float(r[0]) for r in rows]
    assert all(0 <= o <= 120 for o in onsets)
    assert {r[2] for r in rows} <= {"blink", "jaw_clench"}
    assert all(float(r[1]) > 0 for r in rows)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["onset"]["Units"] == "s"


@needs_model
def test_cli_evaluate(sim_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    assert main(["evaluate", str(sim_file), str(sim_file), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "blink" in out
    assert "all files: 4.0 min" in out
    doc = json.loads(report.read_text())
    assert len(doc["files"]) == 2
    assert doc["total"]["duration_s"] == pytest.approx(240.0, abs=1)
    assert doc["total"]["classes"]["blink"]["f1"] >= 0.9


def test_cli_detect_output_folder_must_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "nowhere" / "events.jsonl"
    assert main(["detect", str(tmp_path / "x.csv"), "-o", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--output {bad}: folder {bad.parent} does not exist" in err


def test_cli_evaluate_json_folder_must_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "nowhere" / "r.json"
    assert main(["evaluate", str(tmp_path / "x.csv"), "--json", str(bad)]) == 2
    assert f"--json {bad}: folder" in capsys.readouterr().err
