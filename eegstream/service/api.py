"""The FastAPI app: websocket events, REST status, Prometheus metrics and the dashboard.

``create_app(settings, pipeline_factory)`` builds everything; nothing is built at import time. The
app's lifespan owns a ``Service``: it opens the event log and the LSL marker outlet, builds the
detection side with ``pipeline_factory`` (the real one loads the bundle and the engine and runs a
``MultiStreamPipeline`` thread) and starts it. The pipeline thread calls ``Service.sink`` for every
message; the sink hops onto the event loop, where ``Service.publish`` numbers the message in the
``Hub``, logs it, pushes it to LSL and fans it out to websocket clients.

Security: every request and websocket handshake must name an allowed ``Host`` (loopback names,
the bound address, ``settings.allowed_hosts``), so that a web page whose DNS name was rebound to
this machine cannot read anything; a browser websocket's ``Origin`` must be an allowed host or
one of ``settings.cors_origins`` (never compared with ``Host``, which the page controls). With
``settings.token`` set, every data endpoint needs it (REST: ``Authorization: Bearer``;
websockets: that header or the exact ``?token=`` parameter), compared in constant time.
``/health``, the dashboard's static files and the OpenAPI docs need no token (they carry no
data; container health checks must not need a secret) but do need an allowed ``Host``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import IO, Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import Depends, FastAPI, Query, Request, WebSocket
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict
from scipy.signal import lfilter
from starlette.websockets import WebSocketDisconnect

from eegstream import __version__
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message
from eegstream.live.contract import EventSource, Sink
from eegstream.service.calibration import add_calibration_routes
from eegstream.service.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_SLOW,
    PING,
    Closing,
    Filter,
    Hub,
    Published,
    Subscription,
    parse_csv,
)
from eegstream.service.markers_out import MarkerOutlet
from eegstream.service.metrics import Metrics
from eegstream.service.security import (
    HostGuard,
    HostPolicy,
    bearer,
    close_reason,
    origin_ok,
    query_token,
    token_ok,
)
from eegstream.settings import ARTIFACT_LABELS, ELECTRODES, FS, Settings, load_settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Close codes of the app (4000-4999 is the range reserved for applications).
CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_BAD_REQUEST = 1008  #: policy violation: an invalid query parameter
CLOSE_TOO_BIG = 1009

#: A stream's state in ``/status`` follows its connection (``/ready`` needs every stream
#: ``connected``); gap, nan, signal_fault, dead_electrode, clock_jump and overloaded are events
#: in a connected stream, shown as ``last_status``.
_STATE_OF = {
    "connected": "connected",
    "recovered": "connected",
    "lost": "lost",
    "stopped": "stopped",
}
#: Longest stream id accepted in ``/ws/signal?stream=`` (LSL names are short).
_MAX_STREAM_ID = 256
#: Seconds of signal the dashboard shows (and gets in its first frame).
SIGNAL_WINDOW_S = 10.0
#: Dashboard frames per second: small frames, smooth enough scrolling.
SIGNAL_FRAMES_PER_S = 8.0
#: Time constant (s) of the moving baseline subtracted from the dashboard signal (drift removal).
SIGNAL_BASELINE_TAU_S = 2.0

#: Builds the detection side from the settings, the sink it must call and the metrics.
PipelineFactory = Callable[[Settings, Sink, Metrics], EventSource]


def _default_factory(settings: Settings, sink: Sink, metrics: Metrics) -> EventSource:
    """The real detection side: bundle + engine + the multi-stream pipeline."""
    from eegstream.service.detection import build_pipeline

    return build_pipeline(settings, sink, metrics)


class Service:
    """The state of one running app: hub, metrics, outputs and the detection side."""

    def __init__(self, settings: Settings, factory: PipelineFactory | None) -> None:
        self.settings = settings
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
        self._watched: set[_Watch] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self.startup_error: BaseException | None = None  #: why ``start`` failed, if it did
        self.output_error: str | None = None  #: the last failure to write the event log

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outputs, build and start the detection side (runs in the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        self._started = time.monotonic()
        self._tick()
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
            if self._ticker is not None:
                self._ticker.cancel()
                self._ticker = None
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

    def watch(self, sub: Subscription, task: asyncio.Task[Any]) -> _Watch:
        """Put a sender under the watchdog (send timeout, keep-alive pings)."""
        w = _Watch(sub, task)
        self._watched.add(w)
        return w

    def unwatch(self, w: _Watch) -> None:
        """Take a sender off the watchdog (safe to call twice)."""
        self._watched.discard(w)

    def _tick(self) -> None:
        """Cancel senders stuck in a send; queue a ping for idle clients. Runs periodically."""
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        timeout, ping_every = self.settings.send_timeout, self.settings.ws_ping_interval
        for w in tuple(self._watched):
            if w.busy_since is not None:
                if now - w.busy_since > timeout and not w.timed_out:
                    w.timed_out = True
                    w.task.cancel()
            elif now - w.last_sent >= ping_every and w.sub.queue.empty():
                w.sub.queue.put_nowait(PING)
                w.last_sent = now  # one ping per interval, even before it is sent
        self._ticker = loop.call_later(min(0.5, timeout / 4, ping_every / 4), self._tick)

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


# --- REST models (they document the API in /docs) ------------------------------------------------


class HealthResponse(BaseModel):
    """Liveness: the process runs and its pipeline has not failed."""

    status: str
    uptime_s: float
    error: str | None = None


class ReadyResponse(BaseModel):
    """Readiness: the model is loaded and every stream delivers data."""

    ready: bool
    reason: str


class ModelResponse(BaseModel):
    """The model that runs."""

    name: str
    sha256: str
    backend: str
    profile: dict[str, Any] | None = None  #: the user profile in use (``--profile``), if any


class StatusResponse(BaseModel):
    """Everything an operator looks at."""

    model_config = ConfigDict(protected_namespaces=())

    version: str
    uptime_s: float
    ready: bool
    reason: str
    model: ModelResponse | None
    seq: int
    oldest_seq: int
    clients: int
    dropped_clients: int
    streams: list[dict[str, str]]
    pipeline: dict[str, Any]


class EventsResponse(BaseModel):
    """A page of the message history (artifact and status messages, oldest first)."""

    seq: int
    oldest_seq: int
    events: list[dict[str, Any]]


# --- helpers -------------------------------------------------------------------------------------


def _ws_query(params: Any) -> tuple[int | None, Filter]:
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
    return since, _filter(params.get("labels"), params.get("stream"), params.get("types"))


def _filter(labels: str | None, stream: str | None, types: str | None) -> Filter:
    """Build a client's filter from query values; ``ValueError`` names the bad value."""
    return Filter(
        labels=parse_csv(labels, ARTIFACT_LABELS, "labels"),
        streams=parse_csv(stream, None, "stream"),
        types=parse_csv(types, ("artifact", "status"), "types"),
    )


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
    async with asyncio.timeout(timeout):
        await websocket.send_text(text)


class _Watch:
    """A websocket sender under the service's watchdog.

    One timer per message and client (``asyncio.timeout`` around each send, a timed queue wait
    for pings) cost 13 % of the server's CPU with 200 clients; instead the sender only notes
    when a send starts and ends, and one periodic ``Service`` tick cancels senders stuck longer
    than ``send_timeout`` and queues pings for idle ones.
    """

    __slots__ = ("busy_since", "last_sent", "loop", "sub", "task", "timed_out")

    def __init__(self, sub: Subscription, task: asyncio.Task[Any]) -> None:
        self.sub = sub
        self.task = task
        self.loop = task.get_loop()
        self.busy_since: float | None = None
        self.last_sent = self.loop.time()
        self.timed_out = False

    async def send(self, websocket: WebSocket, text: str) -> None:
        self.busy_since = self.loop.time()
        await websocket.send_text(text)
        self.busy_since = None
        self.last_sent = self.loop.time()


async def _events_sender(
    websocket: WebSocket, service: Service, sub: Subscription, hello: str
) -> Closing | None:
    """Hello, then the replayed backlog, then live messages and keep-alive pings."""
    task = asyncio.current_task()
    assert task is not None  # a coroutine run by asyncio always has its task
    watch = service.watch(sub, task)
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
        service.unwatch(watch)


class _SignalState:
    """Per-connection decimation and drift removal of the dashboard signal."""

    def __init__(self, decimation: int) -> None:
        self.decimation = decimation
        rate = FS / decimation
        self.alpha = math.exp(-1.0 / (rate * SIGNAL_BASELINE_TAU_S))
        self.last_time = -math.inf
        self.zi: npt.NDArray[np.float64] | None = None

    def frame(
        self, data: npt.NDArray[np.float64], times: npt.NDArray[np.float64]
    ) -> dict[str, Any] | None:
        """Block-average the new samples by ``decimation`` and subtract the moving baseline."""
        new = times > self.last_time
        data, times = data[new], times[new]
        n = (times.shape[0] // self.decimation) * self.decimation
        if n == 0:
            return None
        self.last_time = float(times[n - 1])  # the remainder waits for the next frame
        d = self.decimation
        blocks = data[:n].reshape(n // d, d, data.shape[1]).mean(axis=1)
        block_times = times[:n].reshape(n // d, d).mean(axis=1)
        bad = ~np.isfinite(blocks)
        a = self.alpha
        if self.zi is None:  # start the baseline at the mean of the first frame
            counts = (~bad).sum(axis=0)
            sums = np.where(bad, 0.0, blocks).sum(axis=0)
            start = np.divide(sums, counts, out=np.zeros(blocks.shape[1]), where=counts > 0)
            self.zi = (a * start)[None, :]
        previous = self.zi[0] / a  # the baseline so far fills missing samples
        filled = np.where(bad, previous[None, :], blocks)
        baseline, self.zi = lfilter([1.0 - a], [1.0, -a], filled, axis=0, zi=self.zi)
        out = np.round(np.where(bad, 0.0, filled - baseline), 1)
        return {
            "type": "signal",
            "t0": float(block_times[0]),
            "dt": d / FS,
            "data": out.T.tolist(),
        }


async def _signal_sender(
    websocket: WebSocket, service: Service, stream: str | None
) -> Closing | None:
    """Stream one stream's decimated signal: all of the last 10 s first, then the new samples.

    ``stream`` None means the first attached stream (the dashboard of a one-headset service).
    """
    rate = service.settings.signal_rate
    decimation = max(1, round(FS / rate))
    state = _SignalState(decimation)
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


# --- the app -------------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    pipeline_factory: PipelineFactory | None = _default_factory,
    *,
    profile_dir: Path | None = None,
) -> FastAPI:
    """Build the service app.

    Parameters
    ----------
    settings
        The one settings object (default: ``load_settings()``: environment, config file, defaults).
    pipeline_factory
        Builds the detection side once the event loop runs. ``None`` serves the hub alone
        (events are then published through ``get_service(app).sink``); ``/ready`` stays 503.
    profile_dir
        Where the dashboard's calibrations save their profiles (default:
        ``settings.profile_dir``).
    """
    settings = settings if settings is not None else load_settings()
    if FS % settings.signal_rate:
        raise EegstreamError(
            f"signal_rate={settings.signal_rate}: the dashboard signal is decimated from {FS} Hz, so "
            f"the rate must divide {FS} (e.g. 16, 32 or 64)"
        )
    policy = HostPolicy.from_settings(settings)
    service = Service(settings, pipeline_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await service.start()
        except BaseException as exc:
            service.startup_error = exc
            await service.stop()  # release what was opened before the failure
            raise
        try:
            yield
        finally:
            await calibrations.close()
            await service.stop()

    app = FastAPI(
        title="eegstream",
        version=__version__,
        description="Realtime blink / jaw-clench detection for Emotiv EEG over LSL.",
        lifespan=lifespan,
    )
    app.state.service = service
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization"],
        )
    app.add_middleware(HostGuard, policy=policy)  # added last: the outermost layer

    def require_token(request: Request) -> None:
        """REST endpoints need ``Authorization: Bearer <token>`` when a token is configured."""
        if not token_ok(bearer(request.headers.get("authorization")), settings.token):
            raise HTTPException(
                401,
                "missing or invalid bearer token: send the header 'Authorization: Bearer <token>' "
                "with the value of EEGSTREAM_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )

    auth = [Depends(require_token)]
    calibrations = add_calibration_routes(
        app, service, policy, auth, STATIC_DIR, profile_dir or settings.profile_dir
    )

    @app.get("/health", response_model=HealthResponse, tags=["status"])
    def health() -> JSONResponse:
        """Liveness (no token needed, for container health checks; an allowed Host is)."""
        error = service.error()
        body = HealthResponse(
            status="error" if error else "ok", uptime_s=service.uptime, error=error
        )
        return JSONResponse(body.model_dump(), status_code=503 if error else 200)

    @app.get(
        "/ready",
        response_model=ReadyResponse,
        dependencies=auth,
        tags=["status"],
        responses={503: {"model": ReadyResponse, "description": "not ready yet"}},
    )
    def ready() -> JSONResponse:
        """Readiness: 200 once the model is loaded and the stream is connected, else 503."""
        ok, reason = service.readiness()
        return JSONResponse(ReadyResponse(ready=ok, reason=reason).model_dump(), 200 if ok else 503)

    @app.get("/status", response_model=StatusResponse, dependencies=auth, tags=["status"])
    def status() -> StatusResponse:
        """Stream rate, buffer fill, lag, windows/s, dropped/NaN counts, engine, model, uptime."""
        ok, reason = service.readiness()
        source = service.source
        model = (
            ModelResponse(
                name=source.model.name,
                sha256=source.model.sha256,
                backend=source.model.backend,
                profile=source.model.profile,
            )
            if source is not None
            else None
        )
        return StatusResponse(
            version=__version__,
            uptime_s=service.uptime,
            ready=ok,
            reason=reason,
            model=model,
            seq=service.hub.seq,
            oldest_seq=service.hub.oldest_seq,
            clients=service.hub.clients,
            dropped_clients=service.dropped,
            streams=service.streams(),
            pipeline=service.source_status(),
        )

    @app.get("/events", response_model=EventsResponse, dependencies=auth, tags=["events"])
    def events(
        since: Annotated[int, Query(ge=0, description="return messages numbered after this")] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many")] = 100,
        labels: Annotated[str | None, Query(description="e.g. blink,jaw_clench")] = None,
        stream: Annotated[str | None, Query(description="stream id(s), comma-separated")] = None,
        types: Annotated[str | None, Query(description="artifact and/or status")] = None,
    ) -> Response:
        """The held message history after ``since`` (the websocket's ``?since=`` in REST form)."""
        try:
            flt = _filter(labels, stream, types)
        except ValueError as exc:
            name = str(exc).split("=", 1)[0]
            raise RequestValidationError(
                [{"loc": ("query", name), "msg": str(exc), "type": "value_error"}]
            ) from None
        items = service.hub.history(since, limit, flt)
        body = (
            f'{{"seq":{service.hub.seq},"oldest_seq":{service.hub.oldest_seq},'
            f'"events":[{",".join(i.text for i in items)}]}}'
        )
        return Response(body, media_type="application/json")

    @app.get("/metrics", dependencies=auth, tags=["status"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text format."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def _admit(websocket: WebSocket) -> bool:
        """Accept, then check token and origin; refused clients get a close code saying why."""
        await websocket.accept()
        presented = query_token(websocket) or bearer(websocket.headers.get("authorization"))
        timeout = settings.send_timeout
        if not token_ok(presented, settings.token):
            reason = "missing or invalid token: pass ?token=<EEGSTREAM_TOKEN> or an Authorization: Bearer header"
            await _close(websocket, Closing(CLOSE_UNAUTHORISED, reason), timeout)
            return False
        if not origin_ok(websocket, settings, policy):
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

    @app.websocket("/ws/events")
    async def ws_events(websocket: WebSocket) -> None:
        """Artifact and status messages: hello, the ``?since=`` backlog, then live."""
        if not await _admit(websocket):
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
                    _events_sender(
                        websocket, service, sub, json.dumps(hello, separators=(",", ":"))
                    ),
                )
            finally:
                service.hub.unsubscribe(sub)
            if closing is not None:
                await _close(websocket, closing, settings.send_timeout)

    @app.websocket("/ws/signal")
    async def ws_signal(websocket: WebSocket) -> None:
        """One stream's raw signal for the dashboard (``?stream=ID``, default the first)."""
        if not await _admit(websocket):
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

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The live dashboard (static; it reads the token from its own ``?token=``)."""
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def get_service(app: FastAPI) -> Service:
    """The ``Service`` behind an app made by ``create_app`` (tests publish through its sink)."""
    service = app.state.service
    if not isinstance(service, Service):
        raise TypeError("this app was not made by eegstream.service.create_app")
    return service
