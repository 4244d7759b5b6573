"""The FastAPI app: ``create_app`` puts the service's parts together; nothing is built at import.

Where each part lives:

- ``state.py``: ``Service``, the state of one running app (hub, metrics, outputs, the detection
  side, its start and stop); the app's lifespan owns it.
- ``routes.py``: the REST routes (``/health``, ``/ready``, ``/status``, ``/events``,
  ``/metrics``) and their response models.
- ``websocket.py``: ``/ws/events`` and ``/ws/signal``; ``watchdog.py``: their send timeouts and
  keep-alive pings.
- ``dashboard.py``: the dashboard page and the filter of its signal view;
  ``calibration.py``: the calibration page and API.
- ``security.py``: the ``Host`` allow-list, origins and token.

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

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from eegstream import __version__
from eegstream.errors import EegstreamError
from eegstream.live.contract import EventSource, Sink
from eegstream.service.calibration import add_calibration_routes
from eegstream.service.dashboard import STATIC_DIR, add_dashboard
from eegstream.service.metrics import Metrics
from eegstream.service.routes import add_rest_routes, require_token
from eegstream.service.security import HostGuard
from eegstream.service.state import PipelineFactory, Service, get_service
from eegstream.service.websocket import add_websocket_routes
from eegstream.settings import FS, Settings, load_settings

__all__ = ["PipelineFactory", "Service", "create_app", "get_service"]


def _default_factory(settings: Settings, sink: Sink, metrics: Metrics) -> EventSource:
    """The real detection side: bundle + engine + the multi-stream pipeline."""
    from eegstream.service.detection import build_pipeline

    return build_pipeline(settings, sink, metrics)


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
    app.state.service = service  # what the routes' ``current_service`` dependency returns
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization"],
        )
    app.add_middleware(HostGuard, policy=service.policy)  # added last: the outermost layer

    auth = [Depends(require_token)]
    calibrations = add_calibration_routes(
        app, service, service.policy, auth, STATIC_DIR, profile_dir or settings.profile_dir
    )
    add_rest_routes(app)
    add_websocket_routes(app)
    add_dashboard(app)
    return app
