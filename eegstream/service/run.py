"""``eegstream serve`` and ``eegstream demo``: settings, the pipeline, then the server.

The server itself (uvicorn, the websocket protocol, graceful shutdown) is in
:mod:`eegstream.service.server`; its public names are re-exported here, where embedding
programs and tests have always imported them. SIGTERM exits 0 (a requested stop), Ctrl-C 130.
"""

from __future__ import annotations

import argparse
import time
import uuid

from fastapi import FastAPI

from eegstream.errors import EegstreamError
from eegstream.service.api import create_app
from eegstream.service.server import BackgroundServer, local_host, serve_app, uvicorn_config
from eegstream.service.state import PipelineFactory, get_service
from eegstream.settings import Settings, settings_of


def run_serve(args: argparse.Namespace) -> int:
    """``eegstream serve``: detect on live LSL streams and serve the events."""
    from eegstream.service.detection import preload

    settings = settings_of(args)
    factory = preload(settings)  # bundle, engine and stream checked now: errors exit 2 at once
    app = create_app(settings, factory)
    return serve_app(app, settings, banner=_banner(settings))


def _banner(settings: Settings) -> list[str]:
    """The lines printed once the service listens (``{port}`` is filled in then)."""
    host = local_host(settings.host)
    token = "?token=<EEGSTREAM_TOKEN>" if settings.token else ""
    return [
        f"dashboard:  http://{host}:{{port}}/{token}",
        f"websocket:  ws://{host}:{{port}}/ws/events{token}",
        f"status:     http://{host}:{{port}}/status    docs: http://{host}:{{port}}/docs",
    ]


def run_demo(args: argparse.Namespace) -> int:
    """``eegstream demo``: replay the bundled demo recording through LSL and serve it."""
    from eegstream.io.emotiv import read_recording
    from eegstream.service.detection import preload
    from eegstream.simulate import demo_recording_path
    from eegstream.stream.replay import Player

    name = f"eegstream-demo-{uuid.uuid4().hex[:8]}"
    source_id = f"eegstream-demo-{uuid.uuid4().hex}"
    base = settings_of(args)  # flags, env and config file, as every command
    settings = Settings.model_validate(
        {**base.model_dump(), "stream_name": [name], "source_id": source_id}
    )
    if args.speed <= 0:
        raise EegstreamError(
            f"--speed {args.speed}: the demo is live, so it needs a positive speed (1 = real time)"
        )
    if args.duration is not None and args.duration <= 0:
        raise EegstreamError(f"--duration {args.duration}: expected a number of seconds > 0")
    recording = read_recording(demo_recording_path())
    with Player(recording, name=name, source_id=source_id, speed=args.speed, loop=True):
        factory = preload(settings)
        app = create_app(settings, factory)
        banner = [
            f"replaying the demo recording {demo_recording_path().name} as LSL stream {name!r}",
            *_banner(settings),
        ]
        if args.duration is None:
            return serve_app(app, settings, banner=banner)
        return _serve_for(app, settings, banner, args.duration)


def _serve_for(app: FastAPI, settings: Settings, banner: list[str], seconds: float) -> int:
    """Serve in the background for ``seconds`` (``demo --duration``), then shut down cleanly."""
    with BackgroundServer(app, settings, banner=banner) as server:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and server.running:
            time.sleep(0.1)
        events = get_service(app).hub.seq
    print(f"stopped after {seconds:g} s; {events} messages published", flush=True)  # noqa: T201
    return 0


__all__ = [
    "BackgroundServer",
    "PipelineFactory",
    "run_demo",
    "run_serve",
    "serve_app",
    "uvicorn_config",
]
