"""The websocket watchdog: send timeouts and keep-alive pings from one periodic tick.

One timer per message and client (``asyncio.timeout`` around each send, a timed queue wait for
pings) cost 13 % of the server's CPU with 200 clients; instead each sender only notes when a send
starts and ends (:class:`Watch`), and the service's one :class:`Watchdog` ticks a few times a
second: it cancels senders stuck in a send longer than ``send_timeout`` and queues a ping for
clients idle for ``ws_ping_interval``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import WebSocket

from eegstream.service.hub import PING, Subscription
from eegstream.settings import Settings

__all__ = ["Watch", "Watchdog"]


class Watch:
    """A websocket sender under the watchdog: when its current send began, when it last sent."""

    __slots__ = ("busy_since", "last_sent", "loop", "sub", "task", "timed_out")

    def __init__(self, sub: Subscription, task: asyncio.Task[Any]) -> None:
        self.sub = sub
        self.task = task
        self.loop = task.get_loop()
        self.busy_since: float | None = None
        self.last_sent = self.loop.time()
        self.timed_out = False  #: set by the watchdog when it cancelled ``task``

    async def send(self, websocket: WebSocket, text: str) -> None:
        """Send ``text``, noting the start and end for the watchdog (no timer of its own)."""
        self.busy_since = self.loop.time()
        await websocket.send_text(text)
        self.busy_since = None
        self.last_sent = self.loop.time()


class Watchdog:
    """The senders under watch and the periodic tick over them (event loop only)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._watched: set[Watch] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start ticking on ``loop`` (the service's start)."""
        self._loop = loop
        self._tick()

    def stop(self) -> None:
        """Stop ticking (safe to call twice, or without ``start``)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def watch(self, sub: Subscription, task: asyncio.Task[Any]) -> Watch:
        """Put a sender under the watchdog (send timeout, keep-alive pings)."""
        w = Watch(sub, task)
        self._watched.add(w)
        return w

    def unwatch(self, w: Watch) -> None:
        """Take a sender off the watchdog (safe to call twice)."""
        self._watched.discard(w)

    def _tick(self) -> None:
        """Cancel senders stuck in a send; queue a ping for idle clients. Runs periodically."""
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        timeout, ping_every = self._settings.send_timeout, self._settings.ws_ping_interval
        for w in tuple(self._watched):
            if w.busy_since is not None:
                if now - w.busy_since > timeout and not w.timed_out:
                    w.timed_out = True
                    w.task.cancel()
            elif now - w.last_sent >= ping_every and w.sub.queue.empty():
                w.sub.queue.put_nowait(PING)
                w.last_sent = now  # one ping per interval, even before it is sent
        self._ticker = loop.call_later(min(0.5, timeout / 4, ping_every / 4), self._tick)
