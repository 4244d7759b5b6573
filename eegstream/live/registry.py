"""Every stream the scheduler has attached, by stream id and by headset (thread-safe).

Shared by the scheduler (``add``, ``remove``, ``status``, ``latest``) and the discovery thread,
which asks whether a headset it sees is attached already and builds the session of a new one.
A headset that returns (after detaching or removal) gets its old detector back, so event ids
never repeat.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pylsl

from eegstream.detector import Detector
from eegstream.errors import EegstreamError
from eegstream.live.contract import Sink
from eegstream.live.ports import SYSTEM_CLOCK, Clock, Inlet
from eegstream.live.session import StreamSession
from eegstream.stream.inlet import StreamDescription

__all__ = ["StreamRegistry", "StreamSpec", "connect_all", "stream_key"]


@dataclass(frozen=True)
class StreamSpec:
    """One stream to attach: any of name, type and source id, or an already resolved ``info``."""

    name: str | None = None
    stype: str | None = "EEG"
    source_id: str | None = None
    stream_id: str | None = None  #: default: the stream's name (made unique)
    info: pylsl.StreamInfo | None = None


def stream_key(desc: StreamDescription) -> str:
    """Which headset a stream is: its source id survives a restart of the sender; a uid does not."""
    return f"source:{desc.source_id}" if desc.source_id else f"uid:{desc.uid}"


def _try_connect(inlet: Inlet) -> BaseException | None:
    """Connect; return the exception instead of raising it (for a pool of connects)."""
    try:
        inlet.connect()
    except BaseException as exc:  # noqa: BLE001 - handed back and raised by the caller
        return exc
    return None


def connect_all(inlets: Sequence[Inlet]) -> None:
    """Connect every inlet, concurrently; raise the first failure (after all were tried).

    Concurrently: each connect waits on the network (resolve, metadata); one after the other,
    64 streams took ~20 s and the first ones' data piled up meanwhile.
    """
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="eegstream-connect") as pool:
        results = list(pool.map(_try_connect, inlets))
    failed = next((r for r in results if r is not None), None)
    if failed is not None:
        raise failed


class StreamRegistry:
    """Sessions by id (every one ever attached), headset keys, detectors of removed streams.

    ``make_detector(stream_id)`` builds the detector of a new stream; sessions send their
    messages to ``sink`` and read ``clock``.
    """

    def __init__(
        self,
        make_detector: Callable[[str], Detector],
        sink: Sink,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.make_detector = make_detector
        self.sink = sink
        self.clock = clock
        self.lock = threading.Lock()  #: streams/keys (read by status and discovery)
        self.streams: dict[str, StreamSession] = {}  #: every stream ever attached, by id
        self._keys: dict[str, str] = {}  # key -> stream id
        self._retired: dict[str, Detector] = {}  # detectors of removed streams, by id

    def snapshot(self) -> list[StreamSession]:
        """Every session, now (any thread)."""
        with self.lock:
            return list(self.streams.values())

    def get(self, stream_id: str | None) -> StreamSession | None:
        """The session ``stream_id``; ``None``: the first active one."""
        with self.lock:
            if stream_id is not None:
                return self.streams.get(stream_id)
            return next((x for x in self.streams.values() if x.active), None)

    def claimed(self, key: str) -> bool:
        """Whether the headset ``key`` is attached (or failed: left alone), not detached."""
        with self.lock:
            sid = self._keys.get(key)
            s = self.streams.get(sid) if sid is not None else None
            return s is not None and not s.detached

    def entry(self, inlet: Inlet, stream_id: str | None) -> StreamSession:
        """The session of a connected inlet: the existing one for the same headset, or new."""
        desc = inlet.description
        if desc is None:  # pragma: no cover - connect() sets it
            raise RuntimeError("inlet not connected")
        key = stream_key(desc)
        with self.lock:
            known = self._keys.get(key)
            if known is not None:
                s = self.streams[known]
                if not s.detached or stream_id not in (None, known):
                    inlet.disconnect()
                    raise EegstreamError(
                        f"MultiStreamPipeline: stream {desc} is already attached as "
                        f"{known!r}; attach each stream once"
                    )
                s.inlet = inlet  # a detached stream returns: same detector, same event ids
                return s
            sid = stream_id or self._unique_id(desc.name or desc.source_id or "eeg")
            if sid in self.streams:
                inlet.disconnect()
                raise EegstreamError(
                    f"MultiStreamPipeline: stream id {sid!r} is already attached; choose "
                    "another stream_id"
                )
            # a removed stream that is added again keeps its detector: event ids never repeat
            det = self._retired.pop(sid, None) or self.make_detector(sid)
            s = StreamSession(sid, key, inlet, det, self.sink, clock=self.clock)
            self.streams[sid] = s
            self._keys[key] = sid
            return s

    def retire(self, s: StreamSession) -> None:
        """Forget a removed stream, keeping its detector for a stream of the same id."""
        with self.lock:
            self.streams.pop(s.stream_id, None)
            self._retired[s.stream_id] = s.detector
            if self._keys.get(s.key) == s.stream_id:
                del self._keys[s.key]

    def _unique_id(self, name: str) -> str:
        """``name``, or ``name-2``, ``name-3``... (two headsets may share a stream name)."""
        sid, n = name, 1
        while sid in self.streams:
            n += 1
            sid = f"{name}-{n}"
        return sid
