"""The service: FastAPI app, websocket hub, metrics, LSL marker outlet and the dashboard.

``uvicorn eegstream.service:app`` works (the app is built from the environment on first access,
never at import time); ``uvicorn --factory eegstream.service:create_app`` does the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eegstream.live.contract import EventSource, ModelInfo
from eegstream.service.api import create_app
from eegstream.service.hub import Filter, Hub
from eegstream.service.state import Service, get_service

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "EventSource",
    "Filter",
    "Hub",
    "ModelInfo",
    "Service",
    "app",
    "create_app",
    "get_service",
]

_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """Build ``app`` on first access (PEP 562), so importing this package builds nothing."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
