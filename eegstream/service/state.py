"""The state of one running app (``Service``) and how the routes reach it.

The app's lifespan owns a ``Service``: it opens the event log and the LSL marker outlet, builds
the detection side with the app's pipeline factory and starts it. The pipeline thread calls
``Service.sink`` for every message; the sink hops onto the event loop, where ``Service.publish``
numbers the message in the ``Hub``, logs it, pushes it to LSL and fans it out to websocket
clients. Routes get the service of their own app through the ``current_service`` dependency, so
no route is a closure and nothing is global.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import IO, Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message
from eegstream.live.contract import EventSource, Sink
from eegstream.service.hub import CLOSE_GOING_AWAY, Hub, Published
from eegstream.service.markers_out import MarkerOutlet
from eegstream.service.metrics import Metrics
from eegstream.service.security import HostPolicy
from eegstream.service.watchdog import Watchdog
from eegstream.settings import Settings

__all__ = ["PipelineFactory", "Service", "ServiceDep", "current_service", "get_service"]

log = logging.getLogger(__name__)

#: A stream's state in ``/status`` follows its connection (``/ready`` needs every stream
#: ``connected``); gap, nan, signal_fault, dead_electrode, clock_jump and overloaded are events
#: in a connected stream, shown as ``last_status``.
#: Seconds a thread holds the GIL before a waiting one gets it (Python's default: 5 ms).
GIL_SWITCH_INTERVAL_S = 0.0005

_STATE_OF = {
    "connected": "connected",
    "recovered": "connected",
    "lost": "lost",
    "stopped": "stopped",
}

#: Builds the detection side from the settings, the sink it must call and the metrics.
PipelineFactory = Callable[[Settings, Sink, Metrics], EventSource]


class Service:
    """The state of one running app: hub, metrics, outputs and the detection side.

    The routes reach it through the ``current_service`` dependency, never through a global.
    """

    def __init__(self, settings: Settings, factory: PipelineFactory | None) -> None:
        self.settings = settings
        #: the ``Host`` allow-list: the app's outermost guard and the websockets' origin check
        self.policy = HostPolicy.from_settings(settings)
        self.metrics = Metrics()
        self.hub = Hub(settings.history_size, settings.client_queue, lambda _: self.count_drop())
        self.dropped = 0  #: clients dropped for being too slow
        self.source: EventSource | None = None
        self.stream_states: dict[str, str] = {}  #: connected, lost, stopped or detached
        self.stream_last: dict[str, str] = {}  #: the latest status message of each stream
        self.shutdown = asyncio.Event()  #: set when the service stops: every client loop exits
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outlet = MarkerOutlet.from_settings(settings) if settings.marker_outlet else None
        self._log_file: IO[str] | None = None
        self._started = time.monotonic()
        self._handlers = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = False
        self.watchdog = Watchdog(settings)  #: send timeouts and pings of the websocket senders
        self.startup_error: BaseException | None = None  #: why ``start`` failed, if it did
        self.output_error: str | None = None  #: the last failure to write the event log

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outputs, build and start the detection side (runs in the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        self._started = time.monotonic()
        self.watchdog.start(self._loop)
        if self.settings.event_log is not None:
            path = self.settings.event_log
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._log_file = path.open("a", encoding="utf-8")
            except OSError as exc:
                raise EegstreamError(
                    f"--event-log {path}: cannot open it for appending ({exc.strerror}); "
                    "choose a writable path"
                ) from exc
        if self._outlet is not None:
            await asyncio.to_thread(self._outlet.start)
        if self._factory is not None:
            # The scheduler thread holds the GIL most of the time under load; at Python's default
            # 5 ms switch interval the event loop waited up to 5 ms at each of its steps to send
            # an event (bench --e2e, 128 headsets: processing p50/p99 28/129 ms -> 20/91 ms).
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
            source = await asyncio.to_thread(self._factory, self.settings, self.sink, self.metrics)
            self.metrics.set_model(source.model.sha256, source.model.backend)
            self.source = source
            await asyncio.to_thread(source.start)
        log.info("service started (model loaded: %s)", self.source is not None)

    async def close_clients(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Ask every websocket client to close and wait (bounded) until they have."""
        self.shutdown.set()
        self.hub.close_all(code, reason)
        with suppress(TimeoutError):
            async with asyncio.timeout(self.settings.send_timeout + 1.0):
                await self._idle.wait()

    async def stop(self) -> None:
        """Stop detection, deliver its last messages, close clients (1001), flush the outputs.

        The pipeline stops first so that its final messages (the open event's final phase, the
        ``stopped`` status) still reach the clients and the event log. Safe to call twice.
        """
        if self._stopped:
            return
        self._stopped = True
        self.shutdown.set()  # no new clients; dashboard streams end
        source = self.source
        try:
            if source is not None:
                await asyncio.to_thread(source.stop)
                await asyncio.sleep(0)  # publish what the pipeline handed over while stopping
        finally:
            self.source = None
            await self.close_clients()
            self.watchdog.stop()
            if self._outlet is not None:
                self._outlet.stop()
            if self._log_file is not None:
                try:
                    self._log_file.close()
                except OSError as exc:  # its last flush failed: already reported in /health
                    log.error("event log %s: %s", self.settings.event_log, exc)
                self._log_file = None
        log.info("service stopped after %.1f s, %d messages", self.uptime, self.hub.seq)

    # --- messages --------------------------------------------------------------------------------

    def sink(self, message: Message) -> None:
        """Hand a message from any thread to the event loop (the pipeline's callback)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.debug("message after the service stopped, not published: %s", message.type)
            return
        try:
            loop.call_soon_threadsafe(self.publish, message)
        except RuntimeError:  # the loop closed between the check and the call
            log.debug("message after the event loop closed, not published: %s", message.type)

    def publish(self, message: Message) -> Published:
        """Number and fan out one message, log it and push artifacts to LSL (event loop only)."""
        item = self.hub.publish(message)
        now = time.time()
        if isinstance(message, ArtifactEvent):
            published_lsl = message.detected_lsl + (now - message.detected_unix)
        else:
            published_lsl = 0.0
            detached = message.status == "stopped" and message.detail.get("detached") is True
            sid = message.stream_id
            state = _STATE_OF.get(message.status, self.stream_states.get(sid, "connected"))
            self.stream_states[sid] = "detached" if detached else state
            self.stream_last[sid] = message.status
        if self._outlet is not None:  # artifacts and signal faults, in the configured form
            self._outlet.publish(message, item.text)
        self.metrics.observe_message(message, now, published_lsl)
        if self._log_file is not None:
            try:
                self._log_file.write(item.text + "\n")
                self._log_file.flush()
            except OSError as exc:  # e.g. disk full: keep serving, report it in /health
                if self.output_error is None:
                    log.error("event log %s: %s", self.settings.event_log, exc)
                self.output_error = f"event log {self.settings.event_log}: {exc}"
        return item

    def count_drop(self) -> None:
        """Count a client dropped for being too slow."""
        self.dropped += 1
        self.metrics.dropped.inc()

    # --- state -----------------------------------------------------------------------------------

    @property
    def uptime(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self._started

    def source_status(self) -> dict[str, Any]:
        """The detection side's status, or an empty dict when there is none."""
        return self.source.status() if self.source is not None else {}

    def error(self) -> str | None:
        """What is broken, for ``/health``: a failed pipeline or an unwritable event log."""
        return self.source_status().get("error") or self.output_error

    def readiness(self) -> tuple[bool, str]:
        """Whether events can flow, and why not."""
        if self._factory is None:
            return False, "no detection pipeline in this app"
        if self.source is None:
            return False, "model not loaded yet"
        error = self.error()
        if error:
            return False, error
        # a stream that --discover detached (gone for good) does not hold the others up
        states = {s: st for s, st in self.stream_states.items() if st != "detached"}
        if not states:
            return False, "no stream connected yet"
        down = sorted(s for s, state in states.items() if state != "connected")
        if down:
            return False, f"stream {', '.join(down)} is {self.stream_states[down[0]]}"
        return True, "ok"

    def streams(self) -> list[dict[str, str]]:
        """Each known stream with its latest state."""
        return [
            {"stream_id": s, "status": st, "last_status": self.stream_last.get(s, st)}
            for s, st in sorted(self.stream_states.items())
        ]

    # --- websocket bookkeeping -------------------------------------------------------------------

    @asynccontextmanager
    async def handler(self, endpoint: str) -> AsyncIterator[None]:
        """Count a running websocket handler (shutdown waits for all of them to finish)."""
        self._handlers += 1
        self._idle.clear()
        gauge = self.metrics.clients.labels(endpoint=endpoint)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()
            self._handlers -= 1
            if self._handlers == 0:
                self._idle.set()


def get_service(app: FastAPI) -> Service:
    """The ``Service`` behind an app made by ``create_app`` (tests publish through its sink)."""
    service = app.state.service
    if not isinstance(service, Service):
        raise TypeError("this app was not made by eegstream.service.create_app")
    return service


async def current_service(connection: HTTPConnection) -> Service:
    """The dependency giving a route its app's ``Service`` (async: no thread-pool hop)."""
    return get_service(connection.app)


#: A route parameter that receives the app's ``Service``.
ServiceDep = Annotated[Service, Depends(current_service)]
