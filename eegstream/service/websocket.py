"""The websockets: ``/ws/events`` (artifact and status messages) and ``/ws/signal`` (dashboard).

Each connection is admitted (token, then ``Origin``; the ``Host`` was checked by the app's
outermost guard), then runs a receiver and a sender together: the first to finish cancels the
other and its ``Closing``, if any, becomes the close frame. Event senders are timed by the
service's :class:`~eegstream.service.watchdog.Watchdog`; the signal sender, a few frames a second,
times its own sends. Every close is bounded by ``send_timeout``, so a stalled peer cannot hold a
handler and shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from contextlib import suppress

from fastapi import FastAPI, WebSocket
from starlette.datastructures import QueryParams
from starlette.websockets import WebSocketDisconnect

from eegstream import __version__
from eegstream.service.dashboard import SIGNAL_FRAMES_PER_S, SIGNAL_WINDOW_S, SignalState
from eegstream.service.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_SLOW,
    Closing,
    Filter,
    Published,
    Subscription,
)
from eegstream.service.security import bearer, close_reason, origin_ok, query_token, token_ok
from eegstream.service.state import Service, ServiceDep
from eegstream.settings import ELECTRODES, FS

__all__ = [
    "CLOSE_BAD_REQUEST",
    "CLOSE_FORBIDDEN_ORIGIN",
    "CLOSE_TOO_BIG",
    "CLOSE_UNAUTHORISED",
    "add_websocket_routes",
    "ws_events",
    "ws_signal",
]

log = logging.getLogger(__name__)

#: Close codes of the app (4000-4999 is the range reserved for applications).
CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_BAD_REQUEST = 1008  #: policy violation: an invalid query parameter
CLOSE_TOO_BIG = 1009

#: Longest stream id accepted in ``/ws/signal?stream=`` (LSL names are short).
_MAX_STREAM_ID = 256


def add_websocket_routes(app: FastAPI) -> None:
    """Register ``/ws/events`` and ``/ws/signal``; each admits its clients itself (``_admit``)."""
    app.add_api_websocket_route("/ws/events", ws_events)
    app.add_api_websocket_route("/ws/signal", ws_signal)


# --- handlers ------------------------------------------------------------------------------------


async def ws_events(websocket: WebSocket, service: ServiceDep) -> None:
    """Artifact and status messages: hello, the ``?since=`` backlog, then live."""
    settings = service.settings
    if not await _admit(websocket, service):
        return
    try:
        since, flt = _ws_query(websocket.query_params)
    except ValueError as exc:
        await _close(websocket, Closing(CLOSE_BAD_REQUEST, str(exc)), settings.send_timeout)
        return
    async with service.handler("events"):
        # subscribe and describe the hub in one synchronous step: no message falls between
        sub = service.hub.subscribe(flt, since)
        source = service.source
        hello = {
            "type": "hello",
            "version": __version__,
            "model": None
            if source is None
            else {"name": source.model.name, "sha256": source.model.sha256},
            "backend": None if source is None else source.model.backend,
            "streams": service.streams(),
            "seq": service.hub.seq,
            "oldest_seq": service.hub.oldest_seq,
            "replayed": len(sub.backlog),
            "history_truncated": sub.truncated,
            "ping_interval": settings.ws_ping_interval,
        }
        try:
            closing = await _first_completed(
                _receive_loop(websocket, settings.ws_max_message),
                _events_sender(websocket, service, sub, json.dumps(hello, separators=(",", ":"))),
            )
        finally:
            service.hub.unsubscribe(sub)
        if closing is not None:
            await _close(websocket, closing, settings.send_timeout)


async def ws_signal(websocket: WebSocket, service: ServiceDep) -> None:
    """One stream's raw signal for the dashboard (``?stream=ID``, default the first)."""
    settings = service.settings
    if not await _admit(websocket, service):
        return
    stream = websocket.query_params.get("stream") or None
    if stream is not None and len(stream) > _MAX_STREAM_ID:
        reason = f"stream: expected a stream id of at most {_MAX_STREAM_ID} characters"
        await _close(websocket, Closing(CLOSE_BAD_REQUEST, reason), settings.send_timeout)
        return
    async with service.handler("signal"):
        closing = await _first_completed(
            _receive_loop(websocket, settings.ws_max_message),
            _signal_sender(websocket, service, stream),
        )
        if closing is not None:
            await _close(websocket, closing, settings.send_timeout)


async def _admit(websocket: WebSocket, service: Service) -> bool:
    """Accept, then check token and origin; refused clients get a close code saying why."""
    settings = service.settings
    await websocket.accept()
    presented = query_token(websocket) or bearer(websocket.headers.get("authorization"))
    timeout = settings.send_timeout
    if not token_ok(presented, settings.token):
        reason = "missing or invalid token: pass ?token=<EEGSTREAM_TOKEN> or an Authorization: Bearer header"
        await _close(websocket, Closing(CLOSE_UNAUTHORISED, reason), timeout)
        return False
    if not origin_ok(websocket, settings, service.policy):
        origin = websocket.headers.get("origin", "")
        reason = (
            f"origin {origin} not allowed: add its host to EEGSTREAM_ALLOWED_HOSTS "
            "or the origin to EEGSTREAM_CORS_ORIGINS"
        )
        await _close(websocket, Closing(CLOSE_FORBIDDEN_ORIGIN, reason), timeout)
        return False
    if service.shutdown.is_set():
        await _close(websocket, Closing(CLOSE_GOING_AWAY, "server shutting down"), timeout)
        return False
    return True


def _ws_query(params: QueryParams) -> tuple[int | None, Filter]:
    """``since`` and the filter of a ``/ws/events`` URL; ``ValueError`` names the bad value."""
    raw = params.get("since")
    since: int | None = None
    if raw is not None:
        try:
            since = int(raw)
        except ValueError:
            since = -1
        if since < 0:
            raise ValueError(f"since={raw!r}: expected a sequence number (an integer >= 0)")
    return since, Filter.from_query(params.get("labels"), params.get("stream"), params.get("types"))


# --- receiver and senders ------------------------------------------------------------------------


async def _first_completed(*coros: Awaitable[Closing | None]) -> Closing | None:
    """Run the coroutines together; the first to finish cancels the others, its result wins."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(iter(done))
    return first.result()  # re-raises a real error of that task


async def _receive_loop(websocket: WebSocket, limit: int) -> Closing | None:
    """Read (and ignore) client messages until it leaves; refuse oversized messages."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        data = message.get("text") or message.get("bytes") or ""
        size = len(data.encode() if isinstance(data, str) else data)
        if size > limit:
            return Closing(CLOSE_TOO_BIG, f"message of {size} bytes exceeds the {limit}-byte limit")


async def _close(websocket: WebSocket, closing: Closing, timeout: float) -> None:
    """Send a close frame, bounded: a stalled peer cannot hold the handler."""
    try:
        async with asyncio.timeout(timeout):
            await websocket.close(closing.code, close_reason(closing.reason))
    except (TimeoutError, WebSocketDisconnect, RuntimeError) as exc:
        # RuntimeError: starlette refuses a second close; the connection is gone either way
        log.debug("close %s not sent: %r", closing.code, exc)


async def _send(websocket: WebSocket, text: str, timeout: float) -> None:
    """Send with a timeout of its own (the signal sender: too few sends to need the watchdog)."""
    async with asyncio.timeout(timeout):
        await websocket.send_text(text)


async def _events_sender(
    websocket: WebSocket, service: Service, sub: Subscription, hello: str
) -> Closing | None:
    """Hello, then the replayed backlog, then live messages and keep-alive pings."""
    task = asyncio.current_task()
    assert task is not None  # a coroutine run by asyncio always has its task
    watch = service.watchdog.watch(sub, task)
    try:
        await watch.send(websocket, hello)
        backlog, sub.backlog = sub.backlog, []
        for old in backlog:
            await watch.send(websocket, old.text)
        del backlog
        while True:
            item = await sub.queue.get()
            if isinstance(item, Closing):
                return item
            if isinstance(item, Published):
                text = item.text
            else:  # PING
                text = json.dumps({"type": "ping", "seq": service.hub.seq, "time": time.time()})
            await watch.send(websocket, text)
    except asyncio.CancelledError:
        if not watch.timed_out:
            raise
        task.uncancel()  # our own watchdog's cancellation: handled here, not propagated
        timeout = service.settings.send_timeout
        service.hub.unsubscribe(sub)
        service.count_drop()
        log.warning("dropping websocket client: a send took longer than %.1f s", timeout)
        return Closing(CLOSE_TOO_SLOW, f"client too slow: a send took longer than {timeout:g} s")
    except WebSocketDisconnect:
        return None
    finally:
        service.watchdog.unwatch(watch)


async def _signal_sender(
    websocket: WebSocket, service: Service, stream: str | None
) -> Closing | None:
    """Stream one stream's decimated signal: all of the last 10 s first, then the new samples.

    ``stream`` None means the first attached stream (the dashboard of a one-headset service).
    """
    rate = service.settings.signal_rate
    decimation = max(1, round(FS / rate))
    state = SignalState(decimation)
    timeout = service.settings.send_timeout
    info = {
        "type": "signal_info",
        "channels": list(ELECTRODES),
        "rate": FS / decimation,
        "window_s": SIGNAL_WINDOW_S,
        "available": service.source is not None,
        "stream": stream,
    }
    try:
        await _send(websocket, json.dumps(info), timeout)
        fetch = SIGNAL_WINDOW_S
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(1.0 / SIGNAL_FRAMES_PER_S):
                    await service.shutdown.wait()
                    return Closing(CLOSE_GOING_AWAY, "server shutting down")
            if service.source is None:
                continue
            data, times = service.source.latest(fetch, stream)
            fetch = 2.0  # afterwards only the newest samples are needed
            frame = state.frame(data, times)
            if frame is not None:
                await _send(websocket, json.dumps(frame, separators=(",", ":")), timeout)
    except TimeoutError:
        service.count_drop()
        log.warning("dropping signal client: a send took longer than %.1f s", timeout)
        return Closing(CLOSE_TOO_SLOW, f"client too slow: a send took longer than {timeout:g} s")
    except WebSocketDisconnect:
        return None
