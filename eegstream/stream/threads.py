"""What every object that owns one background thread shares: liveness and its stored failure.

The replay :class:`~eegstream.stream.replay.Player` and the
:class:`~eegstream.live.scheduler.MultiStreamPipeline` each run one thread; an exception in it is
stored (the thread cannot raise to anyone), shown by ``error`` and raised once by ``check``.
"""

from __future__ import annotations

import threading
import types
from abc import ABC, abstractmethod
from typing import Self

__all__ = ["ThreadOwner"]


class ThreadOwner(ABC):
    """A background thread and the exception that stopped it, if any; ``with`` starts/stops it."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def check(self) -> None:
        """Raise (once) the exception that stopped the thread, if any."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the thread (kept until :meth:`check` raises it)."""
        return self._error

    @abstractmethod
    def start(self) -> object:
        """Start the thread (nothing if it runs)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the thread and release what it used; raises its stored failure once."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()
