"""Training end to end through the CLI, its errors, its report, and the shipped model's accuracy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from eegstream.bundle import ModelBundle
from eegstream.cli import main
from eegstream.errors import EegstreamError
from eegstream.io.recording import Recording
from eegstream.settings import CLASSES, ELECTRODES, FS
from eegstream.simulate import simulate_with_truth
from eegstream.train import (
    TrainOptions,
    confusion_report,
    evaluate_bundle,
    format_report,
    simulated_seed,
    train_bundle,
)

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "emotivpro-2.0-epocplus-256hz-eyebrows.csv"
)


def test_cli_trains_a_small_model_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny"
    argv = ["train", "--simulate", "2", "--sim-duration", "60", "--max-epochs", "2"]
    rc = main([*argv, "--seed", "1", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "held-out windows (random 4-s blocks):" in text
    assert "held-out subjects (never seen):" in text
    assert "jaw_clench" in text
    assert "precision" in text

    bundle = ModelBundle.load(out)
    meta = bundle.meta
    assert meta["training"]["data"]["simulated"]["seeds"] == [
        simulated_seed(1, 0),
        simulated_seed(1, 1),
    ]
    assert len(meta["training"]["held_out_recordings"]) == 1
    subj = meta["metrics"]["held_out_subjects"]
    assert subj["n"] == int(np.sum(subj["confusion"])) > 0
    assert meta["metrics"]["onnx_vs_keras_max_abs_diff"] < 1e-5
    assert meta["metrics"]["epochs_run"] <= 2
    assert bundle.keras_path is not None
    assert bundle.fp16_onnx_path is not None

    rec, _ = simulate_with_truth(40.0, seed=4242)
    starts = np.arange(0, 200, 8)
    raw = rec.data[starts[:, None] + np.arange(64)].transpose(0, 2, 1)
    sess = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"features": bundle.features(raw)})[0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_cli_without_inputs_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "nothing to train on: pass marker-labelled recordings, --epochs DIR and/or" in err
    assert main(["train", "--simulate", "1", "--max-epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--max-epochs must be at least 1; got 0" in capsys.readouterr().err


def test_cli_recording_without_markers_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not FIXTURE.is_file():
        pytest.skip(f"the genuine EPOC+ fixture is not beside the checkout ({FIXTURE})")
    assert main(["train", str(FIXTURE), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no blink or jaw_clench markers in" in err
    assert "eyebrows" in err
    assert "--simulate N" in err
    assert not (tmp_path / "x").exists()


def test_cli_epoch_folder_without_csv_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "epochs"
    empty.mkdir()
    (empty / "README.md").write_text("no epochs here\n")
    for argv in (
        ["train", "--epochs", str(empty), "--out", str(tmp_path / "x")],
        ["evaluate", "--epochs", str(empty)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert str(empty) in err[0]
        assert "csv" in err[0].lower()
    assert not (tmp_path / "x").exists()
    assert main(["evaluate", "--plot", str(tmp_path / "p.png"), str(tmp_path / "r.csv")]) == 2
    assert "--plot needs --epochs DIR" in capsys.readouterr().err


def test_train_bundle_rejects_recordings_without_markers(tmp_path: Path) -> None:
    n = 20 * FS
    rec = Recording(
        data=np.zeros((n, len(ELECTRODES))),
        timestamps=np.arange(n) / FS,
        fs=float(FS),
        source="quiet.csv",
    )
    with pytest.raises(EegstreamError, match=r"no blink or jaw_clench markers in quiet.csv"):
        train_bundle([rec], tmp_path / "b", options=TrainOptions(epochs=1, verbose=0))


def test_missing_tensorflow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(
        sys.modules, "tensorflow", None
    )  # what `import tensorflow` sees uninstalled
    assert main(["train", "--simulate", "1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "training needs TensorFlow, Keras and ONNX" in err
    assert "pip install 'eegstream[train]'" in err


def test_confusion_report_counts_and_scores() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 2, 1, 0, 2, 2, 2, 2, 1])
    rep = confusion_report(y_true, y_pred)
    assert rep["confusion"] == [[2, 0, 1], [1, 1, 0], [0, 1, 4]]
    assert rep["accuracy"] == pytest.approx(0.7)
    blink = rep["per_class"]["blink"]
    assert blink["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert blink["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert rep["per_class"]["nothing"]["f1"] == pytest.approx(2 * 0.8 * 0.8 / 1.6, abs=1e-4)
    text = format_report("demo", rep)
    assert "demo: 10 windows, accuracy 0.7000" in text
    assert format_report("none", None).startswith("none: n/a")


def test_default_model_on_unseen_simulated_subjects() -> None:
    """Acceptance: window accuracy >= 0.97 and every class F1 >= 0.95 on subjects never seen."""
    bundle = ModelBundle.load()
    sim = bundle.meta["training"]["data"]["simulated"]
    first, last = sim["seeds"]
    unseen = [last + 1000, last + 1001]
    assert not any(first <= s <= last for s in unseen)
    recs, conf = [], []
    for seed in unseen:
        rec, truth = simulate_with_truth(180.0, seed)
        spans = [v for k, v in truth.confounders.items() if k != "dropout" and len(v)]
        recs.append(rec)
        conf.append(np.concatenate(spans) if spans else None)
    rep = evaluate_bundle(bundle, recs, confounders=conf, seed=5)
    assert rep["n"] > 500
    assert rep["accuracy"] >= 0.97, format_report("unseen subjects", rep)
    for c in CLASSES:
        assert rep["per_class"][c]["f1"] >= 0.95, format_report("unseen subjects", rep)
    assert json.loads((bundle.dir / "model.json").read_text())["metrics"]["held_out_subjects"]


def test_sample_weights_balance_classes_within_each_source_and_real_gets_its_share() -> None:
    from eegstream.train import REAL_SHARE, sample_weights

    y = np.array([0] * 100 + [2] * 900 + [0, 1, 1, 2, 2, 2], dtype=np.int64)
    real = np.array([False] * 1000 + [True] * 6)
    w = sample_weights(y, real)
    assert w.mean() == pytest.approx(1.0)
    assert w[real].sum() / w.sum() == pytest.approx(REAL_SHARE)
    # within the simulated windows both classes weigh the same in total
    assert w[:100].sum() == pytest.approx(w[100:1000].sum())
    # within the real ones all three classes weigh the same
    for c in (0, 1, 2):
        assert w[real & (y == c)].sum() == pytest.approx(w[real].sum() / 3)
    only_sim = sample_weights(y[:1000], real[:1000])
    assert only_sim[:100].sum() == pytest.approx(only_sim[100:].sum())
