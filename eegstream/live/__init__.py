"""The live path above the detector: the scheduler and its contract with the service.

The scheduler runs many streams in one thread, batching their windows into one engine call; the
contract (sink, model info, event source) is what the service consumes.
"""

from __future__ import annotations

from eegstream.live.contract import EventSource, ModelInfo, Sink
from eegstream.live.scheduler import LiveArtifactEvent, MultiStreamPipeline, StreamSpec

__all__ = [
    "EventSource",
    "LiveArtifactEvent",
    "ModelInfo",
    "MultiStreamPipeline",
    "Sink",
    "StreamSpec",
]
