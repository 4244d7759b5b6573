"""``eegstream serve`` and ``eegstream demo`` as a user runs them: real processes, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from eegstream.cli import main
from eegstream.errors import EegstreamError


def _require_model() -> None:
    from eegstream.bundle import ModelBundle
    from eegstream.settings import Settings

    try:
        ModelBundle.load(Settings().model_dir)  # type: ignore[call-arg]
    except EegstreamError as exc:
        pytest.skip(f"the default model bundle is not available yet: {exc}")


def test_serve_with_a_bad_config_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text("history_size = 0\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("eegstream serve: error: invalid settings (config file ")
    assert "history_size: Input should be greater than or equal to 1 (got 0)" in err


def test_serve_with_a_missing_model_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--model", str(tmp_path / "nope"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"model bundle folder {tmp_path / 'nope'} does not exist" in err


def test_serve_without_a_stream_exits_2_naming_it(
    lsl_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_model()
    argv = ["serve", "--stream-name", lsl_name, "--resolve-timeout", "0.5", "--port", "0"]
    assert main([*argv, "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert f"no LSL stream with name '{lsl_name}', type 'EEG' appeared within 0.5 s" in err
    assert len(err.strip().splitlines()) == 1


async def _collect(url: str, on_first_artifact: Any) -> list[dict[str, Any]]:
    """Every message until the server closes; ``on_first_artifact()`` once, at the first event."""
    got: list[dict[str, Any]] = []
    async with connect(url, proxy=None) as ws:
        try:
            async with asyncio.timeout(60):
                while True:
                    msg = json.loads(await ws.recv())
                    got.append(msg)
                    if msg["type"] == "artifact" and on_first_artifact is not None:
                        on_first_artifact()
                        on_first_artifact = None
        except ConnectionClosed as exc:
            got.append({"type": "closed", "code": exc.rcvd.code if exc.rcvd else None})
    return got


def test_serve_process_detects_a_replay_and_stops_cleanly_on_sigterm(
    tmp_path: Path, lsl_name: str, source_id: str
) -> None:
    _require_model()
    from eegstream.simulate import simulate_recording
    from eegstream.stream.replay import Player

    log = tmp_path / "events.jsonl"
    recording = simulate_recording(60.0, 31, blink_rate=20.0, clench_rate=10.0)
    argv = [
        sys.executable, "-m", "eegstream", "serve", "--stream-name", lsl_name,
        "--source-id", source_id, "--port", "0", "--backend", "onnxruntime",
        "--event-log", str(log),
    ]  # fmt: skip
    with (
        Player(recording, name=lsl_name, source_id=source_id, speed=6.0, markers=False),
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            banner = [proc.stdout.readline() for _ in range(3)]
            assert banner[0].startswith("dashboard:  http://127.0.0.1:"), (banner, proc.stderr)
            ws_url = banner[1].split()[-1]
            assert ws_url.startswith("ws://127.0.0.1:")
            assert ws_url.endswith("/ws/events")
            msgs = asyncio.run(_collect(ws_url, lambda: proc.send_signal(signal.SIGTERM)))
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert msgs[0]["type"] == "hello"
    assert msgs[-1] == {"type": "closed", "code": 1001}
    # the shutdown stopped the pipeline first: the client got its last messages before 1001
    assert msgs[-2]["type"] == "status"
    assert msgs[-2]["status"] == "stopped"
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged[0]["type"] == "status"
    assert logged[0]["status"] == "connected"
    assert any(m["type"] == "artifact" for m in logged)
    assert logged[-1]["status"] == "stopped"  # flushed to the end by the shutdown
    assert [m["seq"] for m in logged] == list(range(1, len(logged) + 1))


def test_demo_runs_for_a_while_and_prints_its_urls() -> None:
    _require_model()
    argv = [sys.executable, "-m", "eegstream", "demo", "--port", "0", "--duration", "12",
            "--speed", "4", "--backend", "onnxruntime"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("replaying the demo recording demo.csv.gz as LSL stream")
    assert any(line.startswith("dashboard:  http://127.0.0.1:") for line in lines)
    assert any(line.startswith("websocket:  ws://127.0.0.1:") for line in lines)
    last = lines[-1].split()
    assert last[:3] == ["stopped", "after", "12"]
    assert int(last[4]) >= 3  # connected + at least one artifact's onset and final
