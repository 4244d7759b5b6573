"""The service app on a real uvicorn (port 0, background thread) with real websocket/HTTP clients.

These tests publish through ``Service.sink``, the very callback the pipeline thread calls (from
this test's thread, so the hop onto the event loop is exercised too). The pipeline itself is
covered by ``test_service_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import wait_until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.service import create_app, get_service
from eegstream.service.dashboard import SignalState as _SignalState
from eegstream.service.run import BackgroundServer
from eegstream.settings import FS, Settings, load_settings

TOKEN = "s3cret-token"


def artifact(
    i: int, label: str = "blink", stream: str = "s1", phase: str = "onset"
) -> ArtifactEvent:
    now = time.time()
    return ArtifactEvent(
        id=f"e{i}",
        phase=phase,  # type: ignore[arg-type]
        stream_id=stream,
        label=label,  # type: ignore[arg-type]
        onset_lsl=100.0 + i,
        offset_lsl=100.3 + i,
        onset_unix=now - 0.4,
        offset_unix=now - 0.1,
        duration=0.3,
        confidence=0.91,
        n_windows=3,
        detected_lsl=100.4 + i,
        detected_unix=now,
    )


class Served:
    """A running app without a pipeline, and the sink the pipeline would call."""

    def __init__(self, server: BackgroundServer) -> None:
        self.server = server
        self.service = get_service(server.app)
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def publish(self, *messages: Message) -> None:
        for m in messages:
            self.service.sink(m)

    def ws(self, path: str = "/ws/events", **kw: Any) -> Any:
        return connect(
            self.server.ws_url + path, proxy=None, compression=None, open_timeout=10, **kw
        )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(**overrides: Any) -> Served:
        settings = Settings(port=0, marker_outlet=False, **overrides)  # type: ignore[call-arg]
        served = Served(BackgroundServer(create_app(settings, None), settings).start())
        started.append(served)
        return served

    yield start
    for s in started:
        s.http.close()
        s.server.stop()


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def close_code(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    try:
        while True:
            await recv_json(ws)
    except ConnectionClosed as exc:
        frame = exc.rcvd
    assert frame is not None, "closed without a close frame"
    return frame.code, frame.reason


async def recv_until(ws: ClientConnection, n: int, kind: str = "artifact") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < n:
        msg = await recv_json(ws)
        if msg["type"] == kind:
            out.append(msg)
    return out


def test_hello_then_events_with_increasing_seq(serve: Callable[..., Served]) -> None:
    s = serve()

    async def main() -> None:
        async with s.ws() as ws:
            hello = await recv_json(ws)
            assert hello["type"] == "hello"
            assert hello["seq"] == 0
            assert hello["version"]
            assert hello["model"] is None  # no pipeline in this app
            s.publish(artifact(0), artifact(1, "jaw_clench"), artifact(0, phase="final"))
            got = await recv_until(ws, 3)
            assert [m["seq"] for m in got] == [1, 2, 3]
            assert [(m["id"], m["phase"], m["label"]) for m in got] == [
                ("e0", "onset", "blink"),
                ("e1", "onset", "jaw_clench"),
                ("e0", "final", "blink"),
            ]
            # the event fields sit at the top level of the message, as in the shared schema
            assert ArtifactEvent.model_validate(got[1]).confidence == pytest.approx(0.91)
            s.publish(StatusMessage(stream_id="s1", status="gap", unix_time=time.time()))
            status = await recv_until(ws, 1, "status")
            assert status[0]["seq"] == 4
            assert status[0]["status"] == "gap"

    asyncio.run(main())


def test_since_returns_exactly_the_missed_events(serve: Callable[..., Served]) -> None:
    s = serve()

    async def main() -> None:
        async with s.ws() as ws:
            await recv_json(ws)
            s.publish(*(artifact(i) for i in range(3)))
            seen = [m["seq"] for m in await recv_until(ws, 3)]
        # while disconnected, five more events happen
        s.publish(*(artifact(i) for i in range(3, 8)))
        assert wait_until(lambda: s.service.hub.seq == 8)
        async with s.ws(f"/ws/events?since={seen[-1]}") as ws:
            hello = await recv_json(ws)
            assert hello["replayed"] == 5
            assert hello["history_truncated"] is False
            missed = await recv_until(ws, 5)
            assert [m["seq"] for m in missed] == [4, 5, 6, 7, 8]
            assert [m["id"] for m in missed] == ["e3", "e4", "e5", "e6", "e7"]
            s.publish(artifact(8))  # then live, without a gap or a duplicate
            assert [m["seq"] for m in await recv_until(ws, 1)] == [9]

    asyncio.run(main())


def test_labels_and_stream_filters(serve: Callable[..., Served]) -> None:
    s = serve()

    async def main() -> None:
        async with (
            s.ws("/ws/events?labels=jaw_clench") as clench,
            s.ws("/ws/events?stream=s2") as s2,
        ):
            await recv_json(clench)
            await recv_json(s2)
            s.publish(
                artifact(0, "blink"),
                artifact(1, "jaw_clench"),
                artifact(2, "blink", stream="s2"),
                artifact(3, "jaw_clench"),
            )
            assert [m["id"] for m in await recv_until(clench, 2)] == ["e1", "e3"]
            assert [m["id"] for m in await recv_until(s2, 1)] == ["e2"]

    asyncio.run(main())
    r = s.http.get("/events", params={"since": 0, "labels": "blink"})
    assert [e["id"] for e in r.json()["events"]] == ["e0", "e2"]
    r = s.http.get("/events", params={"since": 1, "limit": 2})
    assert [e["seq"] for e in r.json()["events"]] == [2, 3]
    assert r.json()["seq"] == 4


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 100_000}, "limit", "less than or equal to 10000"),
        ({"since": -1}, "since", "greater than or equal to 0"),
        ({"since": "abc"}, "since", "valid integer"),
        ({"labels": "blink,sneeze"}, "labels", "unknown sneeze; allowed: blink, jaw_clench"),
        ({"types": "hello"}, "types", "unknown hello; allowed: artifact, status"),
    ],
)
def test_bad_rest_parameters_are_422_with_a_message(
    serve: Callable[..., Served], query: dict[str, Any], field: str, message: str
) -> None:
    s = serve()
    r = s.http.get("/events", params=query)
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["query", field]
    assert message in detail["msg"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("since=abc", "since='abc': expected a sequence number (an integer >= 0)"),
        ("since=-3", "since='-3': expected a sequence number"),
        ("labels=sneeze", "labels='sneeze': unknown sneeze; allowed: blink, jaw_clench"),
    ],
)
def test_bad_websocket_parameters_close_with_1008_and_reason(
    serve: Callable[..., Served], query: str, reason: str
) -> None:
    s = serve()

    async def main() -> None:
        async with s.ws(f"/ws/events?{query}") as ws:
            code, text = await close_code(ws)
        assert code == 1008
        assert reason in text

    asyncio.run(main())


def test_token_protects_rest_and_websockets(serve: Callable[..., Served]) -> None:
    s = serve(token=TOKEN)
    for path in ("/status", "/events", "/metrics", "/ready"):
        r = s.http.get(path)
        assert r.status_code == 401, path
        assert "Authorization: Bearer" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
        assert s.http.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = s.http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code in (200, 503), path  # /ready is 503: no pipeline in this app
    assert s.http.get("/health").status_code == 200  # open, for container health checks
    assert s.http.get("/").status_code == 200  # the page itself holds no data

    async def refused(path: str, **kw: Any) -> tuple[int, str]:
        async with s.ws(path, **kw) as ws:
            return await close_code(ws)

    async def main() -> None:
        for path in ("/ws/events", "/ws/events?token=nope", "/ws/signal"):
            code, reason = await refused(path)
            assert code == 4401
            assert "missing or invalid token" in reason
        async with s.ws(f"/ws/events?token={TOKEN}") as ws:
            assert (await recv_json(ws))["type"] == "hello"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with s.ws("/ws/events", additional_headers=headers) as ws:
            assert (await recv_json(ws))["type"] == "hello"

    asyncio.run(main())


def test_foreign_browser_origin_is_refused(serve: Callable[..., Served]) -> None:
    s = serve(cors_origins=["http://lab.example:3000"])

    async def main() -> None:
        async with s.ws(origin="http://evil.example") as ws:  # type: ignore[arg-type]
            code, reason = await close_code(ws)
        assert code == 4403
        assert "origin http://evil.example not allowed" in reason
        for origin in ("http://lab.example:3000", s.server.url):  # configured, and the page's own
            async with s.ws(origin=origin) as ws:  # type: ignore[arg-type]
                assert (await recv_json(ws))["type"] == "hello"

    asyncio.run(main())
    pre = s.http.options(
        "/status",
        headers={"Origin": "http://lab.example:3000", "Access-Control-Request-Method": "GET"},
    )
    assert pre.headers["access-control-allow-origin"] == "http://lab.example:3000"


def test_no_cors_by_default(serve: Callable[..., Served]) -> None:
    s = serve()
    r = s.http.get("/status", headers={"Origin": "http://lab.example:3000"})
    assert "access-control-allow-origin" not in r.headers


def test_oversized_incoming_message_closes_with_1009(serve: Callable[..., Served]) -> None:
    s = serve(ws_max_message=1024)

    async def main() -> None:
        async with s.ws() as ws:
            await recv_json(ws)
            await ws.send("x" * 100)  # small messages are ignored
            await ws.send("x" * 5000)
            code, _ = await close_code(ws)
        assert code == 1009

    asyncio.run(main())


def test_app_level_pings_keep_idle_clients_informed(serve: Callable[..., Served]) -> None:
    s = serve(ws_ping_interval=0.3)

    async def main() -> None:
        async with s.ws() as ws:
            await recv_json(ws)
            s.publish(artifact(0))
            await recv_until(ws, 1)
            ping = await recv_json(ws, timeout=5)
            assert ping["type"] == "ping"
            assert ping["seq"] == 1

    asyncio.run(main())


def test_rest_status_ready_health_docs_and_metrics(serve: Callable[..., Served]) -> None:
    s = serve()
    assert s.http.get("/health").json()["status"] == "ok"
    ready = s.http.get("/ready")
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "reason": "no detection pipeline in this app"}
    s.publish(artifact(0), artifact(0, phase="final"), artifact(1, "jaw_clench"))
    s.publish(StatusMessage(stream_id="s1", status="gap", unix_time=time.time()))
    s.publish(StatusMessage(stream_id="s1", status="signal_fault", unix_time=time.time()))
    assert wait_until(lambda: s.service.hub.seq == 5)
    st = s.http.get("/status").json()
    assert st["seq"] == 5
    # a gap and a fault are events in a connected stream, not its state
    assert st["streams"] == [
        {"stream_id": "s1", "status": "connected", "last_status": "signal_fault"}
    ]
    assert st["uptime_s"] > 0
    assert st["dropped_clients"] == 0
    assert s.http.get("/docs").status_code == 200
    paths = s.http.get("/openapi.json").json()["paths"]
    assert {"/health", "/ready", "/status", "/events", "/metrics"} <= set(paths)

    async def with_client() -> str:
        async with s.ws() as ws:
            await recv_json(ws)
            return s.http.get("/metrics").text

    text = asyncio.run(with_client())
    lines = set(text.splitlines())
    # each artifact counted once (at onset), whatever the number of phases
    assert 'eegstream_events_total{label="blink"} 1.0' in lines
    assert 'eegstream_events_total{label="jaw_clench"} 1.0' in lines
    assert 'eegstream_messages_total{type="artifact"} 3.0' in lines
    assert 'eegstream_connected_clients{endpoint="events"} 1.0' in lines
    assert "eegstream_stream_gaps_total 1.0" in lines
    assert "eegstream_signal_faults_total 1.0" in lines
    assert "eegstream_end_to_end_latency_seconds_count 2.0" in lines
    assert "eegstream_windows_processed_total 0.0" in lines
    assert "# TYPE eegstream_inference_latency_seconds histogram" in lines
    assert s.http.get("/ready").json()["reason"] == "no detection pipeline in this app"
    s.publish(StatusMessage(stream_id="s1", status="lost", unix_time=time.time()))
    s.publish(StatusMessage(stream_id="s1", status="recovered", unix_time=time.time()))
    s.publish(StatusMessage(stream_id="s1", status="nan", unix_time=time.time()))
    assert wait_until(lambda: s.service.hub.seq == 8)
    st = s.http.get("/status").json()
    assert st["streams"] == [{"stream_id": "s1", "status": "connected", "last_status": "nan"}]
    s.publish(StatusMessage(stream_id="s1", status="lost", unix_time=time.time()))
    assert wait_until(lambda: s.service.hub.seq == 9)
    st = s.http.get("/status").json()
    assert st["streams"] == [{"stream_id": "s1", "status": "lost", "last_status": "lost"}]


def test_event_log_is_appended_and_flushed_per_event(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    path.parent.mkdir()
    path.write_text('{"earlier": "run"}\n')
    s = serve(event_log=path)
    s.publish(artifact(0))
    # readable while the service still runs: written and flushed per event
    assert wait_until(lambda: len(path.read_text().splitlines()) == 2)
    s.publish(
        artifact(0, phase="final"), StatusMessage(stream_id="s1", status="lost", unix_time=1.0)
    )
    assert wait_until(lambda: len(path.read_text().splitlines()) == 4)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"earlier": "run"}
    assert [(m["seq"], m["type"]) for m in lines[1:]] == [
        (1, "artifact"),
        (2, "artifact"),
        (3, "status"),
    ]


def test_unwritable_event_log_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = Settings(port=0, marker_outlet=False, event_log=blocker / "events.jsonl")  # type: ignore[call-arg]
    with pytest.raises(
        EegstreamError, match=r"--event-log .*events.jsonl: cannot open it for appending"
    ):
        BackgroundServer(create_app(settings, None), settings).start()


@pytest.mark.parametrize("marker_format", ["json", "text"])
def test_marker_outlet_pushes_events_stamped_at_onset(
    serve: Callable[..., Served], lsl_name: str, marker_format: str
) -> None:
    import pylsl

    settings = Settings(  # type: ignore[call-arg]
        port=0, marker_outlet=True, marker_outlet_name=lsl_name, marker_format=marker_format
    )
    with BackgroundServer(create_app(settings, None), settings) as server:
        infos = pylsl.resolve_byprop("name", lsl_name, 1, 20.0)
        assert len(infos) == 1
        assert infos[0].type() == "Markers"
        assert infos[0].nominal_srate() == pylsl.IRREGULAR_RATE
        assert infos[0].channel_format() == pylsl.cf_string
        inlet = pylsl.StreamInlet(infos[0])
        inlet.open_stream(20.0)
        service = get_service(server.app)
        sent = artifact(7, "jaw_clench")
        deadline = time.monotonic() + 20
        sample, stamp = None, None
        while sample is None and time.monotonic() < deadline:
            service.sink(sent)  # pushed until the inlet gets one (the first may precede the link)
            sample, stamp = inlet.pull_sample(timeout=1.0)
        assert sample is not None
        if marker_format == "text":  # the service's default: no JSON to parse
            assert sample[0] == "jaw_clench/onset"
        else:
            got = json.loads(sample[0])
            assert got["id"] == "e7"
            assert got["label"] == "jaw_clench"
            assert got["seq"] >= 1
        assert stamp == pytest.approx(sent.onset_lsl, abs=1e-9)
        inlet.close_stream()


def test_service_stop_closes_clients_with_going_away(tmp_path: Path) -> None:
    settings = Settings(port=0, marker_outlet=False)  # type: ignore[call-arg]
    server = BackgroundServer(create_app(settings, None), settings).start()

    async def main() -> tuple[int, str]:
        async with (
            connect(server.ws_url + "/ws/events", proxy=None) as events,
            connect(server.ws_url + "/ws/signal", proxy=None) as sig,
        ):
            await recv_json(events)
            await recv_json(sig)
            await asyncio.to_thread(server.stop)
            codes = [await close_code(events), await close_code(sig)]
            assert codes[1] == (1001, "server shutting down")
            return codes[0]

    assert asyncio.run(main()) == (1001, "server shutting down")
    assert not server.running


def test_sigterm_closes_clients_with_1001_and_exits_0(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    script = (
        "import sys\n"
        "from eegstream.settings import Settings\n"
        "from eegstream.service import create_app\n"
        "from eegstream.service.run import serve_app\n"
        f"s = Settings(port=0, marker_outlet=False, event_log={str(log)!r})\n"
        "sys.exit(serve_app(create_app(s, None), s, banner=['listening on {port}']))\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("listening on "), (
                line,
                proc.stderr.read() if proc.stderr else "",
            )
            port = int(line.split()[-1])

            async def main() -> tuple[int, str]:
                async with connect(f"ws://127.0.0.1:{port}/ws/events", proxy=None) as ws:
                    await recv_json(ws)
                    proc.send_signal(signal.SIGTERM)
                    return await close_code(ws)

            assert asyncio.run(main()) == (1001, "server shutting down")
            assert proc.wait(30) == 0
            assert log.exists()  # opened (and closed) by the service
        finally:
            if proc.poll() is None:
                proc.kill()


def test_app_is_built_lazily_on_first_access() -> None:
    """``uvicorn eegstream.service:app`` works, yet importing the package builds nothing."""
    code = (
        "import sys, eegstream.service as s;"
        "print(s._app is None, 'eegstream.service.detection' in sys.modules);"
        "from eegstream.service import app;"
        "print(type(app).__name__, s.app is app, 'eegstream.service.detection' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "FastAPI", "True", "False"]


def test_signal_frames_are_decimated_and_drift_free() -> None:
    state = _SignalState(decimation=4)
    fs = float(FS)
    t = np.arange(10 * FS) / fs
    drift = 4200 + 5 * t[:, None]  # large DC offset and a slow drift (5 uV/s)
    wave = 40 * np.sin(2 * np.pi * 3 * t)[:, None]  # a 3 Hz, 40 uV component to keep
    data = np.repeat(drift + wave, 14, axis=1)
    data[:, 5] += 10  # channels stay independent
    frame = state.frame(data[:1001], t[:1001])
    assert frame is not None
    out = np.array(frame["data"])
    assert out.shape == (14, 250)  # 1000 complete blocks of 4 samples; 1 sample waits
    assert frame["dt"] == pytest.approx(4 / fs)
    # block means of the raw signal, minus a slow baseline: the 3 Hz wave survives, the DC is gone
    tail = out[0, 100:]
    assert abs(tail.mean()) < 10
    assert 20 < tail.std() < 35
    nxt = state.frame(data, t)  # only the samples not sent yet
    assert nxt is not None
    assert nxt["t0"] == pytest.approx(t[1000:1004].mean())
    assert np.array(nxt["data"]).shape == (14, (len(t) - 1000) // 4)
    assert state.frame(data, t) is None  # nothing new
    gap = data.copy()
    gap[-8:, 2] = np.nan  # missing samples are drawn flat, never as NaN (invalid JSON)
    t2 = t + 10
    frame2 = state.frame(np.concatenate([gap, gap]), np.concatenate([t, t2]))
    assert frame2 is not None
    assert json.dumps(frame2, allow_nan=False)


def test_load_settings_priority_flags_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "eegstream.toml"
    cfg.write_text('port = 9001\nhost = "0.0.0.0"\nhistory_size = 77\nstream_name = ["A", "B"]\n')
    monkeypatch.setenv("EEGSTREAM_HOST", "127.0.0.2")
    monkeypatch.delenv("EEGSTREAM_CONFIG", raising=False)
    s = load_settings(cfg, port=9100, token=None)
    assert s.port == 9100  # flag beats file
    assert s.host == "127.0.0.2"  # environment beats file
    assert s.history_size == 77  # file beats default
    assert s.stream_name == ["A", "B"]
    assert type(s) is Settings
    json_cfg = tmp_path / "c.json"
    json_cfg.write_text('{"client_queue": 5}')
    monkeypatch.setenv("EEGSTREAM_CONFIG", str(json_cfg))
    assert load_settings().client_queue == 5
    yaml_cfg = tmp_path / "c.yaml"
    yaml_cfg.write_text("send_timeout: 0.5\n")
    assert load_settings(yaml_cfg).send_timeout == 0.5


def test_load_settings_errors_name_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EEGSTREAM_CONFIG", raising=False)
    with pytest.raises(EegstreamError, match=r"--config .*missing.toml: no such file"):
        load_settings(tmp_path / "missing.toml")
    ini = tmp_path / "x.ini"
    ini.write_text("")
    with pytest.raises(
        EegstreamError, match=r"unknown settings format '.ini'; expected one of .toml"
    ):
        load_settings(ini)
    bad = tmp_path / "bad.toml"
    bad.write_text("port = 70000\nbogus = 1\n")
    with pytest.raises(
        EegstreamError,
        match=r"config file .*bad.toml.*port: Input should be less than or equal to 65535 \(got 70000\)",
    ):
        load_settings(bad)
    with pytest.raises(EegstreamError, match=r"bogus: Extra inputs are not permitted"):
        load_settings(bad)
    with pytest.raises(EegstreamError, match=r"signal_rate=48: .* must divide 128"):
        create_app(Settings(signal_rate=48), None)  # type: ignore[call-arg]


def test_tokens_are_redacted_from_uvicorn_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from eegstream.service.run import uvicorn_config

    settings = Settings(port=0, marker_outlet=False)  # type: ignore[call-arg]
    uvicorn_config(create_app(settings, None), settings)
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/ws/events?since=3&token=s3cret"
        )
    assert caplog.messages == ['127.0.0.1:5 - "WebSocket /ws/events?since=3&token=***" [accepted]']


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_failing_event_log_shows_in_health_but_serving_goes_on(
    serve: Callable[..., Served],
) -> None:
    s = serve(event_log=Path("/dev/full"))  # every write fails: "no space left on device"

    async def main() -> None:
        async with s.ws() as ws:
            await recv_json(ws)
            s.publish(artifact(0))
            assert (await recv_until(ws, 1))[0]["id"] == "e0"  # clients still get the event

    asyncio.run(main())
    health = s.http.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert "event log /dev/full: [Errno 28] No space left on device" in health.json()["error"]
