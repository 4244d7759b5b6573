"""``eegstream bench --e2e`` / ``--soak``: short real runs (players, service, client processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eegstream.bench_e2e import E2EConfig, e2e_benchmark, parse_headsets
from eegstream.cli import build_parser, main
from eegstream.cli.bench import config_from_args
from eegstream.errors import EegstreamError
from eegstream.settings import Settings

pytestmark = pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: eegstream/models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)


def test_e2e_measures_two_headsets_through_the_service() -> None:
    # 6 s measured: the simulated subjects 8000/8001 have an artifact at least every 5.5 s,
    # so markers fall in the window whatever the start-up took
    cfg = E2EConfig(headsets=(2,), duration=6.0, warmup=2.0, backend="onnxruntime")
    report = e2e_benchmark(cfg)
    assert report["max_realtime_headsets"] == 2
    (run,) = report["runs"]
    assert run["headsets"] == 2
    assert run["realtime"] is True
    assert run["engine"] == "onnxruntime"
    assert run["windows_per_s_expected"] == 32.0
    assert run["windows_per_s"] == pytest.approx(32.0, rel=0.03)
    assert run["dropped_windows"] == 0
    assert run["processing_messages"] >= 1
    assert 0 < run["processing_p50_ms"] <= run["processing_p99_ms"] < 1000
    assert run["markers"] >= 1
    assert run["detected_markers"] >= 1
    # a window ends 0.3 s after the onset it stands for, but the model already fires on windows
    # a hop or two earlier (the artifact's start inside their tail): ~0.2-0.3 s, never ~0
    assert 0.1 < run["detection_p50_s"] <= run["detection_p99_s"] < 2.0
    assert 0 < run["cpu_percent"] < 200
    assert 50 < run["rss_mb"] < 4000
    assert run["max_lag_s"] < 1.0
    for key in ("machine", "config", "goal", "method"):
        assert key in report
    json.dumps(report)  # JSON-ready


def test_soak_from_the_cli_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "soak.json"
    assert main(["bench", "--soak", "0.1", "--backend", "onnxruntime", "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out) == report
    assert report["benchmark"] == "soak"
    assert report["headsets"] == 1
    assert report["speed"] == 16.0
    assert report["events_lost"] == 0
    assert report["windows_dropped"] == 0
    assert report["messages_emitted"] == report["messages_published"] == report["messages_received"]
    assert report["artifact_messages_published"] == report["artifact_messages_received"] > 0
    assert report["events_without_final"] == 0
    # 6 s at 16x: about 16 * 16 windows per second
    assert report["windows"] > 0.8 * 6 * 16 * 16
    assert report["rss_mb_start"] > 50
    assert report["processing_p50_ms_end"] is not None


def test_flags_are_checked_with_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_headsets("64, 1,8,8") == (1, 8, 64)
    with pytest.raises(EegstreamError, match=r"--headsets: expected comma-separated .* got '0,2'"):
        parse_headsets("0,2")
    with pytest.raises(EegstreamError, match=r"--headsets: .* got 'a,b'"):
        parse_headsets("a,b")
    parser = build_parser()
    cases = {
        ("--e2e", "--duration", "2"): r"--duration: expected seconds >= 5 .* got 2.0",
        ("--soak", "-1"): r"--soak: expected a number of minutes > 0; got -1.0",
        ("--e2e", "--speed", "0"): r"--speed: expected a replay speed > 0 .* got 0.0",
    }
    for flags, message in cases.items():
        with pytest.raises(EegstreamError, match=message):
            config_from_args(parser.parse_args(["bench", *flags]))
    cfg = config_from_args(parser.parse_args(["bench", "--soak", "2"]))
    assert cfg.headsets == (1,)
    assert cfg.replay_speed == 16.0
    assert config_from_args(parser.parse_args(["bench", "--e2e"])).headsets == (1, 8, 32, 64)
    assert main(["bench", "--e2e", "--headsets", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eegstream bench: error: bench --headsets")
    assert err.count("\n") == 1
