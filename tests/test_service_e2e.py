"""End to end: replay a simulated recording over LSL -> pipeline -> service -> websocket clients.

Everything is real: the replay player's LSL outlet on loopback, the inlet and detector thread, the
default model on ONNX Runtime, uvicorn, and two websocket clients: one connected throughout, one
that leaves for a while and comes back with ``?since=``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from eegstream.errors import EegstreamError
from eegstream.evaluate import match_events
from eegstream.events import ArtifactEvent
from eegstream.io.recording import Marker, Recording

DURATION_S = 100.0
SPEED = 8.0  # 100 s of EEG in 12.5 s; windows sit on absolute sample indices, so speed does not
# change what the detector sees
SEED = 9107  # a subject the default model never saw


@pytest.fixture(scope="module")
def recording() -> Recording:
    from eegstream.simulate import simulate_recording

    return simulate_recording(DURATION_S, SEED, blink_rate=20.0, clench_rate=12.0)


def _require_model() -> None:
    from eegstream.bundle import ModelBundle
    from eegstream.settings import Settings

    try:
        ModelBundle.load(Settings().model_dir)  # type: ignore[call-arg]
    except EegstreamError as exc:
        pytest.skip(f"the default model bundle is not available yet: {exc}")


def markers_in_lsl_clock(recording: Recording, start_lsl: float) -> list[Marker]:
    """The recording's markers re-timed to the replay's LSL clock."""
    t0 = float(recording.timestamps[0])
    return [
        dataclasses.replace(m, time=start_lsl + float(recording.timestamps[m.sample]) - t0)
        for m in recording.markers
    ]


def test_replay_to_websocket_events_match_the_markers(
    recording: Recording, lsl_name: str, source_id: str
) -> None:
    _require_model()
    from eegstream.service import create_app, get_service
    from eegstream.service.detection import preload
    from eegstream.service.run import BackgroundServer
    from eegstream.settings import Settings
    from eegstream.stream.replay import Player

    settings = Settings(  # type: ignore[call-arg]
        port=0,
        marker_outlet=False,
        stream_name=[lsl_name],
        source_id=source_id,
        backend="onnxruntime",
        resolve_timeout=30.0,
    )
    player = Player(recording, name=lsl_name, source_id=source_id, speed=SPEED, markers=False)
    with player:
        factory = preload(settings)
        with BackgroundServer(create_app(settings, factory), settings) as server:
            service = get_service(server.app)
            url = server.ws_url + "/ws/events"
            # both clients ask for the whole history, so the race with the stream's first
            # "connected" message does not matter: everything since seq 0 arrives in order

            async def continuous() -> list[dict[str, Any]]:
                got: list[dict[str, Any]] = []
                async with connect(f"{url}?since=0", proxy=None) as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["model"]["sha256"] == service.source.model.sha256  # type: ignore[union-attr]
                    assert hello["backend"] == "onnxruntime"
                    async with asyncio.timeout(120):
                        while True:
                            msg = json.loads(await ws.recv())
                            if msg["type"] != "ping":
                                got.append(msg)
                            if msg["type"] == "status" and msg["status"] == "lost":
                                return got  # the replay ended and the stream went away

            async def reconnecting() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
                before: list[dict[str, Any]] = []
                async with connect(f"{url}?since=0", proxy=None) as ws:
                    await ws.recv()
                    while sum(m["type"] == "artifact" for m in before) < 4:
                        msg = json.loads(await ws.recv())
                        if msg["type"] != "ping":
                            before.append(msg)
                left_at = service.hub.seq
                while service.hub.seq < left_at + 6:  # at least six messages happen meanwhile
                    await asyncio.sleep(0.05)
                after: list[dict[str, Any]] = []
                async with connect(f"{url}?since={before[-1]['seq']}", proxy=None) as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["replayed"] >= 6
                    async with asyncio.timeout(120):
                        while True:
                            msg = json.loads(await ws.recv())
                            if msg["type"] != "ping":
                                after.append(msg)
                            if msg["type"] == "status" and msg["status"] == "lost":
                                return before, after

            async def main() -> tuple[Any, ...]:
                return tuple(await asyncio.gather(continuous(), reconnecting()))

            all_msgs, (before, after) = asyncio.run(main())
            ready = httpx.get(server.url + "/ready").json()
            metrics = httpx.get(server.url + "/metrics").text
        start_lsl = player.start_time
    assert start_lsl is not None
    seqs = [m["seq"] for m in all_msgs]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert all_msgs[0]["type"] == "status"
    assert all_msgs[0]["status"] == "connected"
    # the client that left got exactly what it missed: together, the same messages in order
    assert [m["seq"] for m in before + after] == seqs
    assert before + after == all_msgs
    # events match the recording's markers (the acceptance figure: F1 >= 0.95 per label)
    events = [ArtifactEvent.model_validate(m) for m in all_msgs if m["type"] == "artifact"]
    finals = [e for e in events if e.phase == "final"]
    onsets = {e.id for e in events if e.phase == "onset"}
    assert {e.id for e in finals} <= onsets  # every event was announced at its onset first
    _, reports = match_events(finals, markers_in_lsl_clock(recording, start_lsl))
    summary = {lab: (r.tp, r.fp, r.fn, r.f1) for lab, r in reports.items()}
    assert reports["blink"].tp + reports["blink"].fn >= 20, summary
    assert reports["jaw_clench"].tp + reports["jaw_clench"].fn >= 10, summary
    for label, report in reports.items():
        assert report.f1 >= 0.95, (label, summary)
    assert ready["ready"] is False  # the stream is gone by now
    assert "eegstream_windows_processed_total 0.0" not in metrics
    n_blinks = sum(e.label == "blink" and e.phase == "onset" for e in events)
    assert f'eegstream_events_total{{label="blink"}} {float(n_blinks)}' in metrics
