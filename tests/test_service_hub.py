"""The hub on its own: numbering, bounded history, ``since`` replays, filters, slow clients."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, TypeVar

import pytest

from eegstream.events import ArtifactEvent, StatusMessage
from eegstream.service.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_SLOW,
    Closing,
    Filter,
    Hub,
    Published,
    parse_csv,
)

T = TypeVar("T")


def artifact(i: int, label: str = "blink", stream: str = "s1") -> ArtifactEvent:
    now = time.time()
    return ArtifactEvent(
        id=f"e{i}",
        phase="onset",
        stream_id=stream,
        label=label,  # type: ignore[arg-type]
        onset_lsl=10.0 + i,
        offset_lsl=10.3 + i,
        onset_unix=now,
        offset_unix=now + 0.3,
        duration=0.3,
        confidence=0.9,
        n_windows=2,
        detected_lsl=10.5 + i,
        detected_unix=now,
    )


def status(kind: str = "gap", stream: str = "s1") -> StatusMessage:
    return StatusMessage(stream_id=stream, status=kind, unix_time=time.time())  # type: ignore[arg-type]


def seqs_of(queue: asyncio.Queue[Any]) -> list[int]:
    """Sequence numbers of the queued messages (all must be messages)."""
    items = drain(queue)
    assert all(isinstance(i, Published) for i in items), items
    return [i.seq for i in items if isinstance(i, Published)]


def drain(queue: asyncio.Queue[T]) -> list[T]:
    out: list[T] = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_publish_numbers_messages_and_serialises_once() -> None:
    hub = Hub(history_size=100, queue_size=10)
    items = [hub.publish(artifact(i)) for i in range(5)]
    assert [i.seq for i in items] == [1, 2, 3, 4, 5]
    assert hub.seq == 5
    decoded = json.loads(items[2].text)
    assert decoded["seq"] == 3
    assert decoded["type"] == "artifact"
    assert decoded["id"] == "e2"
    assert items[2].label == "blink"
    assert items[2].stream_id == "s1"
    status_item = hub.publish(status())
    assert status_item.seq == 6
    assert status_item.label is None
    assert status_item.type == "status"


def test_history_is_bounded_and_since_replays_exactly_what_follows() -> None:
    hub = Hub(history_size=10, queue_size=100)
    for i in range(25):
        hub.publish(artifact(i))
    assert hub.oldest_seq == 16
    assert [i.seq for i in hub.history(20, None, Filter())] == [21, 22, 23, 24, 25]
    assert [i.seq for i in hub.history(20, 2, Filter())] == [21, 22]
    assert hub.history(25, None, Filter()) == []
    assert [i.seq for i in hub.history(0, None, Filter())] == list(range(16, 26))


def test_subscribe_since_gives_backlog_then_live_without_gap_or_duplicate() -> None:
    hub = Hub(history_size=100, queue_size=100)
    for i in range(6):
        hub.publish(artifact(i))
    sub = hub.subscribe(Filter(), since=3)
    assert [i.seq for i in sub.backlog] == [4, 5, 6]
    assert not sub.truncated
    hub.publish(artifact(6))
    assert seqs_of(sub.queue) == [7]


def test_since_older_than_history_is_flagged_truncated() -> None:
    hub = Hub(history_size=3, queue_size=10)
    for i in range(10):
        hub.publish(artifact(i))
    sub = hub.subscribe(Filter(), since=2)
    assert sub.truncated
    assert [i.seq for i in sub.backlog] == [8, 9, 10]
    assert not hub.subscribe(Filter(), since=7).truncated


def test_filters_by_label_stream_and_type() -> None:
    hub = Hub(history_size=100, queue_size=100)
    blinks = hub.subscribe(Filter(labels=frozenset({"blink"})))
    other_stream = hub.subscribe(Filter(streams=frozenset({"s2"})))
    only_status = hub.subscribe(Filter(types=frozenset({"status"})))
    hub.publish(artifact(0, "blink"))
    hub.publish(artifact(1, "jaw_clench"))
    hub.publish(artifact(2, "jaw_clench", stream="s2"))
    hub.publish(status("lost"))
    seqs = {
        name: seqs_of(s.queue)
        for name, s in (("blinks", blinks), ("s2", other_stream), ("status", only_status))
    }
    # the label filter never hides stream status: a blink client must still learn the stream is lost
    assert seqs == {"blinks": [1, 4], "s2": [3], "status": [4]}


def test_slow_client_is_dropped_without_blocking_publisher_or_others() -> None:
    drops: list[str] = []
    hub = Hub(history_size=1000, queue_size=5, on_drop=drops.append)
    slow = hub.subscribe(Filter())
    fast = hub.subscribe(Filter())
    received: list[int] = []
    for i in range(50):
        start = time.perf_counter()
        hub.publish(artifact(i))
        assert time.perf_counter() - start < 0.01  # publishing never waits for a client
        received.extend(seqs_of(fast.queue))
    assert received == list(range(1, 51))
    # the slow client's pending messages were replaced by one close instruction
    pending = drain(slow.queue)
    assert pending == [Closing(CLOSE_TOO_SLOW, "client too slow: 5 messages waiting")]
    assert drops == ["client too slow: 5 messages waiting"]
    assert hub.clients == 1


def test_close_all_tells_every_client_after_its_pending_messages() -> None:
    hub = Hub(history_size=10, queue_size=2)
    subs = [hub.subscribe(Filter()) for _ in range(2)]
    hub.publish(artifact(0))
    drain(subs[1].queue)
    hub.publish(artifact(1))  # sub 0 now has two pending messages: a full queue
    hub.close_all()
    going_away = Closing(CLOSE_GOING_AWAY, "server shutting down")
    assert drain(subs[0].queue) == [going_away]  # no room: replaces
    pending = drain(subs[1].queue)
    assert [getattr(p, "seq", None) for p in pending] == [2, None]  # the message, then the close
    assert pending[-1] == going_away
    assert hub.clients == 0
    assert hub.closed
    with pytest.raises(RuntimeError, match="hub is closed: server shutting down"):
        hub.subscribe(Filter())


def test_parse_csv_names_bad_values() -> None:
    both = parse_csv("blink, jaw_clench", ("blink", "jaw_clench"), "labels")
    assert both == frozenset({"blink", "jaw_clench"})
    assert parse_csv("", ("blink",), "labels") is None
    assert parse_csv(None, None, "stream") is None
    with pytest.raises(
        ValueError, match=r"labels='blink,sneeze': unknown sneeze; allowed: blink, jaw_clench"
    ):
        parse_csv("blink,sneeze", ("blink", "jaw_clench"), "labels")
