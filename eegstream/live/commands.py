"""Commands from other threads (``add``, ``remove``, discovery) to the scheduler thread.

Only the scheduler thread changes its set of active streams; other threads queue a command and,
for ``add``/``remove``, wait for it to be done. Each command carries the event that frees its
waiter, set when it was carried out or, after the scheduler ended, drained.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from eegstream.live.session import StreamSession

__all__ = ["Attach", "Command", "CommandQueue", "Remove"]


@dataclass(frozen=True)
class Attach:
    """Start pulling an opened stream (``add`` while running, discovery)."""

    session: StreamSession
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Remove:
    """Detach a stream for good (``remove`` while running)."""

    stream_id: str
    done: threading.Event = field(default_factory=threading.Event)


Command = Attach | Remove


class CommandQueue:
    """A queue of commands; the scheduler takes them at the start of every tick."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def put(self, command: Command) -> None:
        """Queue a command without waiting for it."""
        self._queue.put(command)

    def submit(self, command: Command, alive: Callable[[], bool]) -> None:
        """Queue a command and wait until it is done, or until ``alive()`` turns false."""
        self._queue.put(command)
        while not command.done.wait(0.1):
            if not alive():  # stop() drains the queue; a failure leaves it to check()
                self.drain()
                return

    def pending(self) -> Iterator[Command]:
        """The commands queued so far, taken one by one."""
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def drain(self) -> None:
        """After the scheduler stopped: attaches that came too late are closed, waiters freed."""
        for cmd in self.pending():
            if isinstance(cmd, Attach) and not cmd.session.active:
                cmd.session.inlet.disconnect()
            cmd.done.set()
