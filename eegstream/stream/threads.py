"""What every object that owns one background thread shares: liveness and its stored failure.

The replay :class:`~eegstream.stream.replay.Player` and the
:class:`~eegstream.stream.multi.MultiStreamPipeline` each run one thread; an exception in it is
stored (the thread cannot raise to anyone), shown by ``error`` and raised once by ``check``.
"""

from __future__ import annotations

import threading

__all__ = ["ThreadOwner"]


class ThreadOwner:
    """A background thread and the exception that stopped it, if any."""

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
