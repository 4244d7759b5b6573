"""The contract between the live path and whoever serves it: sink, model info, event source.

Why a module of its own: the scheduler (``live/scheduler.py``) implements ``EventSource`` and
reports a ``ModelInfo``; the service consumes them. Defined here, below both, neither has to
import the other's module (the service's app once held these and the scheduler imported it back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from eegstream.events import Message

#: Where the live path hands every message (a status or an event) to whoever serves it.
Sink = Callable[[Message], None]


@dataclass(frozen=True)
class ModelInfo:
    """Which model and engine produce the events (shown in ``hello``, ``/status``, metrics)."""

    name: str
    sha256: str
    backend: str
    #: the user profile in use (``--profile``): its name, thresholds and file; None without one
    profile: dict[str, Any] | None = None


class EventSource(Protocol):
    """What the app needs from the detection side (``MultiStreamPipeline``).

    Built by ``service/detection.py``. ``start``/``stop`` are called once each from a worker thread; ``status`` and ``latest`` from
    the event loop, so they must be quick and thread-safe.
    """

    model: ModelInfo

    def start(self) -> None:
        """Start detecting; messages then arrive through the sink."""
        ...

    def stop(self) -> None:
        """Stop and release the inlet and the engine; safe to call twice."""
        ...

    def status(self) -> dict[str, Any]:
        """JSON-able state of the stream(s): rate, lag, buffer fill, counts, last error."""
        ...

    def latest(
        self, seconds: float, stream_id: str | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The newest ``seconds`` of one stream's raw signal (default: the first attached one).

        ``(data (n, 14) uV, LSL times (n,))``; empty while the stream is unknown.
        """
        ...
