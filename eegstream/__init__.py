"""eegstream: realtime blink / jaw-clench detection for Emotiv EEG streamed over LSL.

The Python API (``detect``, ``stream_events``, ``to_annotations``) is imported on first use, so
``import eegstream`` loads neither the engine, pylsl, MNE nor TensorFlow (the CLI starts fast).
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from eegstream.errors import EegstreamError

if TYPE_CHECKING:
    from eegstream.events import ArtifactEvent, StatusMessage
    from eegstream.python_api import EventStream, detect, stream_events, to_annotations

__version__ = "0.1.0"
__all__ = [
    "ArtifactEvent",
    "EegstreamError",
    "EventStream",
    "StatusMessage",
    "__version__",
    "detect",
    "stream_events",
    "to_annotations",
]

#: Public names imported on first access (PEP 562), with the module that defines each.
_LAZY = {
    "ArtifactEvent": "eegstream.events",
    "StatusMessage": "eegstream.events",
    "EventStream": "eegstream.python_api",
    "detect": "eegstream.python_api",
    "stream_events": "eegstream.python_api",
    "to_annotations": "eegstream.python_api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eegstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


logging.getLogger(__name__).addHandler(logging.NullHandler())
