"""The websocket hub: numbers every message, keeps a bounded history and fans out to clients.

Everything here runs on the event loop thread (the pipeline thread hops messages over with
``loop.call_soon_threadsafe``), so ``publish`` and ``subscribe`` are plain synchronous methods:
with no ``await`` inside them, taking the history snapshot and registering the client's queue
happen atomically with respect to publishing, which is what makes ``?since=`` gap-free and
duplicate-free. ``publish`` never waits for a client: a client whose bounded queue is full is
dropped (its queue is replaced by a single close instruction), so one slow reader can never stall
the detector or the other clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

from eegstream.events import ArtifactEvent, Message
from eegstream.settings import ARTIFACT_LABELS

log = logging.getLogger(__name__)

#: Close code for a client that cannot keep up ("try again later").
CLOSE_TOO_SLOW = 1013
#: Close code sent to every client when the service shuts down.
CLOSE_GOING_AWAY = 1001


@dataclass(frozen=True, slots=True)
class Published:
    """A message as the hub holds it: numbered, serialised once, with the fields filters read."""

    seq: int
    type: str  #: "artifact" or "status"
    label: str | None  #: artifact label, None for status messages
    stream_id: str
    text: str  #: the JSON sent to clients (serialised once for every client)


@dataclass(frozen=True, slots=True)
class Closing:
    """The instruction a client's sender receives instead of further messages."""

    code: int
    reason: str


class _Ping:
    """The instruction to send a keep-alive ping (queued by the service's watchdog)."""

    def __repr__(self) -> str:
        return "PING"


PING = _Ping()


@dataclass(frozen=True)
class Filter:
    """What one client wants. ``None`` means everything.

    The label filter applies to artifact messages only: a client that asked for blinks still
    needs to know that its stream was lost.
    """

    labels: frozenset[str] | None = None
    streams: frozenset[str] | None = None
    types: frozenset[str] | None = None

    @classmethod
    def from_query(cls, labels: str | None, stream: str | None, types: str | None) -> Filter:
        """A client's filter from its query values (REST and websocket alike).

        ``ValueError`` names the bad value and the allowed ones.
        """
        return cls(
            labels=parse_csv(labels, ARTIFACT_LABELS, "labels"),
            streams=parse_csv(stream, None, "stream"),
            types=parse_csv(types, ("artifact", "status"), "types"),
        )

    def accepts(self, item: Published) -> bool:
        """Whether ``item`` goes to this client."""
        if self.types is not None and item.type not in self.types:
            return False
        if self.streams is not None and item.stream_id not in self.streams:
            return False
        return self.labels is None or item.label is None or item.label in self.labels


@dataclass(eq=False)
class Subscription:
    """One connected client: the messages it missed (``backlog``) and its live queue."""

    filter: Filter
    queue: asyncio.Queue[Published | Closing | _Ping]
    backlog: list[Published]
    #: True when ``since`` asked for messages that the bounded history no longer holds.
    truncated: bool = False
    closing: Closing | None = field(default=None)


class Hub:
    """Fan-out of published messages to subscribed clients, with a bounded replay history.

    Parameters
    ----------
    history_size
        Messages kept for ``?since=`` replays and ``GET /events``.
    queue_size
        Messages a client may fall behind before it is dropped.
    on_drop
        Called with the reason whenever a client is dropped (metrics hook).
    """

    def __init__(
        self,
        history_size: int,
        queue_size: int,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self._history: deque[Published] = deque(maxlen=history_size)
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._on_drop = on_drop
        self._closed: Closing | None = None
        self.seq = 0  #: sequence number of the newest message (0 = none yet)

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, message: Message) -> Published:
        """Number ``message``, keep it in the history and queue it for every matching client."""
        self.seq += 1
        numbered = message.model_copy(update={"seq": self.seq})
        label = numbered.label if isinstance(numbered, ArtifactEvent) else None
        item = Published(
            self.seq, numbered.type, label, numbered.stream_id, numbered.model_dump_json()
        )
        self._history.append(item)
        for sub in tuple(self._subscribers):
            if not sub.filter.accepts(item):
                continue
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                self._drop(
                    sub, CLOSE_TOO_SLOW, f"client too slow: {self._queue_size} messages waiting"
                )
        return item

    # --- clients ---------------------------------------------------------------------------------

    def subscribe(self, flt: Filter, since: int | None = None) -> Subscription:
        """Register a client; with ``since``, it first gets the held messages numbered after it.

        Raises ``RuntimeError`` after ``close_all`` (the service is shutting down).
        """
        if self._closed is not None:
            raise RuntimeError(f"hub is closed: {self._closed.reason}")
        backlog: list[Published] = []
        truncated = False
        if since is not None:
            backlog = self.history(since, None, flt)
            oldest = self._history[0].seq if self._history else self.seq + 1
            truncated = since + 1 < oldest
        sub = Subscription(flt, asyncio.Queue(self._queue_size), backlog, truncated)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a client (safe to call twice)."""
        self._subscribers.discard(sub)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        """Tell every client to close once its pending messages are sent; refuse new ones."""
        self._closed = closing = Closing(code, reason)
        for sub in tuple(self._subscribers):
            self._subscribers.discard(sub)
            sub.closing = closing
            try:
                sub.queue.put_nowait(closing)
            except asyncio.QueueFull:  # no room for the close: it replaces what is pending
                self._drop(sub, code, reason, count=False)

    def _drop(self, sub: Subscription, code: int, reason: str, *, count: bool = True) -> None:
        """Replace the client's pending messages by one close instruction and forget it."""
        self._subscribers.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.closing = Closing(code, reason)
        sub.queue.put_nowait(sub.closing)
        if count:
            log.warning("dropping websocket client: %s", reason)
            if self._on_drop is not None:
                self._on_drop(reason)

    # --- history ---------------------------------------------------------------------------------

    def history(self, since: int, limit: int | None, flt: Filter) -> list[Published]:
        """Held messages numbered after ``since`` that pass ``flt``, oldest first, at most ``limit``."""
        out: list[Published] = []
        if not self._history or since >= self.seq:
            return out
        # seq numbers are consecutive inside the deque: jump straight to the first one after since
        start = max(0, since + 1 - self._history[0].seq)
        for item in islice(self._history, start, None):
            if flt.accepts(item):
                out.append(item)
                if limit is not None and len(out) >= limit:
                    break
        return out

    @property
    def oldest_seq(self) -> int:
        """Sequence number of the oldest held message (``seq + 1`` when none is held)."""
        return self._history[0].seq if self._history else self.seq + 1

    @property
    def clients(self) -> int:
        """Number of connected clients."""
        return len(self._subscribers)

    @property
    def closed(self) -> bool:
        """Whether ``close_all`` was called."""
        return self._closed is not None


def parse_csv(value: str | None, allowed: Iterable[str] | None, name: str) -> frozenset[str] | None:
    """Split a ``a,b`` query value; raise ``ValueError`` naming the bad item and the allowed ones."""
    if value is None or not value.strip():
        return None
    items = frozenset(v.strip() for v in value.split(",") if v.strip())
    if allowed is not None:
        allowed_set = frozenset(allowed)
        bad = sorted(items - allowed_set)
        if bad:
            raise ValueError(
                f"{name}={value!r}: unknown {', '.join(bad)}; allowed: {', '.join(sorted(allowed_set))}"
            )
    return items
