"""Calibration live end to end: a replayed protocol session over real LSL on loopback.

The simulated person's recording holds the protocol (same seed, same cue times): the replay
plays the person, :func:`record_protocol` runs the protocol against the stream exactly as
``eegstream calibrate --stream-name`` does, and a second recording of the same person is then
detected live with the profile and compared with ``detect --profile`` on the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import replay_through_pipeline, stop_process
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from eegstream.bundle import ModelBundle
from eegstream.calibrate import CUE_LABELS, Protocol, calibrate_recording, simulate_protocol
from eegstream.calibrate_live import END_SLACK_S, record_protocol
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent
from eegstream.io.emotiv import read_recording, write_recording
from eegstream.offline import detect_messages
from eegstream.profile import apply_profile
from eegstream.settings import Settings
from eegstream.simulate import draw_subject, simulate_with_truth
from eegstream.stream.replay import Player


def test_live_calibration_then_live_detection_with_the_profile(
    bundle: ModelBundle, engine: Engine, lsl_name: str, source_id: str
) -> None:
    subject = draw_subject(3201)
    session = simulate_protocol(3201, subject=subject)
    prompts: list[str] = []
    marker_name = f"{lsl_name}-cues"
    # 8x real time: the two-minute protocol in ~15 s; the player waits for the inlet
    player = Player(
        session, name=lsl_name, source_id=source_id, speed=8, wait_for_consumer=30, markers=False
    )
    with player:
        rec = record_protocol(lsl_name, Protocol(), prompts.append, marker_name=marker_name)
    # the protocol is anchored at the first sample: it arrived, and so did the session up to
    # the last quarter second of its final rest (END_SLACK_S) and a chunk
    np.testing.assert_allclose(rec.data[0], session.data[0], atol=1e-3)
    assert rec.n_samples >= session.n_samples - round(END_SLACK_S * 128) - 8
    assert sum("BLINK" in p for p in prompts) == 10
    assert sum("CLENCH" in p for p in prompts) == 6
    assert [m.label for m in rec.markers] == [CUE_LABELS[c.label] for c in Protocol().cues()]
    result = calibrate_recording(rec, bundle, engine, Settings())
    assert all(r.kept for r in result.responses)
    b2, s2 = apply_profile(result.profile, bundle, Settings())

    second, _ = simulate_with_truth(60.0, 53201, subject=subject)
    expected = [
        m
        for m in detect_messages(second, engine, b2.features, s2, progress=False)
        if isinstance(m, ArtifactEvent) and m.phase == "final"
    ]
    assert len(expected) >= 5
    got, status, t0 = replay_through_pipeline(
        second, engine, b2.features, s2, f"{lsl_name}-2", f"{source_id}-2", timeout=60
    )
    baseline = status["person_baseline"]
    assert isinstance(baseline, dict)
    assert baseline["warm"] is True
    assert [e.label for e in got] == [e.label for e in expected]
    for a, b in zip(got, expected, strict=True):
        assert abs((a.onset_lsl - t0) - (b.onset_lsl - second.timestamps[0])) < 1e-3
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)


def test_live_calibration_of_a_missing_stream_is_one_clear_error(lsl_name: str) -> None:
    with pytest.raises(EegstreamError, match=lsl_name):
        record_protocol(lsl_name, Protocol(), lambda _: None, resolve_timeout=0.5)


def _eegstream(*args: str) -> list[str]:
    return [sys.executable, "-m", "eegstream", *args]


async def _events_until(url: str, done: Any) -> list[dict[str, Any]]:
    """Every websocket message until the server closes; ``done()`` once every sample arrived."""
    got: list[dict[str, Any]] = []
    async with connect(url, proxy=None) as ws:
        try:
            async with asyncio.timeout(120):
                while True:
                    try:
                        async with asyncio.timeout(0.5):
                            got.append(json.loads(await ws.recv()))
                    except TimeoutError:
                        await asyncio.to_thread(done)
        except ConnectionClosed:
            pass
    return got


def test_cli_calibrate_live_then_serve_with_the_profile_equals_detect(
    tmp_path: Path, lsl_name: str, source_id: str
) -> None:
    """``calibrate --stream-name`` -> ``serve --profile`` websocket == ``detect --profile``."""
    env = os.environ.copy()
    subject = draw_subject(3202)
    session = simulate_protocol(3202, subject=subject)
    prof = tmp_path / "alice.profile"
    marker_name = f"{lsl_name}-cues"
    # the command is the only consumer: the replay starts at its first pull (8x real time)
    player = Player(
        session, name=lsl_name, source_id=source_id, speed=8, wait_for_consumer=60, markers=False
    )
    with player:
        import pylsl

        cal = subprocess.Popen(
            _eegstream("calibrate", "--stream-name", lsl_name, "--source-id", source_id,
                       "--out", str(prof), "--marker-name", marker_name,
                       "--backend", "onnxruntime"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            # the cues go out on the LSL marker stream, as a LabRecorder would record them
            found = pylsl.resolve_byprop("name", marker_name, 1, 60)
            assert found, "the calibration's cue marker stream never appeared"
            cues_in = pylsl.StreamInlet(found[0], recover=False)
            cues_in.open_stream(10)
            pushed: list[list[str]] = []
            # read while the command runs (its outlet goes with it; the last cue comes 20 s
            # of protocol time before the end)
            while cal.poll() is None and len(pushed) < len(Protocol().cues()):
                try:
                    chunk, _ = cues_in.pull_chunk(timeout=0.2)
                except pylsl.LostError:  # the command ended (its assertions follow)
                    break
                pushed += chunk
            del cues_in
            out, err = cal.communicate(timeout=120)
        finally:
            stop_process(cal)
    assert cal.returncode == 0, err
    assert f"wrote {prof}" in out
    assert sum("BLINK" in line for line in err.splitlines()) == 10
    assert [m[0] for m in pushed] == [CUE_LABELS[c.label] for c in Protocol().cues()]
    profile = json.loads(prof.read_text(encoding="utf-8"))
    assert profile["name"] == "alice"
    assert profile["calibration"]["classes"]["blink"]["kept"] == 10
    assert profile["calibration"]["classes"]["jaw_clench"]["kept"] == 6

    # a second recording of the same person: offline with the profile ...
    second, _ = simulate_with_truth(60.0, 53202, subject=subject)
    csv = tmp_path / "second.csv"
    write_recording(second, csv)
    det = subprocess.run(
        _eegstream("detect", str(csv), "--profile", str(prof), "--backend", "onnxruntime"),
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert det.returncode == 0, det.stderr
    expected = [json.loads(line) for line in det.stdout.splitlines() if line.strip()]
    assert len(expected) >= 5
    t_file = float(read_recording(csv).timestamps[0])

    # ... and live through `serve --profile`, read from its websocket
    name2, sid2 = f"{lsl_name}-2", f"{source_id}-2"
    player2 = Player(
        read_recording(csv), name=name2, source_id=sid2, speed=8, wait_for_consumer=60,
        markers=False,
    )  # fmt: skip
    with player2:
        srv = subprocess.Popen(
            _eegstream("serve", "--stream-name", name2, "--source-id", sid2, "--port", "0",
                       "--backend", "onnxruntime", "--profile", str(prof)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert srv.stdout is not None
            banner = [srv.stdout.readline() for _ in range(3)]
            assert banner[0].startswith("dashboard:  http://127.0.0.1:"), banner
            base = banner[0].split()[-1].rstrip("/")
            ws_url = banner[1].split()[-1]
            statuses: list[dict[str, Any]] = []

            def all_arrived() -> None:
                st = httpx.get(f"{base}/status", timeout=5).json()
                statuses.append(st)
                stream = st["pipeline"]["streams"].get(name2) or {}
                if stream.get("samples", 0) >= second.n_samples and srv.poll() is None:
                    srv.send_signal(signal.SIGTERM)  # closes the open event, then the clients

            msgs = asyncio.run(_events_until(ws_url, all_arrived))
            assert srv.wait(30) == 0
        finally:
            stop_process(srv)
        start = player2.start_time
    assert start is not None
    got = [m for m in msgs if m["type"] == "artifact" and m["phase"] == "final"]
    assert [e["label"] for e in got] == [e["label"] for e in expected]
    for a, b in zip(got, expected, strict=True):
        assert abs((a["onset_lsl"] - start) - (b["onset_lsl"] - t_file)) < 5e-3
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-3)
    # /status showed the profile in use
    model = statuses[-1]["model"]
    assert model["profile"]["name"] == "alice"
    assert model["profile"]["file"] == str(prof)
    assert model["profile"]["thresholds"] == profile["thresholds"]
