"""An inlet fed by hand: the scheduler's work without LSL, for tests and ``eegstream bench``.

:class:`MemoryInlet` meets :class:`~eegstream.live.ports.Inlet`: each pull hands out the next
prepared :class:`~eegstream.stream.inlet.Chunk`, connection events are queued by the caller. With
a clock that moves only when told (:class:`StepClock`) a whole tick across sessions runs
deterministically in one thread: the fake-clock tests drive the scheduler's state machine with
it, and the bench times the tick's CPU per window with LSL left out.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from eegstream.settings import ELECTRODES, FS
from eegstream.stream.inlet import Chunk, InletEvent, InletStats, StreamDescription

__all__ = ["UNIX_OFFSET", "MemoryInlet", "StepClock"]

#: The step clock's unix time is its LSL time plus this.
UNIX_OFFSET = 1_700_000_000.0


class StepClock:
    """A :class:`~eegstream.live.ports.Clock` whose time moves only when ``t`` is changed."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def unix(self) -> float:
        """Unix time: the LSL time plus :data:`UNIX_OFFSET`."""
        return UNIX_OFFSET + self.t

    def monotonic(self) -> float:
        """Monotonic time: ``t``."""
        return self.t

    def lsl(self) -> float:
        """LSL time: ``t``."""
        return self.t


class MemoryInlet:
    """An inlet whose pulls return prepared chunks (one per pull) and whose events are queued.

    ``waiting`` is what :meth:`backlog` reports; ``fail_with``, when set, is raised by the next
    pull (a stream that fails); ``disconnects`` counts :meth:`disconnect` calls.
    """

    def __init__(self, name: str, fs: float = FS) -> None:
        self.stats = InletStats()
        self.description: StreamDescription | None = StreamDescription(
            name, "EEG", f"src-{name}", f"uid-{name}", "localhost", fs, len(ELECTRODES), 1
        )
        self.channels = None
        self.fs = fs
        self.source_fs = fs
        self.state = "connected"
        self.running = True
        self.waiting = 0
        self.disconnects = 0
        self.fail_with: Exception | None = None
        self._chunks: deque[Chunk] = deque()
        self._events: list[InletEvent] = []
        self._empty = Chunk(np.empty((0, len(ELECTRODES))), np.empty(0))

    def feed(self, chunk: Chunk) -> None:
        """Queue a chunk for a later pull."""
        self._chunks.append(chunk)

    def post(self, event: InletEvent) -> None:
        """Queue a connection event for the next :meth:`events`."""
        self._events.append(event)

    def pull(self, timeout: float = 0.0) -> Chunk:
        """The next queued chunk (an empty one when none is queued)."""
        if self.fail_with is not None:
            raise self.fail_with
        if not self._chunks:
            return self._empty
        chunk = self._chunks.popleft()
        self.stats.samples += chunk.n
        self.stats.nonfinite_samples += chunk.nonfinite
        self.stats.gaps += len(chunk.gaps)
        return chunk

    def events(self) -> list[InletEvent]:
        """Connection events posted since the last call."""
        out, self._events = self._events, []
        return out

    def backlog(self) -> int:
        """Samples said to wait (``waiting``)."""
        return self.waiting

    def connect(self) -> MemoryInlet:
        """Connected again (nothing to open)."""
        self.running, self.state = True, "connected"
        return self

    def disconnect(self) -> None:
        """Disconnected (counted)."""
        self.running, self.state = False, "disconnected"
        self.disconnects += 1
