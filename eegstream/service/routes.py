"""The REST routes: ``/health``, ``/ready``, ``/status``, ``/events`` and ``/metrics``.

Module-level functions that get the app's ``Service`` through a dependency; ``add_rest_routes``
registers them with their documentation (the response models below describe them in
``/docs``). ``/health`` needs no token (container health checks must not need a secret; it
carries no data); the others need ``require_token`` when a token is configured. All of them sit
behind the app's ``Host`` allow-list.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict

from eegstream import __version__
from eegstream.service.hub import Filter
from eegstream.service.security import bearer, token_ok
from eegstream.service.state import ServiceDep

__all__ = [
    "EventsResponse",
    "HealthResponse",
    "ModelResponse",
    "ReadyResponse",
    "StatusResponse",
    "add_rest_routes",
    "require_token",
]


def require_token(request: Request, service: ServiceDep) -> None:
    """REST endpoints need ``Authorization: Bearer <token>`` when a token is configured."""
    if not token_ok(bearer(request.headers.get("authorization")), service.settings.token):
        raise HTTPException(
            401,
            "missing or invalid bearer token: send the header 'Authorization: Bearer <token>' "
            "with the value of EEGSTREAM_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )


def add_rest_routes(app: FastAPI) -> None:
    """Register the status and history routes, in the order ``/docs`` lists them."""
    auth = [Depends(require_token)]
    app.add_api_route("/health", health, response_model=HealthResponse, tags=["status"])
    app.add_api_route(
        "/ready",
        ready,
        response_model=ReadyResponse,
        dependencies=auth,
        tags=["status"],
        responses={503: {"model": ReadyResponse, "description": "not ready yet"}},
    )
    app.add_api_route(
        "/status", status, response_model=StatusResponse, dependencies=auth, tags=["status"]
    )
    app.add_api_route(
        "/events", events, response_model=EventsResponse, dependencies=auth, tags=["events"]
    )
    app.add_api_route(
        "/metrics", metrics, dependencies=auth, tags=["status"], response_class=Response
    )


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


# --- routes --------------------------------------------------------------------------------------


def health(service: ServiceDep) -> JSONResponse:
    """Liveness (no token needed, for container health checks; an allowed Host is)."""
    error = service.error()
    body = HealthResponse(status="error" if error else "ok", uptime_s=service.uptime, error=error)
    return JSONResponse(body.model_dump(), status_code=503 if error else 200)


def ready(service: ServiceDep) -> JSONResponse:
    """Readiness: 200 once the model is loaded and the stream is connected, else 503."""
    ok, reason = service.readiness()
    return JSONResponse(ReadyResponse(ready=ok, reason=reason).model_dump(), 200 if ok else 503)


def status(service: ServiceDep) -> StatusResponse:
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


def events(
    service: ServiceDep,
    since: Annotated[int, Query(ge=0, description="return messages numbered after this")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many")] = 100,
    labels: Annotated[str | None, Query(description="e.g. blink,jaw_clench")] = None,
    stream: Annotated[str | None, Query(description="stream id(s), comma-separated")] = None,
    types: Annotated[str | None, Query(description="artifact and/or status")] = None,
) -> Response:
    """The held message history after ``since`` (the websocket's ``?since=`` in REST form)."""
    try:
        flt = Filter.from_query(labels, stream, types)
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


def metrics(service: ServiceDep) -> Response:
    """Prometheus text format."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
