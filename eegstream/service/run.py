"""``eegstream serve`` and ``eegstream demo``: settings, the pipeline, then the server.

The server itself (uvicorn, the websocket protocol, graceful shutdown) is in
:mod:`eegstream.service.server`; its public names are re-exported here, where embedding
programs and tests have always imported them. SIGTERM exits 0 (a requested stop), Ctrl-C 130.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI

from eegstream.service.api import create_app
from eegstream.service.server import BackgroundServer, local_host, serve_app, uvicorn_config
from eegstream.service.state import PipelineFactory, get_service
from eegstream.settings import Settings


def serve(settings: Settings) -> int:
    """``eegstream serve``: detect on live LSL streams and serve the events; the exit status."""
    from eegstream.service.detection import preload

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


@dataclass(frozen=True)
class Demo:
    """The demo's app, the settings it detects with (its own stream) and the lines to print."""

    app: FastAPI
    settings: Settings
    banner: list[str]


@contextlib.contextmanager
def demo_service(settings: Settings, *, speed: float = 1.0) -> Iterator[Demo]:
    """The bundled demo recording replayed on LSL (looping), and an app detecting on it.

    The stream gets a fresh name and source id, so a demo never attaches to another program's
    stream; ``settings`` (flags, env and config file) give everything else. The replay stops
    when the block ends.
    """
    from eegstream.io.emotiv import read_recording
    from eegstream.service.detection import preload
    from eegstream.simulate import demo_recording_path
    from eegstream.stream.replay import Player

    name = f"eegstream-demo-{uuid.uuid4().hex[:8]}"
    source_id = f"eegstream-demo-{uuid.uuid4().hex}"
    demo = Settings.model_validate(
        {**settings.model_dump(), "stream_name": [name], "source_id": source_id}
    )
    recording = read_recording(demo_recording_path())
    with Player(recording, name=name, source_id=source_id, speed=speed, loop=True):
        factory = preload(demo)
        app = create_app(demo, factory)
        banner = [
            f"replaying the demo recording {demo_recording_path().name} as LSL stream {name!r}",
            *_banner(demo),
        ]
        yield Demo(app, demo, banner)


def serve_for(app: FastAPI, settings: Settings, banner: list[str], seconds: float) -> int:
    """Serve in the background for ``seconds`` (``demo --duration``), then shut down cleanly.

    Returns the number of messages the hub published (what ``demo`` reports when it stops).
    """
    with BackgroundServer(app, settings, banner=banner) as server:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and server.running:
            time.sleep(0.1)
        return get_service(app).hub.seq


__all__ = [
    "BackgroundServer",
    "Demo",
    "PipelineFactory",
    "demo_service",
    "serve",
    "serve_app",
    "serve_for",
    "uvicorn_config",
]
