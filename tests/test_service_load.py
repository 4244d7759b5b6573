"""Bounded load tests on loopback: many clients, stalled clients, delivery latency.

Messages enter through ``Service.sink`` as the pipeline thread's would; the clients run in a
child process (this file run as a script), so the server and the clients use both cores instead
of sharing one interpreter lock. The 200-client latency test runs its server in a child process
too (``server`` mode), away from what earlier tests loaded into the pytest process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np

N_CLIENTS = 200
N_EVENTS = 50
EVENT_SPACING_S = 0.1


def _event(i: int, now: float) -> Any:
    from eegstream.events import ArtifactEvent

    return ArtifactEvent(
        id=f"load-{i}",
        phase="onset",
        stream_id="load",
        label="blink" if i % 2 else "jaw_clench",
        onset_lsl=1000.0 + i,
        offset_lsl=1000.3 + i,
        onset_unix=now - 0.4,
        offset_unix=now - 0.1,
        duration=0.3,
        confidence=0.9,
        n_windows=2,
        detected_lsl=1000.4 + i,
        detected_unix=now,  # the moment it enters the service: latency is measured from here
    )


# --- the client process ---------------------------------------------------------------------------


async def _clients(url: str, n: int, expected: int, stall: bool) -> dict[str, Any]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    latencies: list[float] = []
    seqs: list[list[int]] = [[] for _ in range(n)]

    async def healthy(k: int, ws: Any) -> None:
        while len(seqs[k]) < expected:
            msg = json.loads(await ws.recv())
            if msg["type"] == "artifact":
                latencies.append(time.time() - msg["detected_unix"])
                seqs[k].append(msg["seq"])

    conns = await asyncio.gather(
        *(connect(url, proxy=None, compression=None, open_timeout=30) for _ in range(n))
    )
    stalled = None
    if stall:  # reads its hello, then never again: its library stops reading the socket
        stalled = await connect(url, proxy=None, compression=None, max_queue=1)
        await stalled.recv()
    for ws in conns:
        assert json.loads(await ws.recv())["type"] == "hello"
    gc.collect()
    gc.freeze()  # as the service does: no full collection pass stalls the measurement
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    c0 = time.process_time()
    async with asyncio.timeout(60):
        await asyncio.gather(*(healthy(k, ws) for k, ws in enumerate(conns)))
    stalled_close: list[Any] = [None, None]
    if stalled is not None:  # resume reading: the buffered messages, then the server's close
        try:
            async with asyncio.timeout(30):
                while True:
                    await stalled.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                stalled_close = [exc.rcvd.code, exc.rcvd.reason]
    cpu = time.process_time() - c0
    for ws in conns:
        await ws.close()
    return {"cpu": cpu, "latencies": latencies, "seqs": seqs, "stalled_close": stalled_close}


def _client_main(argv: list[str]) -> None:
    url, n, expected, stall = argv[0], int(argv[1]), int(argv[2]), argv[3] == "stall"
    import uvloop  # uvicorn's own loop: the 200 clients cost half the CPU of plain asyncio

    result = uvloop.run(_clients(url, n, expected, stall))
    # the event loop may leave stdout non-blocking: a busy reader then saw the ~400 kB result
    # cut at a pipe-buffer boundary (196,608 bytes) with exit status 0
    os.set_blocking(sys.stdout.fileno(), True)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# --- tests ----------------------------------------------------------------------------------------


def _server_main() -> None:
    """The service side of the 200-client test, in an interpreter of its own: a uvicorn thread,
    the clients' process, 10 events a second through ``Service.sink``; JSON on stdout."""
    from eegstream.service import create_app, get_service
    from eegstream.service.run import BackgroundServer
    from eegstream.settings import Settings

    # keep-alive pings every second: a client that stops reading stops answering them too
    settings = Settings(port=0, marker_outlet=False, ws_ping_interval=1.0)  # type: ignore[call-arg]
    with BackgroundServer(create_app(settings, None), settings) as server:
        service = get_service(server.app)
        with subprocess.Popen(
            [
                sys.executable,
                __file__,
                server.ws_url + "/ws/events",
                str(N_CLIENTS),
                str(N_EVENTS),
                "stall",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        ) as proc:
            assert proc.stdout is not None
            ready = proc.stdout.readline().strip()
            if ready != "ready":
                raise RuntimeError(
                    f"clients not ready: {ready!r} {proc.stderr.read() if proc.stderr else ''}"
                )
            clients_during = service.hub.clients
            next_at = time.perf_counter()
            for i in range(N_EVENTS):  # 10 events per second: a busy lab (~30 headsets blinking)
                next_at += EVENT_SPACING_S
                time.sleep(max(0.0, next_at - time.perf_counter()))
                service.sink(_event(i, time.time()))
            out, err = proc.communicate(timeout=120)
        result = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 else {}
        result |= {
            "returncode": proc.returncode,
            "stderr": err,
            "clients_during": clients_during,
            "clients_after": service.hub.clients,
            "dropped": service.dropped,
        }
    sys.stdout.write(json.dumps(result) + "\n")


def test_200_clients_get_every_event_fast_while_a_stalled_one_is_dropped() -> None:
    # The service runs in a fresh interpreter, as in production: in the pytest process, after
    # test_model_export had loaded TensorFlow, the delivery p99 was 69-82 ms (3 of 3 runs, 2-core
    # machine); in its own interpreter after the same tests, 13-44 ms in 7 of 9 runs (51 and 70
    # ms in the other two: this bound stays tight on a 2-core machine).
    run = subprocess.run(
        [sys.executable, __file__, "server"],
        capture_output=True,
        text=True,
        timeout=240,
        env=os.environ.copy(),
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["returncode"] == 0, result["stderr"]
    assert result["clients_during"] == N_CLIENTS + 1
    assert result["clients_after"] == 0
    expected = list(range(1, N_EVENTS + 1))
    assert all(s == expected for s in result["seqs"]), "a client missed or reordered events"
    lat = np.array(result["latencies"])
    assert lat.size == N_CLIENTS * N_EVENTS
    p99 = float(np.percentile(lat, 99))
    assert p99 < 0.050, f"delivery latency p99 {p99 * 1000:.1f} ms"
    # the stalled client could not answer keep-alive pings: closed by the slow-client rule
    # (before: 1011 "keepalive ping timeout", and never counted as dropped)
    code, reason = result["stalled_close"]
    assert code == 1013, result["stalled_close"]
    assert "keep-alive" in reason
    assert result["dropped"] == 1


def _raw_ws_client(port: int, path: str) -> tuple[socket.socket, Any]:
    """A websocket client on a raw socket with a tiny receive buffer, for a reader that stalls."""
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    proto.send_request(proto.connect())
    for data in proto.data_to_send():
        sock.sendall(data)
    while (
        proto.handshake_exc is None
        and not proto.events_received()
        and proto.state.name == "CONNECTING"
    ):
        proto.receive_data(sock.recv(65536))
    assert proto.state.name == "OPEN", proto.handshake_exc
    return sock, proto


def test_a_reader_that_stops_is_dropped_when_its_queue_fills() -> None:
    """Backpressure end to end: TCP fills, sends block, the bounded queue overflows -> 1013."""
    from websockets.asyncio.client import connect
    from websockets.frames import Opcode

    from eegstream.service import create_app, get_service
    from eegstream.service.run import BackgroundServer
    from eegstream.settings import Settings

    n = 12_000  # ~7 MB of events: more than loopback's socket buffers hold for one idle reader
    settings = Settings(
        port=0, marker_outlet=False, client_queue=500, send_timeout=10.0, history_size=n
    )  # type: ignore[call-arg]
    with BackgroundServer(create_app(settings, None), settings) as server:
        service = get_service(server.app)
        sock, proto = _raw_ws_client(server.port, "/ws/events")
        with sock:

            async def healthy_reader() -> list[int]:
                seqs: list[int] = []
                async with connect(
                    server.ws_url + "/ws/events", proxy=None, compression=None
                ) as ws:
                    await ws.recv()
                    ready.set()
                    while len(seqs) < n:
                        msg = json.loads(await ws.recv())
                        if msg["type"] == "artifact":
                            seqs.append(msg["seq"])
                return seqs

            async def main() -> list[int]:
                task = asyncio.create_task(healthy_reader())
                await ready.wait()
                for i in range(n):
                    service.sink(_event(i, time.time()))
                    if i % 20 == 19:  # bursts of 20 (well under the queue's 500), then let both run
                        await asyncio.sleep(0.002)
                async with asyncio.timeout(60):
                    return await task

            ready = asyncio.Event()
            seqs = asyncio.run(main())
            assert seqs == list(range(1, n + 1))  # the healthy client lost nothing
            assert service.dropped == 1
            # the stalled reader resumes: it gets what fitted in the buffers, then the reason
            sock.settimeout(30)
            close = None
            received = 0
            while close is None:
                data = sock.recv(1 << 20)
                if not data:
                    break
                proto.receive_data(data)
                for ev in proto.events_received():
                    if ev.opcode == Opcode.TEXT:
                        received += 1
                    elif ev.opcode == Opcode.CLOSE:
                        close = proto.close_rcvd
    assert 0 < received < n
    assert close is not None
    assert close.code == 1013
    assert close.reason == "client too slow: 500 messages waiting"


if __name__ == "__main__":
    if sys.argv[1:] == ["server"]:
        _server_main()
    else:
        _client_main(sys.argv[1:])
