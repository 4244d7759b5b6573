"""Hostile clients against a real uvicorn on loopback (issue #15, "Hardening").

DNS rebinding (``Host``/``Origin``), oversized and malformed handshakes, close reasons that do
not fit a control frame, tokens in the logs, a client that stops reading, and startup errors of
``eegstream serve``. Real clients only: ``httpx``, ``websockets`` (given a socket of our own when
the URL must name a foreign host) and raw sockets for what no client library sends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import wait_until
from test_service_app import TOKEN, Served, artifact, close_code, recv_json
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from eegstream.service import create_app
from eegstream.service.logs import redact_query
from eegstream.service.run import BackgroundServer
from eegstream.service.security import close_reason
from eegstream.settings import Settings


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
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


def _ws_as(s: Served, host: str, path: str, origin: str | None = None) -> Any:
    """A websocket to this server whose handshake says ``Host: host`` (and ``Origin``).

    The URL names ``host``, so that is what the client sends; the connection itself goes to
    127.0.0.1, as a browser's would after a DNS rebinding.
    """
    sock = socket.create_connection(("127.0.0.1", s.server.port), timeout=10)
    return connect(
        f"ws://{host}{path}",
        sock=sock,
        proxy=None,
        compression=None,
        open_timeout=10,
        origin=origin,  # type: ignore[arg-type]
    )


async def _refusal(s: Served, host: str, path: str, origin: str | None = None) -> tuple[int, str]:
    async with _ws_as(s, host, path, origin) as ws:
        return await close_code(ws)


# --- 1. DNS rebinding: Host allow-list and Origin ------------------------------------------------


def test_rest_answers_allowed_hosts_only(serve: Callable[..., Served]) -> None:
    s = serve(allowed_hosts=["eeg.lab.example"])
    port = s.server.port
    for path in ("/status", "/events", "/metrics", "/ready", "/health", "/", "/docs"):
        r = s.http.get(path, headers={"Host": f"evil.example:{port}"})
        assert r.status_code == 400, path
        detail = r.json()["detail"]
        assert f"host 'evil.example:{port}' is not allowed" in detail
        assert "--allowed-host evil.example" in detail
        assert "EEGSTREAM_ALLOWED_HOSTS=evil.example" in detail
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                 f"eeg.lab.example:{port}", "eeg.lab.example:1234"):  # fmt: skip
        assert s.http.get("/status", headers={"Host": host}).status_code == 200, host
    assert s.http.get("/status", headers={"Host": "lab.example.evil.example"}).status_code == 400


def test_allowed_hosts_star_and_bound_address(serve: Callable[..., Served]) -> None:
    s = serve(allowed_hosts=["*"])
    assert s.http.get("/status", headers={"Host": "anything.example:1"}).status_code == 200
    # bound to another address: that address is allowed as well (here 127.0.0.2, on loopback)
    t = serve(host="127.0.0.2")
    with httpx.Client(base_url=t.server.url, timeout=10) as http:
        assert http.get("/status").status_code == 200
        assert http.get("/status", headers={"Host": "localhost"}).status_code == 200
        assert http.get("/status", headers={"Host": "127.0.0.3"}).status_code == 400


@pytest.mark.parametrize("path", ["/ws/events", "/ws/signal"])
def test_websockets_refuse_a_rebound_host_and_foreign_origins(
    serve: Callable[..., Served], path: str
) -> None:
    s = serve(allowed_hosts=["eeg.lab.example"], cors_origins=["http://ui.example:3000"])
    port = s.server.port
    evil = f"evil.example:{port}"

    async def main() -> None:
        # the rebinding page: Host and Origin both its own name (accepted before the fix)
        code, reason = await _refusal(s, evil, path, f"http://{evil}")
        assert code == 1008
        assert reason.startswith(f"host '{evil}' is not allowed")
        assert len(reason.encode()) <= 123
        code, _ = await _refusal(s, evil, path)  # a script naming the foreign host, no Origin
        assert code == 1008
        # Origin is not compared with Host: an allowed Host does not vouch for a foreign page
        code, reason = await _refusal(s, f"eeg.lab.example:{port}", path, f"http://{evil}")
        assert code == 4403
        assert f"origin http://{evil} not allowed" in reason
        code, _ = await _refusal(s, f"127.0.0.1:{port}", path, "null")
        assert code == 4403
        # accepted: no Origin, an Origin whose host is allowed, a configured CORS origin
        for host, origin in [
            (f"127.0.0.1:{port}", None),
            (f"localhost:{port}", f"http://localhost:{port}"),
            (f"127.0.0.1:{port}", f"http://[::1]:{port}"),
            (f"eeg.lab.example:{port}", f"http://eeg.lab.example:{port}"),
            (f"127.0.0.1:{port}", "http://ui.example:3000"),
        ]:
            async with _ws_as(s, host, path, origin) as ws:
                first = await recv_json(ws)
                assert first["type"] in ("hello", "signal_info"), (host, origin)

    asyncio.run(main())


def test_host_policy_with_star_still_checks_origin_against_host(
    serve: Callable[..., Served],
) -> None:
    s = serve(allowed_hosts=["*"])

    async def main() -> None:
        async with _ws_as(s, "any.example:8080", "/ws/events", "http://any.example:8080") as ws:
            assert (await recv_json(ws))["type"] == "hello"
        code, _ = await _refusal(s, "any.example:8080", "/ws/events", "http://other.example")
        assert code == 4403

    asyncio.run(main())


# --- 2. handshakes: oversized request lines, close reasons ------------------------------------


def _handshake(path: str, extra: str = "", host: str = "127.0.0.1") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def _read_until_closed(sock: socket.socket, deadline_s: float) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the connection open."""
    sock.settimeout(deadline_s)
    data = b""
    end = time.monotonic() + deadline_s
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(
                f"the server kept the connection open for {deadline_s} s; got {data[:80]!r}"
            )
        if not chunk:
            return data
        data += chunk
        sock.settimeout(max(0.01, end - time.monotonic()))


@pytest.mark.parametrize(
    ("path", "extra", "status"),
    [
        ("/ws/events?x=" + "a" * 9000, "", b"414"),
        ("/ws/events", "X-Big: " + "b" * 9000 + "\r\n", b"431"),
        ("/ws/events", "".join(f"X-H{i}: v\r\n" for i in range(200)), b"431"),
    ],
    ids=["request-line", "header-line", "too-many-headers"],
)
def test_oversized_websocket_handshakes_are_answered_and_closed(
    serve: Callable[..., Served], path: str, extra: str, status: bytes
) -> None:
    s = serve()
    socks = [socket.create_connection(("127.0.0.1", s.server.port), timeout=5) for _ in range(5)]
    try:
        for sock in socks:
            sock.sendall(_handshake(path, extra))
        for sock in socks:
            reply = _read_until_closed(sock, 1.0)
            assert reply.startswith(b"HTTP/1.1 " + status), reply[:80]
    finally:
        for sock in socks:
            sock.close()
    assert s.http.get("/health").status_code == 200  # and the server still serves


def test_close_reason_is_cut_to_123_bytes_of_whole_characters() -> None:
    assert close_reason("short") == "short"
    cut = close_reason("é" * 100)  # 200 bytes
    assert cut == "é" * 61
    assert len(cut.encode()) == 122
    assert len(close_reason("x" + "€" * 60).encode()) == 121  # 1 + 40 * 3 bytes


def test_non_ascii_invalid_parameter_closes_with_a_valid_reason(
    serve: Callable[..., Served],
) -> None:
    s = serve()

    async def main() -> None:
        async with s.ws("/ws/events?labels=" + quote("é" * 100)) as ws:
            code, reason = await close_code(ws)  # fails if no close frame came
        assert code == 1008
        assert reason.startswith("labels=")
        assert len(reason.encode()) <= 123
        async with s.ws("/ws/events?since=" + quote("ü" * 100)) as ws:
            code, reason = await close_code(ws)
        assert code == 1008
        assert reason.startswith("since=")

    asyncio.run(main())


# --- 3. tokens: only the exact parameter authenticates; logs never show one -------------------


def test_only_the_exact_token_parameter_authenticates(serve: Callable[..., Served]) -> None:
    s = serve(token=TOKEN)

    async def main() -> None:
        for query in (f"%74oken={TOKEN}", f"TOKEN={TOKEN}", f"Token={TOKEN}", f"token%3D{TOKEN}"):
            async with s.ws(f"/ws/events?{query}") as ws:
                code, reason = await close_code(ws)
            assert code == 4401, query
            assert "missing or invalid token" in reason
        async with s.ws(f"/ws/events?since=0&token={TOKEN}") as ws:
            assert (await recv_json(ws))["type"] == "hello"

    asyncio.run(main())


def test_redact_query_masks_every_credential_like_parameter() -> None:
    line = (
        '127.0.0.1:5 - "GET /ws/events?since=3&token=s3cr%27et%20x&%74oken=A1'
        '&TOKEN=B2&api_key=C3&t%256Fken=D4&labels=blink HTTP/1.1" 200'
    )
    out = redact_query(line)
    for secret in ("s3cr", "et%20x", "A1", "B2", "C3", "D4"):
        assert secret not in out, out
    assert "since=3" in out
    assert "labels=blink" in out
    assert out.endswith(' HTTP/1.1" 200')


def test_tokens_never_reach_the_logs(
    serve: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "it's a s3cret"  # a quote and spaces: the old mask stopped at the quote
    s = serve(token=secret)
    enc = quote(secret, safe="")
    caplog.set_level(logging.INFO)

    async def each() -> None:
        for query in (f"token={enc}", f"%74oken={enc}", f"TOKEN={enc}", f"since=0&Token={enc}"):
            async with s.ws(f"/ws/events?{query}") as ws:
                with contextlib.suppress(ConnectionClosed):
                    await recv_json(ws)  # hello, or the close of a refused token

    asyncio.run(each())
    s.http.get(f"/?token={enc}")
    s.http.get(f"/status?TOKEN={enc}")
    assert wait_until(lambda: "/status?TOKEN=***" in caplog.text, 5.0), "the access log line"
    text = caplog.text
    assert "WebSocket /ws/events?token=***" in text
    assert "%74oken=***" in text
    for leaked in (secret, enc, "s3cret", "it%27s"):
        assert leaked not in text, leaked


# --- 4. a client that stops reading ---------------------------------------------------------------


def _frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(opcode, payload)`` of the unmasked frames a server sent, after its 101 response."""
    data = data[data.index(b"\r\n\r\n") + 4 :]
    while len(data) >= 2:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        head = 2
        if n == 126:
            n, head = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, head = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < head + n:
            return
        yield opcode, data[head : head + n]
        data = data[head + n :]


def test_a_client_that_stops_reading_is_closed_1013_and_counted(
    serve: Callable[..., Served],
) -> None:
    s = serve(send_timeout=0.5, client_queue=100_000, ws_ping_interval=60.0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", s.server.port))
    try:
        sock.sendall(_handshake("/ws/events", host=f"127.0.0.1:{s.server.port}"))
        assert wait_until(lambda: s.service.hub.clients == 1, 5.0), "the client to subscribe"
        # ~1 MB of events, fast: the kernel alone would have absorbed it all (auto-tuned buffers)
        for i in range(1600):
            s.publish(artifact(i))
            if i % 50 == 0:
                time.sleep(0.02)
            if s.service.dropped:
                break
        assert wait_until(lambda: s.service.dropped == 1, 10.0), "the stalled client to be dropped"
        status = s.http.get("/status").json()
        assert status["dropped_clients"] == 1
        assert status["clients"] == 0
        assert "eegstream_clients_dropped_total 1.0" in s.http.get("/metrics").text
        data = _read_until_closed(sock, 15.0)  # the server closes it (after our close times out)
    finally:
        sock.close()
    frames = list(_frames(data))
    assert frames[-1][0] == 0x8, "the last frame is not a close frame"
    code = struct.unpack("!H", frames[-1][1][:2])[0]
    assert code == 1013
    assert b"client too slow: a send took longer than 0.5 s" in frames[-1][1]


# --- 5. startup errors of `eegstream serve` -----------------------------------------------------


def test_serve_startup_error_is_one_line_and_exit_2(lsl_name: str, source_id: str) -> None:
    from test_service_cli import _require_model

    _require_model()
    from eegstream.simulate import simulate_recording
    from eegstream.stream.replay import Player

    recording = dataclasses.replace(simulate_recording(20.0, 3), fs=1000.0)  # Emotiv: 128/256
    argv = [
        sys.executable, "-m", "eegstream", "serve", "--stream-name", lsl_name,
        "--source-id", source_id, "--port", "0", "--backend", "onnxruntime",
    ]  # fmt: skip
    # the stream is found (preload), then refused when the app's lifespan attaches to it
    with Player(recording, name=lsl_name, source_id=source_id, markers=False):
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=os.environ.copy(), check=False
        )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("eegstream serve: error: ")
    assert "Traceback" not in out.stderr
    assert lsl_name in lines[0]
