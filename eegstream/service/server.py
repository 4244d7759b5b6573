"""The service app on uvicorn: websocket protocol limits, the bound socket, graceful shutdown.

Shutdown on SIGINT/SIGTERM: uvicorn stops accepting connections, then (``_Server.shutdown``) every
websocket client gets close code 1001 "going away" before uvicorn's own connection shutdown
(which would say 1012), then the app's lifespan stops the pipeline, releasing the inlet and the
engine, and flushes and closes the event log and the LSL outlet. :func:`serve_app` returns 0
after SIGTERM (a requested stop); Ctrl-C reaches the CLI, which exits 130.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import signal
import socket
import threading
import time
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from eegstream.errors import EegstreamError
from eegstream.service.logs import redact_secrets_in_logs
from eegstream.service.state import Service, get_service
from eegstream.settings import Settings

#: The name these lines carried before the server left ``run.py`` (log output unchanged).
log = logging.getLogger("eegstream.service.run")

__all__ = ["BackgroundServer", "local_host", "serve_app", "uvicorn_config"]

#: Bytes buffered for one client, in the kernel (``SO_SNDBUF``, which Linux doubles) and again
#: in the event loop, before a send waits. Bounded so that a client that stops reading makes a
#: send wait, hence the ``send_timeout`` rule (close 1013, counted in ``dropped_clients``)
#: applies: with the kernel's auto-tuning a stalled reader absorbed ~4 MB (minutes of events)
#: and was only ever closed by the keep-alive (1011). 32 KiB is ~10 s of dashboard signal
#: and ample for 200 clients on loopback.
_SEND_BUFFER = 32 * 1024


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, made to answer bad handshakes and to drop stalled peers.

    * A handshake the websocket parser refuses (a request line over 8 KiB, too many or too
      long headers) gets the 414/431 response that parser prepared, and the connection closes;
      uvicorn 0.54 neither writes it nor closes, so the connection and its descriptor were
      held for as long as the client liked.
    * A close while the peer reads nothing (writing paused, the send buffer full) is written
      at once instead of waiting for room that never comes, and the connection is aborted if
      it is still open ``close_timeout`` later (a plain close would wait for the unread buffer
      forever).
    * A peer that leaves a keep-alive ping unanswered is a stalled client too: it is closed
      with 1013 (the slow-client rule, not uvicorn's 1011) and counted in ``dropped_clients``
      (``on_stalled``, set by :func:`uvicorn_config`). Before, a client that stopped reading
      while events were rare was closed 1011 after 20-30 s and never counted.
    """

    def keepalive_timeout(self) -> None:
        """As uvicorn's, with the slow-client close code and the drop counted."""
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(1013, "client too slow: no answer to keep-alive pings")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
        on_stalled = getattr(self.config, "on_stalled", None)
        if callable(on_stalled):
            on_stalled()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """As uvicorn's, with a small user-space send buffer (see ``_SEND_BUFFER``)."""
        super().connection_made(transport)
        self.transport.set_write_buffer_limits(high=_SEND_BUFFER)

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does; answer and close a handshake the parser refused."""
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.logger.info(
                "%s - websocket handshake refused: %s",
                f"{self.client[0]}:{self.client[1]}" if self.client else "-",
                self.conn.handshake_exc,
            )
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            self.transport.close()

    async def send(self, message: Any) -> None:
        """As uvicorn's, except that a close to a peer that reads nothing does not wait."""
        if (
            message["type"] == "websocket.close"
            and self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and not self.writable.is_set()
        ):
            # the close frame is small: buffer it past the high-water mark (nothing is sent
            # after a close, so the flag stays set)
            self.writable.set()
            await super().send(message)
            self.loop.call_later(self.close_timeout, self._abort_if_open)
            return
        await super().send(message)

    def _abort_if_open(self) -> None:
        """Drop a connection whose peer never read our close (its buffer would keep it open)."""
        if not self.disconnected:
            self.transport.abort()


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """The uvicorn configuration for the service app."""
    redact_secrets_in_logs()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,  # logging is configured by the CLI (or the embedding program)
        ws=_WebSocketProtocol,
        ws_max_size=settings.ws_max_message,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval,
        # events are ~600-byte JSON: deflating them for every client costs more CPU than it saves
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=math.ceil(max(3.0, settings.send_timeout + 1.0)),
        server_header=False,
    )
    service = getattr(app.state, "service", None)
    if isinstance(service, Service):  # a peer that stops answering pings: a dropped client
        config.on_stalled = service.count_drop  # type: ignore[attr-defined]
    return config


def _bind(settings: Settings) -> socket.socket:
    """The listening address, bound here so that a busy port is a clear error, not a log line."""
    host, port = settings.host, settings.port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise EegstreamError(
            f"--host {host}: not an address of this machine ({exc.strerror or exc}); "
            "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)  # inherited on accept
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise EegstreamError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(or stop the program using it)"
        ) from None
    return sock


class _QuietUserStartupError(logging.Filter):
    """Drop uvicorn's error records once the app's startup failed with an ``EegstreamError``."""

    def __init__(self, service: Service) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        failed = isinstance(self._service.startup_error, EegstreamError)
        return not (failed and record.levelno >= logging.ERROR)


class _Server(uvicorn.Server):
    """uvicorn's server on a socket bound in advance, stopping the service first at shutdown.

    The service stops before uvicorn's own connection shutdown, so that clients get the last
    messages and 1001 "going away" (uvicorn would send 1012 and drop them).
    """

    def __init__(self, app: FastAPI, settings: Settings, banner: list[str] | None = None) -> None:
        super().__init__(uvicorn_config(app, settings))
        self._service = get_service(app)
        self._banner = banner or []
        self.socket = _bind(settings)

    def serve_forever(self) -> None:
        """Run until ``should_exit`` (or a signal in the main thread)."""
        self.run(sockets=[self.socket])

    async def startup(self, sockets: list[Any] | None = None) -> None:
        """Start, then print the URLs (the CLI's output) once the port is known.

        A user error in the app's startup (an ``EegstreamError``: a stream with 13 channels,
        at 1000 Hz...) is reported by the caller in one line; uvicorn's log of it (the whole
        traceback, then "Application startup failed") is held back.
        """
        quiet = _QuietUserStartupError(self._service)
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(quiet)
        try:
            await super().startup(sockets)
        finally:
            uvicorn_log.removeFilter(quiet)
        # Everything loaded so far (libraries, model, settings) lives as long as the process:
        # frozen, the collector's full passes skip it. A full pass over the ~120,000 objects of
        # a running service took 120-135 ms (stalling every client); after the freeze, 0.01 ms.
        gc.collect()
        gc.freeze()
        if self.started:
            for line in self._banner:
                print(line.format(port=self.port), flush=True)  # noqa: T201

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        """Stop the service first: its clients get the last messages, then 1001 "going away".

        uvicorn's own connection shutdown would close them with 1012 and without those messages.
        """
        await self._service.stop()
        await super().shutdown(sockets)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.socket.getsockname()[1])


class BackgroundServer:
    """The service app on uvicorn in a background thread: for tests, benchmarks and embedding.

    ``start()`` binds the port (0 picks a free one) and returns once the server accepts
    connections, or raises the startup error; ``stop()`` shuts it down gracefully (clients get
    their last messages, then 1001).
    """

    def __init__(
        self, app: FastAPI, settings: Settings, *, banner: list[str] | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self._banner = banner
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        """Start and wait until it serves (``EegstreamError`` with the cause if it cannot)."""
        if self._thread is not None:
            return self
        server = self._server = _Server(self.app, self.settings, self._banner)
        self._thread = threading.Thread(target=self._run, name="eegstream-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                cause = get_service(self.app).startup_error or self._error
                if isinstance(cause, EegstreamError):
                    raise cause
                raise EegstreamError(
                    f"the service did not start on {self.settings.host}:{server.port} "
                    f"within {timeout:g} s ({cause!r}); see the log above"
                ) from cause
            time.sleep(0.02)
        return self

    def _run(self) -> None:
        assert self._server is not None  # set by start() before the thread starts
        try:
            self._server.serve_forever()
        except BaseException as exc:  # noqa: BLE001 - stored and raised by start()
            self._error = exc

    @property
    def running(self) -> bool:
        """Whether the server thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The port it listens on (once started)."""
        if self._server is None:
            raise RuntimeError("BackgroundServer.port: call start() first")
        return self._server.port

    @property
    def url(self) -> str:
        """``http://host:port`` (127.0.0.1 when listening on every interface)."""
        return f"http://{local_host(self.settings.host)}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port``."""
        return f"ws://{local_host(self.settings.host)}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None or self._server is None:
            return
        self._server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            log.error("the service thread did not stop within %.0f s", timeout)
        self._server.socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Terminated(Exception):
    """SIGTERM arrived: a requested stop, exit 0 once shut down."""


def _on_sigterm(sig: int, frame: FrameType | None) -> None:
    raise _Terminated


def serve_app(app: FastAPI, settings: Settings, *, banner: list[str] | None = None) -> int:
    """Run the app in the foreground until SIGINT/SIGTERM; return the exit status."""
    service = get_service(app)
    server = _Server(app, settings, banner)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        server.serve_forever()
    except _Terminated:
        return 0
    except SystemExit as exc:  # uvicorn exits 3 when the app's startup failed
        if isinstance(service.startup_error, EegstreamError):
            raise service.startup_error from None
        raise EegstreamError(
            f"the service could not start on {settings.host}:{server.port} "
            f"({service.startup_error or f'uvicorn exit {exc.code}'}); see the log above"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.socket.close()
    return 0


def local_host(host: str) -> str:
    """An address to reach ``host`` from this machine (wildcards mean every interface)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
