"""What a pull of an :class:`~eegstream.stream.inlet.EEGInlet` returns, and what it reports.

:class:`Chunk` (samples, timestamps and the gaps among them), :class:`InletEvent` (a change of
connection state) and :class:`InletStats` (running counters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from eegstream.stream.resolve import StreamDescription

F64 = npt.NDArray[np.float64]

State = Literal["disconnected", "connected", "lost"]
GapReason = Literal["timestamps", "counter", "reconnect"]


# --- what a pull returns ------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """Samples missing between two consecutive received samples."""

    index: int  #: position in the chunk of the first sample after the gap
    start_lsl: float  #: timestamp of the last sample before the gap
    end_lsl: float  #: timestamp of the first sample after the gap
    missing: int  #: estimated number of missing samples (at the output rate)
    reason: GapReason


@dataclass(frozen=True)
class InletEvent:
    """A change of connection state, for the pipeline to turn into a status message."""

    kind: Literal["connected", "lost", "recovered", "clock_jump"]
    time_lsl: float  #: last sample time before a loss, else the local LSL time
    stream: StreamDescription | None
    detail: str = ""
    jump_s: float = 0.0  #: ``clock_jump``: how far the source's clock moved (< 0: backwards)


@dataclass(frozen=True)
class Chunk:
    """Samples from one pull. Arrays are views of the inlet's buffers, valid until the next pull."""

    #: ``(n, 14)`` microvolts in ``ELECTRODES`` order at 128 Hz (NaN: an absent optional electrode)
    data: F64
    timestamps: F64  #: ``(n,)`` LSL clock (local), seconds
    gaps: tuple[Gap, ...] = ()
    nonfinite: int = 0  #: samples of ``data`` with a NaN or infinite value on any electrode
    raw: F64 = field(default_factory=lambda: np.empty((0, 0)))  #: all stream channels, as pulled
    #: LSL times of the samples the source marked as interpolated (EmotivPRO's ``Interpolate``
    #: channel; at the source rate), usually none
    interpolated: F64 = field(default_factory=lambda: np.empty(0))

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.data.shape[0])


@dataclass
class InletStats:
    """Running counters (read by the pipeline's status)."""

    samples: int = 0
    chunks: int = 0
    gaps: int = 0
    missing_samples: int = 0
    nonfinite_samples: int = 0
    lost: int = 0
    reconnects: int = 0
    clock_jumps: int = 0
