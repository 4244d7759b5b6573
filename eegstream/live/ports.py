"""What the live path needs from outside itself: an inlet and the clocks.

The scheduler's sessions (``live/session.py``) read the time only through a :class:`Clock` and
pull samples only through an :class:`Inlet`, so that a test drives them with a fake clock and
prepared chunks, without threads or liblsl. Live, they are :data:`SYSTEM_CLOCK` and
:class:`~eegstream.stream.inlet.EEGInlet`.
"""

from __future__ import annotations

import time
from typing import Protocol

import pylsl

from eegstream.stream.inlet import ChannelMap, Chunk, InletEvent, InletStats, StreamDescription

__all__ = ["SYSTEM_CLOCK", "Clock", "Inlet", "SystemClock"]


class Clock(Protocol):
    """The three clocks the live path reads (a test passes a fake one)."""

    def unix(self) -> float:
        """Wall-clock seconds (``time.time``): message stamps, pull times, uptimes."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds (``time.monotonic``): how long a stream has been lost, retries."""
        ...

    def lsl(self) -> float:
        """The LSL clock (``pylsl.local_clock``), which sample timestamps are on."""
        ...


class SystemClock:
    """The real clocks."""

    def unix(self) -> float:
        """``time.time()``."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def lsl(self) -> float:
        """``pylsl.local_clock()``."""
        return float(pylsl.local_clock())


SYSTEM_CLOCK = SystemClock()


class Inlet(Protocol):
    """What the scheduler needs from a stream's inlet (:class:`~eegstream.stream.inlet.EEGInlet`).

    A test's in-memory inlet has plain attributes for the properties.
    """

    @property
    def stats(self) -> InletStats:
        """Running counters (samples, gaps, NaN samples, losses...)."""
        ...

    @property
    def description(self) -> StreamDescription | None:
        """The connected stream (None before the first connect)."""
        ...

    @property
    def channels(self) -> ChannelMap | None:
        """The stream's channel layout (absent optional electrodes)."""
        ...

    @property
    def fs(self) -> float:
        """Output rate (128 Hz)."""
        ...

    @property
    def source_fs(self) -> float:
        """The stream's nominal rate."""
        ...

    @property
    def state(self) -> str:
        """``disconnected``, ``connected`` or ``lost``."""
        ...

    @property
    def running(self) -> bool:
        """True between connect and disconnect."""
        ...

    def connect(self) -> object:
        """Open the stream (raises when it cannot)."""
        ...

    def disconnect(self) -> None:
        """Close the stream; safe to call twice."""
        ...

    def pull(self, timeout: float = 0.0) -> Chunk:
        """Samples received since the last call."""
        ...

    def events(self) -> list[InletEvent]:
        """Connection changes since the last call."""
        ...

    def backlog(self) -> int:
        """Samples waiting to be pulled."""
        ...
