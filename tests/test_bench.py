"""``eegstream bench``: a quick run emits every key the report promises, with consistent figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import signal
from test_engines import TRT_OK, make_bundle

from eegstream.bench import BenchConfig, original_features
from eegstream.bundle import ModelBundle
from eegstream.cli import main
from eegstream.errors import EegstreamError
from eegstream.settings import BAND, FS, MODEL_INDEX, N_BINS, WINDOW, default_model_dir

ENGINE_KEYS = ("batch1_p50_us", "batch1_p99_us", "batch64_windows_per_s", "gflops")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bench") / "untrained").dir


def _run_quick(model: Path | None, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    argv = ["bench", "--quick", "--json", str(out)]
    if model is not None:
        argv += ["--model", str(model)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text(encoding="utf-8"))
    assert printed == written
    return printed


def _check_report(report: dict[str, Any], bundle: ModelBundle) -> None:
    machine = report["machine"]
    for key in ("cpu", "cores", "python", "numpy", "scipy", "onnxruntime", "tensorflow"):
        assert machine[key], key
    assert machine["matmul_gflops"] > 0
    assert report["flops_per_window"] == bundle.flops_per_window > 0
    assert report["model"]["sha256"] == bundle.sha256
    assert report["features_us_per_window"] > 0
    assert report["features_batch1_us"] > 0

    engines = report["engines"]
    assert {"onnxruntime", "keras"} <= set(engines)  # TensorFlow is installed here
    for name, stats in engines.items():
        for key in ENGINE_KEYS:
            assert stats[key] > 0, (name, key)
        assert stats["batch1_p99_us"] >= stats["batch1_p50_us"]
        per_window_gflops = bundle.flops_per_window * stats["batch64_windows_per_s"] / 1e9
        assert stats["gflops"] == pytest.approx(per_window_gflops, rel=1e-3)
    assert engines["keras"]["batch1_predict_p50_us"] > 0
    assert engines["keras"]["batch1_eager_p50_us"] > 0
    assert ("tensorrt" in engines) == TRT_OK
    if not TRT_OK:
        assert "eegstream[gpu]" in report["skipped"]["tensorrt"]

    ort = engines["onnxruntime"]
    ours = report["ours"]
    assert ours["inference_us"] == ort["batch1_p50_us"]
    assert ours["us_per_window"] == pytest.approx(
        report["features_batch1_us"] + ort["batch1_p50_us"], rel=1e-3
    )
    original = report["original"]
    assert original["calls"] >= 1
    assert original["us_per_window"] >= original["predict_us_per_window"] > 0
    assert report["speedup_vs_original"] == pytest.approx(
        original["us_per_window"] / ours["us_per_window"], rel=2e-3
    )
    assert original["us_per_window_predict_on_batch"] > original["features_us_per_window"]
    assert report["speedup_vs_original_predict_on_batch"] == pytest.approx(
        original["us_per_window_predict_on_batch"] / ours["us_per_window"], rel=2e-3
    )
    # The acceptance figure (>= 100x) comes from the full run; even a quick run on a loaded
    # machine is far beyond 10x, because the original pays a Keras predict() per window.
    assert report["speedup_vs_original"] > 10
    detector = report["detector"]
    assert detector["calls"] > 100
    assert detector["hop_p99_us"] >= detector["hop_p50_us"] > 0
    if detector["event_hops"]:
        assert detector["event_hop_p99_us"] >= detector["event_hop_p50_us"] > 0
    tick = report["tick"]
    assert tick["streams"] == 16
    assert tick["spans"] == 3
    for label, per_tick in (("all", 16), ("eighth", 2)):
        part = tick[label]
        assert part["windows_per_tick"] == per_tick
        assert part["us_per_window_max"] >= part["us_per_window_p50"] >= part["us_per_window_min"]
        assert part["us_per_window_min"] > 0
    batch1_rate = 1e6 / ort["batch1_p50_us"]
    assert report["batch64_vs_batch1"] == pytest.approx(
        ort["batch64_windows_per_s"] / batch1_rate, rel=2e-3
    )
    assert report["batch64_vs_batch1_bound"] == pytest.approx(
        report["machine"]["matmul_gflops"] / ort["gflops_batch1"], rel=2e-3
    )


def test_quick_bench_reports_every_key(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _run_quick(bundle_dir, tmp_path / "sub" / "bench.json", capsys)
    assert report["quick"] is True
    _check_report(report, ModelBundle.load(bundle_dir))


def test_quick_bench_on_the_default_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (default_model_dir() / "model.json").is_file():
        pytest.skip(f"no default bundle at {default_model_dir()} yet (train it: see README)")
    report = _run_quick(None, tmp_path / "bench.json", capsys)
    _check_report(report, ModelBundle.load())
    assert report["detector"]["event_hops"] > 0  # the trained model finds the simulated artifacts


def test_bench_onnxruntime_only(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--quick", "--backend", "onnxruntime", "--model", str(bundle_dir)]
    assert main([*argv, "--json", str(tmp_path / "b.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["engines"]) == ["onnxruntime"]
    assert report["skipped"] == {}


def test_bench_calls_must_be_positive(bundle_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--calls", "0", "--model", str(bundle_dir)]) == 2
    err = capsys.readouterr().err
    assert "bench --calls must be >= 1; got 0" in err
    with pytest.raises(EegstreamError, match=r"bench --calls must be >= 1; got -5"):
        BenchConfig(-5)


def test_bench_unwritable_json_is_a_user_error(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    argv = ["bench", "--quick", "--backend", "onnxruntime", "--model", str(bundle_dir)]
    assert main([*argv, "--json", str(blocker / "bench.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "bench --json" in err[0]
    assert "cannot write the report" in err[0]


def test_original_features_follow_the_original_definition() -> None:
    """The per-channel loop is the original recipe: baseline, butter+lfilter (b, a), welch, scale."""
    rng = np.random.default_rng(3)
    window = rng.normal(4200.0, 20.0, size=(14, WINDOW))
    baseline = window.mean(axis=1) + rng.normal(0, 5.0, size=14)
    mean = rng.normal(0, 1, size=(10, N_BINS))
    std = rng.uniform(0.5, 2.0, size=(10, N_BINS))
    inputs = original_features(window, baseline, MODEL_INDEX, mean, std)
    assert len(inputs) == 10
    b, a = signal.butter(5, BAND, btype="bandpass", fs=FS)
    for k, ch in enumerate(MODEL_INDEX):
        _, p = signal.welch(signal.lfilter(b, a, window[ch] - baseline[ch]), fs=FS, nperseg=WINDOW)
        assert inputs[k].shape == (1, N_BINS, 1)
        np.testing.assert_allclose(inputs[k][0, :, 0], (p - mean[k]) / std[k], rtol=1e-12)
