"""Live data: LSL inlet, ring buffer and replay player; :mod:`eegstream.live.scheduler` runs them.

Names that need liblsl (everything but :class:`RingBuffer`) load on first use, so offline code
that only needs the ring buffer (the detector, ``eegstream detect``) never loads liblsl.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from eegstream.stream.ring import RingBuffer

if TYPE_CHECKING:
    from eegstream.stream.inlet import EEGInlet, StreamDescription, resolve_stream
    from eegstream.stream.replay import Player, marker_stream_name

_LAZY = {
    "EEGInlet": "eegstream.stream.inlet",
    "StreamDescription": "eegstream.stream.inlet",
    "resolve_stream": "eegstream.stream.inlet",
    "Player": "eegstream.stream.replay",
    "marker_stream_name": "eegstream.stream.replay",
}

__all__ = [
    "EEGInlet",
    "Player",
    "RingBuffer",
    "StreamDescription",
    "marker_stream_name",
    "resolve_stream",
]


def __getattr__(name: str) -> Any:
    """Import the liblsl-backed names lazily (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
