"""The one event schema: what the detector emits, the websocket sends and ``detect`` writes.

An artifact produces two messages with the same ``id``: ``phase="onset"`` as soon as it is
confirmed (low latency: "stop trusting the EEG now") and ``phase="final"`` when it ends, carrying
the final offset and peak confidence. Offline outputs (JSONL, BIDS) hold the final phase only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ArtifactLabel = Literal["blink", "jaw_clench"]


class ArtifactEvent(BaseModel):
    """One detected artifact (a blink or a jaw clench)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["artifact"] = "artifact"
    id: str = Field(description="stable id shared by the onset and final messages")
    seq: int = Field(0, description="monotonic sequence number assigned by the publisher")
    phase: Literal["onset", "final"]
    stream_id: str
    label: ArtifactLabel
    onset_lsl: float = Field(description="artifact onset, LSL clock (s)")
    offset_lsl: float = Field(description="artifact end, LSL clock (s); provisional at onset phase")
    onset_unix: float
    offset_unix: float
    duration: float
    confidence: float = Field(ge=0, le=1, description="peak window probability so far")
    n_windows: int = Field(ge=1)
    detected_lsl: float = Field(description="LSL time the message was produced")
    detected_unix: float
    flags: list[str] = Field(default_factory=list, description="e.g. interpolated, poor_contact")


class StatusMessage(BaseModel):
    """A change in a stream's state: connected, gap, recovered, lost, signal_fault, dead_electrode.

    ``clock_jump``: the source's clock moved (``detail.jump_s``, < 0 backwards); the inlet
    re-anchored its stamps so the stream's timeline continues without a gap. ``overloaded``: the
    service stayed 1 s or more behind the stream (``/status`` says when it caught up).
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["status"] = "status"
    seq: int = 0
    stream_id: str
    status: Literal[
        "connected",
        "gap",
        "recovered",
        "lost",
        "nan",
        "signal_fault",
        "dead_electrode",
        "clock_jump",
        "overloaded",
        "stopped",
    ]
    start_lsl: float | None = None
    end_lsl: float | None = None
    electrodes: list[str] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)
    unix_time: float


Message = ArtifactEvent | StatusMessage
