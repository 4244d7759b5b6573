"""Several headsets in one thread: N (inlet, detector) pairs and ONE engine call per tick.

A lab runs several participants at once; one process serves them all. :class:`MultiStreamPipeline`
owns one scheduler thread. Every tick (``poll_interval``, 5 ms by default) it pulls every inlet
without waiting, ingests what arrived into that stream's :class:`~eegstream.detector.Detector`
(own ring buffer, baseline, event builder and event ids), then collects the windows that became
due on *all* streams and classifies them together (:func:`~eegstream.detector.classify_together`: one
``FeaturePipeline`` call over the concatenation and one ``engine.infer``), and hands each
detector its slice of the probabilities. Batching is where a GPU pays off, and on the CPU it
replaces N small calls by one: measured on the 2-core CI machine, features cost 281 us for one
window alone and 17.5 us per window in a batch of 64.

Streams are named up front or added and removed at runtime; with ``discover=True`` a background
thread attaches every stream of ``stream_type`` that appears (opening a stream can take seconds,
so it never happens on the scheduler thread) and a stream lost for ``detach_after`` seconds is
detached. A stream that comes back, on its own (the inlet's recovery) or after being detached
(discovery, matched by source id), resumes under its stream id with the same detector, so event
ids never repeat; no event spans the outage.

Every message carries its stream id. Artifact events are :class:`LiveArtifactEvent`: the
ordinary event plus ``pulled_unix``, the moment the deciding window's last sample was pulled, so
processing latency (pull -> client) can be measured end to end.

Rare paths do their own engine call: a gap inside a chunk, a lost stream and :meth:`stop` flush
the detector concerned (:meth:`Detector.mark_gap`, :meth:`Detector.flush`) to keep the message
order exact.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pylsl
from pydantic import Field
from threadpoolctl import threadpool_limits

from eegstream.detector import Detector, classify_together, due_batches
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError, StreamGoneError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.live.contract import ModelInfo, Sink
from eegstream.preprocess import FeaturePipeline
from eegstream.settings import ELECTRODES, FS, Settings
from eegstream.stream.inlet import (
    EEGInlet,
    InletEvent,
    StreamDescription,
    stream_predicate,
    types_match,
)
from eegstream.stream.threads import ThreadOwner

log = logging.getLogger(__name__)

__all__ = [
    "LiveArtifactEvent",
    "MultiStreamPipeline",
    "StreamSpec",
]


#: Seconds between the per-stream rate measurements (and the detach check).
_RATE_EVERY_S = 1.0
#: Measurements kept: rates are averaged over about this many seconds.
_RATE_SPAN = 10
#: Tick durations kept for the scheduler's p50/p99 in :meth:`MultiStreamPipeline.status`.
_TICKS_KEPT = 2000
#: Samples pulled at most per stream and tick (2 s at 128 Hz). When the process has fallen
#: behind, this bounds one tick (all streams' windows in one batch) to a few seconds of work,
#: so messages keep flowing while it catches up instead of arriving in one burst per minute.
_MAX_CHUNK = 256
#: Samples waiting in a stream's LSL buffer (1 s) at which the service reports itself
#: ``overloaded`` (once per episode; ``connected`` again when the backlog fell under a quarter).
_OVERLOAD_BACKLOG = 128
#: Interpolated-sample times kept per stream to flag events (8 s of them at 128 Hz).
_INTERPOLATED_KEPT = 1024
#: Seconds a stream that failed to open during discovery is left alone before another try.
_RETRY_REJECTED_S = 30.0


class LiveArtifactEvent(ArtifactEvent):
    """An artifact event from a live stream, with the time its deciding samples were pulled.

    A subclass rather than a new field of :class:`ArtifactEvent`, so that offline outputs and
    other producers are unchanged; it serialises (websocket, event log) with the extra field.
    """

    pulled_unix: float = Field(
        description="unix time the deciding window's last sample was pulled from the stream"
    )


@dataclass(frozen=True)
class StreamSpec:
    """One stream to attach: any of name, type and source id, or an already resolved ``info``."""

    name: str | None = None
    stype: str | None = "EEG"
    source_id: str | None = None
    stream_id: str | None = None  #: default: the stream's name (made unique)
    info: pylsl.StreamInfo | None = None


# --- one stream's state ---------------------------------------------------------------------------


class _Stream:
    """An attached stream: inlet, detector and what its status reports. Scheduler-owned."""

    def __init__(self, stream_id: str, key: str, inlet: EEGInlet, detector: Detector) -> None:
        self.stream_id = stream_id
        self.key = key  #: identity for discovery: the source id, else the outlet's uid
        self.inlet = inlet
        self.detector = detector
        self.lock = threading.Lock()  #: ring writes vs latest()
        self.error: BaseException | None = None
        self.detached = False
        self.active = False  #: pulled by the scheduler
        self.attached_at = time.time()
        self.pulled_unix = 0.0
        self.last_ts: float | None = None
        self.lost_since: float | None = None  #: monotonic time of the last "lost"
        self.backlog = 0
        self.messages = 0
        self.last_gap: dict[str, Any] | None = None
        self.rates: deque[tuple[float, int, int]] = deque(maxlen=_RATE_SPAN + 1)
        self.nan_pending = 0
        self.nan_span: tuple[float, float] | None = None
        self.nan_electrodes: set[str] = set()
        self.nan_reported_at = -math.inf
        self.overloaded = False  #: an ``overloaded`` status was sent and not yet cleared
        #: LSL times of the newest samples the source marked as interpolated (rare)
        self.interpolated: deque[float] = deque(maxlen=_INTERPOLATED_KEPT)

    @property
    def state(self) -> str:
        if self.error is not None:
            return "failed"
        if self.detached:
            return "detached"
        return self.inlet.state if self.active else "stopped"

    def status(self) -> dict[str, Any]:
        """JSON-ready, one entry of :meth:`MultiStreamPipeline.status`'s ``streams`` (any thread)."""
        inlet, det = self.inlet, self.detector
        stats, dstats = inlet.stats, det.stats
        rates = list(self.rates)
        measured = windows_rate = None
        if len(rates) >= 2 and rates[-1][0] > rates[0][0]:
            dt = rates[-1][0] - rates[0][0]
            measured = (rates[-1][1] - rates[0][1]) / dt
            windows_rate = (rates[-1][2] - rates[0][2]) / dt
        ring = det.ring
        last_ts = self.last_ts
        error = self.error
        return {
            "stream_id": self.stream_id,
            "state": self.state,
            "running": self.active,
            "stream": inlet.description.as_dict() if inlet.description is not None else None,
            # optional electrodes the stream does not carry (NaN columns; detection needs none)
            "absent_electrodes": list(inlet.channels.absent) if inlet.channels else [],
            "nominal_fs": inlet.source_fs,
            "fs": inlet.fs,
            "measured_fs": measured,
            "buffer_fill": (ring.total - ring.oldest) / ring.capacity,
            "buffer_seconds": ring.capacity / FS,
            "lag_s": pylsl.local_clock() - last_ts if last_ts is not None and self.active else None,
            "backlog_samples": self.backlog,
            "samples": stats.samples,
            "windows": dstats.get("windows", 0),
            "windows_per_s": windows_rate,
            "dropped_windows": dstats.get("dropped_windows", 0),
            "nan_samples": stats.nonfinite_samples,
            "nan_windows": dstats.get("nan_windows", 0),
            "gaps": stats.gaps,
            "missing_samples": stats.missing_samples,
            "last_gap": self.last_gap,
            "lost": stats.lost,
            "reconnects": stats.reconnects,
            "clock_jumps": stats.clock_jumps,
            "messages": self.messages,
            "events": dstats.get("events", 0),
            "person_baseline": det.person.status() if det.person is not None else None,
            "last_error": None if error is None else f"{type(error).__name__}: {error}",
            "uptime_s": time.time() - self.attached_at,
        }


def _try_connect(inlet: EEGInlet) -> BaseException | None:
    """Connect; return the exception instead of raising it (for a pool of connects)."""
    try:
        inlet.connect()
    except BaseException as exc:  # noqa: BLE001 - handed back and raised by the caller
        return exc
    return None


def _key(desc: StreamDescription) -> str:
    """Which headset a stream is: its source id survives a restart of the sender; a uid does not."""
    return f"source:{desc.source_id}" if desc.source_id else f"uid:{desc.uid}"


# --- the pipeline -----------------------------------------------------------------------------------


class MultiStreamPipeline(ThreadOwner):
    """Runs many live streams in one thread, batching all due windows into one engine call.

    Parameters
    ----------
    engine
        The shared inference engine (called from the scheduler thread only).
    features
        The bundle's feature pipeline, shared by every stream's detector.
    settings
        Detector settings (``hop``, thresholds, ``buffer_seconds``) and ``resolve_timeout``.
    sink
        Called from the scheduler thread with every message of every stream, in each stream's
        order; it must not block long.
    streams
        Streams to attach at :meth:`start` (names, or :class:`StreamSpec`).
    discover
        Also attach every stream of ``stream_type`` that appears, and detach it when it goes.
    stream_type
        LSL type that discovery watches (default: ``settings.stream_type``).
    poll_interval
        Seconds from the start of one tick to the next (a tick that takes longer is followed
        at once). A message waits for its whole tick, so shorter ticks mean smaller batches and
        lower latency: with 32 headsets on the 2-core CI machine, 5 ms gave a processing p99 of
        19-22 ms at 60 % of a core, 20 ms gave 34-39 ms at 49 %, 2 ms no better at 70-75 %.
    detach_after
        Seconds a discovered stream may stay lost before it is detached (discovery only;
        named streams are searched for until :meth:`stop`).
    discover_interval
        Seconds between looks at the discovery resolver's results.
    model
        What :class:`~eegstream.live.contract.EventSource` reports as the model (service use).
    owns_engine
        Close the engine in :meth:`stop` (the service hands its engine over).
    """

    def __init__(
        self,
        engine: Engine,
        features: FeaturePipeline,
        settings: Settings,
        sink: Sink,
        *,
        streams: Sequence[str | StreamSpec] = (),
        discover: bool = False,
        stream_type: str | None = None,
        poll_interval: float = 0.005,
        detach_after: float = 30.0,
        discover_interval: float = 0.5,
        model: ModelInfo | None = None,
        owns_engine: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("poll_interval", poll_interval),
            ("detach_after", detach_after),
            ("discover_interval", discover_interval),
        ):
            if not (math.isfinite(value) and value > 0):
                raise EegstreamError(
                    f"MultiStreamPipeline: {name} must be a number of seconds > 0; got {value}"
                )
        self.engine = engine
        self.features = features
        self.settings = settings
        self.sink = sink
        self.discover = discover
        self.stream_type = stream_type or settings.stream_type
        self.poll_interval = float(poll_interval)
        self.detach_after = float(detach_after)
        self.discover_interval = float(discover_interval)
        self.owns_engine = owns_engine
        if model is None:
            model = ModelInfo("unknown", "", engine.name)
        self.model: ModelInfo = model
        self._specs: list[StreamSpec] = []  # named streams not yet connected (start connects)
        self._streams: dict[str, _Stream] = {}  # every stream ever attached, by id
        self._active: list[_Stream] = []  # pulled each tick; changed by the scheduler only
        self._keys: dict[str, str] = {}  # key -> stream id
        self._retired: dict[str, Detector] = {}  # detectors of removed streams, by id
        self._lock = threading.Lock()  # _streams/_keys (read by status and discovery)
        self._commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._rejected: dict[str, tuple[float, str, str]] = {}  # uid -> (monotonic, what, why)
        self._gone: dict[str, float] = {}  # uid -> monotonic time its outlet was found closed
        self._discovery: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._reset_counters()
        for s in streams:
            self.add(s) if isinstance(s, StreamSpec) else self.add(StreamSpec(name=s))

    def _reset_counters(self) -> None:
        """Scheduler counters, in one place (constructor and :meth:`start`)."""
        self._started = time.time()
        self._ticks = 0
        self._engine_calls = 0
        self._windows = 0
        self._largest_batch = 0
        self._overloads = 0  #: overload episodes (a stream's backlog reached 1 s)
        self._tick_s: deque[float] = deque(maxlen=_TICKS_KEPT)
        self._rate: deque[tuple[float, int]] = deque(maxlen=_RATE_SPAN + 1)

    # --- streams ------------------------------------------------------------------------------

    def add(self, spec: StreamSpec | str) -> str | None:
        """Attach a stream; returns its id once connected (``None`` before :meth:`start`).

        While running the stream is resolved and opened here, in the caller's thread (resolve
        errors are raised here), then handed to the scheduler; before :meth:`start` it is only
        remembered, and :meth:`start` connects it.
        """
        spec = StreamSpec(name=spec) if isinstance(spec, str) else spec
        if spec.stream_id is not None and spec.stream_id in self._streams:
            raise EegstreamError(
                f"MultiStreamPipeline.add: stream id {spec.stream_id!r} is already attached; "
                f"attached: {', '.join(sorted(self._streams))}; choose another stream_id"
            )
        if not self.running:
            self._specs.append(spec)
            return None
        s = self._connect(spec)
        self._submit(("attach", s))
        return s.stream_id

    def remove(self, stream_id: str) -> None:
        """Detach a stream for good: close its open event, report ``stopped``, disconnect it."""
        if stream_id not in self._streams:
            raise EegstreamError(
                f"MultiStreamPipeline.remove: no stream {stream_id!r}; attached: "
                f"{', '.join(sorted(self._streams)) or 'none'}"
            )
        if self.running:
            self._submit(("remove", stream_id))
        s = self._streams.get(stream_id)
        if s is not None and not self.running:  # not running (any more): do it here
            self._drop(s)

    def _submit(self, command: tuple[Any, ...]) -> None:
        """Hand a command to the scheduler and wait until it is done (or the scheduler ends)."""
        done = threading.Event()
        self._commands.put((*command, done))
        while not done.wait(0.1):
            if not self.running:  # stop() drains the queue; a failure leaves it to check()
                self._drain_commands()
                return

    @property
    def stream_ids(self) -> list[str]:
        """Ids of every stream attached so far (detached and failed ones included)."""
        with self._lock:
            return list(self._streams)

    def _inlet(self, spec: StreamSpec) -> EEGInlet:
        return EEGInlet(
            spec.name,
            spec.stype,
            spec.source_id,
            info=spec.info,
            resolve_timeout=self.settings.resolve_timeout,
            max_chunk=_MAX_CHUNK,
        )

    def _connect(self, spec: StreamSpec) -> _Stream:
        """Open a stream (caller's thread) and build its stream entry; not yet scheduled."""
        inlet = self._inlet(spec)
        inlet.connect()
        return self._entry(inlet, spec.stream_id)

    def _entry(self, inlet: EEGInlet, stream_id: str | None) -> _Stream:
        """The stream entry of a connected inlet: the existing one for the same headset, or new."""
        desc = inlet.description
        if desc is None:  # pragma: no cover - connect() sets it
            raise RuntimeError("inlet not connected")
        key = _key(desc)
        with self._lock:
            known = self._keys.get(key)
            if known is not None:
                s = self._streams[known]
                if not s.detached or stream_id not in (None, known):
                    inlet.disconnect()
                    raise EegstreamError(
                        f"MultiStreamPipeline: stream {desc} is already attached as "
                        f"{known!r}; attach each stream once"
                    )
                s.inlet = inlet  # a detached stream returns: same detector, same event ids
                return s
            sid = stream_id or self._unique_id(desc.name or desc.source_id or "eeg")
            if sid in self._streams:
                inlet.disconnect()
                raise EegstreamError(
                    f"MultiStreamPipeline: stream id {sid!r} is already attached; choose "
                    "another stream_id"
                )
            # a removed stream that is added again keeps its detector: event ids never repeat
            det = self._retired.pop(sid, None) or Detector(
                self.engine, self.features, self.settings, sid
            )
            s = _Stream(sid, key, inlet, det)
            self._streams[sid] = s
            self._keys[key] = sid
            return s

    def _unique_id(self, name: str) -> str:
        """``name``, or ``name-2``, ``name-3``... (two headsets may share a stream name)."""
        sid, n = name, 1
        while sid in self._streams:
            n += 1
            sid = f"{name}-{n}"
        return sid

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect the named streams (errors raised here) and start the scheduler thread.

        Calling it while running does nothing; after a failure it raises that failure first.
        """
        if self.running:
            return
        self.check()
        if self._closed:
            raise EegstreamError(
                "MultiStreamPipeline.start: this pipeline was stopped and closed its engine "
                "(owns_engine=True); build a new one"
            )
        # a restart reconnects what was running; new names are opened
        again = [
            s
            for s in self._streams.values()
            if s.error is None and not s.detached and not s.inlet.running
        ]
        inlets = [s.inlet for s in again] + [self._inlet(spec) for spec in self._specs]
        # Concurrently: each connect waits on the network (resolve, metadata); one after the
        # other, 64 streams took ~20 s and the first ones' data piled up meanwhile.
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="eegstream-connect") as pool:
            results = list(pool.map(_try_connect, inlets))
        failed = next((r for r in results if r is not None), None)
        opened: list[_Stream] = list(again)
        try:
            if failed is not None:
                raise failed
            for spec, inlet in zip(self._specs, inlets[len(again) :], strict=True):
                opened.append(self._entry(inlet, spec.stream_id))
        except BaseException:
            for inlet in inlets:
                inlet.disconnect()
            raise
        self._specs = []
        for s in opened:
            s.active = True
        self._active = opened
        self._reset_counters()
        self._stop.clear()
        # The scheduler's matmuls (features) are small: a second OpenBLAS thread only spins
        # after each one (59 % of a core at 64 headsets, measured) and starves the LSL threads.
        threadpool_limits(1, user_api="blas")
        self._thread = threading.Thread(target=self._run, name="eegstream-multi", daemon=True)
        self._thread.start()
        if self.discover:
            self._discovery = threading.Thread(
                target=self._discover_loop, name="eegstream-discover", daemon=True
            )
            self._discovery.start()
        log.info(
            "multi-stream pipeline started: %d stream(s)%s",
            len(opened),
            f", discovering type {self.stream_type!r}" if self.discover else "",
        )

    def stop(self) -> None:
        """Stop discovery and the scheduler, flush every stream, report ``stopped``, disconnect.

        Safe to call twice; raises the scheduler's exception, if it died of one.
        """
        was_running = self._thread is not None
        self._stop.set()
        if self._discovery is not None:
            self._discovery.join()
            self._discovery = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._drain_commands()
        if was_running:
            for s in self._active:
                try:
                    if self._error is None:  # a failed scheduler has reported itself
                        self._emit_all(s, self._stamp(s, s.detector.flush()))
                        self._emit(s, self._status(s, "stopped"))
                except Exception as exc:  # the sink failed: surface it like a thread failure
                    self._error = self._error or exc
                finally:
                    s.active = False
                    s.inlet.disconnect()
            self._active = []
        if self.owns_engine and not self._closed:
            self._closed = True
            self.engine.close()
        self.check()

    # --- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Engine, scheduler figures and every stream's status (safe from any thread).

        ``error`` is the scheduler's failure, else the first failed stream's, else None (the
        service's ``/health``). Streams that failed to open during discovery are listed under
        ``rejected`` (not an error: a stream lacking electrodes is simply not attached).
        """
        with self._lock:
            streams = list(self._streams.values())
        per = {s.stream_id: s.status() for s in streams}
        ticks = np.array(self._tick_s, dtype=np.float64)
        rate = list(self._rate)
        windows_per_s = None
        if len(rate) >= 2 and rate[-1][0] > rate[0][0]:
            windows_per_s = (rate[-1][1] - rate[0][1]) / (rate[-1][0] - rate[0][0])
        error = self._error
        errors = [d["last_error"] for d in per.values() if d["last_error"]]
        first = f"{type(error).__name__}: {error}" if error is not None else None
        return {
            "engine": self.engine.name,
            "running": self.running,
            "state": "failed" if error is not None else "running" if self.running else "stopped",
            "discover": self.discover,
            "streams": per,
            "attached": sum(1 for s in streams if s.active),
            "scheduler": {
                "ticks": self._ticks,
                "engine_calls": self._engine_calls,
                "windows": self._windows,
                "windows_per_s": windows_per_s,
                "mean_batch": self._windows / self._engine_calls if self._engine_calls else None,
                "largest_batch": self._largest_batch,
                "overloads": self._overloads,
                "overloaded": sum(1 for s in streams if s.active and s.overloaded),
                "tick_p50_ms": float(np.percentile(ticks, 50)) * 1e3 if ticks.size else None,
                "tick_p99_ms": float(np.percentile(ticks, 99)) * 1e3 if ticks.size else None,
                "poll_interval_s": self.poll_interval,
            },
            "rejected": {what: why for _, what, why in dict(self._rejected).values()},
            "error": first or (errors[0] if errors else None),
            "uptime_s": time.time() - self._started,
        }

    def latest(
        self, seconds: float, stream_id: str | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Copies of the newest ``seconds`` of a stream (default: the first attached one)."""
        with self._lock:
            if stream_id is not None:
                s = self._streams.get(stream_id)
            else:
                s = next((x for x in self._streams.values() if x.active), None)
        if s is None:
            return np.empty((0, len(ELECTRODES))), np.empty(0)
        with s.lock:
            return s.detector.ring.latest(max(0, int(round(seconds * FS))))

    # --- the scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                self._run_commands()
                self._tick()
                self._housekeeping(t0)
                elapsed = time.monotonic() - t0
                self._tick_s.append(elapsed)
                if elapsed < self.poll_interval:
                    self._stop.wait(self.poll_interval - elapsed)
        except Exception as exc:  # stored, shown in status(), raised by check()/stop()
            log.exception("multi-stream pipeline failed")
            self._error = exc
            detail = {"error": f"{type(exc).__name__}: {exc}"}
            for s in self._active:
                try:
                    self._emit(s, self._status(s, "stopped", detail=detail))
                except Exception:  # the sink itself may be what failed
                    log.debug("could not report the failure of %s", s.stream_id, exc_info=True)

    def _tick(self) -> None:
        """Pull every stream, then classify every due window of every stream in one call."""
        self._ticks += 1
        unix_offset = time.time() - pylsl.local_clock()
        touched: list[_Stream] = []
        for s in tuple(self._active):
            try:
                if self._pull(s, unix_offset):
                    touched.append(s)
            except Exception as exc:  # this stream only (e.g. it came back without AF4)
                self._fail(s, exc)
        if not touched:
            return
        while touched:  # more than one round only when a stream has a backlog over 1 s
            batches = due_batches([s.detector for s in touched])
            m = sum(b.m for b in batches)
            probs = classify_together(self.engine, self.features, batches)
            if m:
                self._engine_calls += 1
                self._windows += m
                self._largest_batch = max(self._largest_batch, m)
            for s, b, p in zip(touched, batches, probs, strict=True):
                self._emit_all(s, self._stamp(s, s.detector.apply(b, p)))
            touched = [s for s in touched if s.active and s.detector.pending]

    def _pull(self, s: _Stream, unix_offset: float) -> bool:
        """One stream's pull: connection events, gaps, samples into the detector."""
        chunk = s.inlet.pull(0.0)
        for event in s.inlet.events():
            self._on_event(s, event)
        if not chunk.n:
            return False
        s.pulled_unix = time.time()
        det = s.detector
        data, ts = chunk.data, chunk.timestamps
        prev = 0
        for gap in chunk.gaps:  # rare: the samples before the gap are decided right away
            with s.lock:
                det.ingest(data[prev : gap.index], ts[prev : gap.index], unix_offset)
            self._emit_all(s, self._stamp(s, det.mark_gap(gap.start_lsl, gap.end_lsl)))
            prev = gap.index
            info = {
                "missing_samples": gap.missing,
                "seconds": round(gap.end_lsl - gap.start_lsl, 6),
                "reason": gap.reason,
            }
            s.last_gap = {"start_lsl": gap.start_lsl, "end_lsl": gap.end_lsl, **info}
            self._emit(
                s, self._status(s, "gap", start_lsl=gap.start_lsl, end_lsl=gap.end_lsl, detail=info)
            )
        with s.lock:
            det.ingest(data[prev:], ts[prev:], unix_offset)
        if chunk.nonfinite:
            self._note_nan(s, data, ts, chunk.nonfinite)
        if chunk.interpolated.size:
            s.interpolated.extend(chunk.interpolated.tolist())
        s.last_ts = float(ts[-1])
        return True

    def _on_event(self, s: _Stream, event: InletEvent) -> None:
        detail: dict[str, Any] = {"reason": event.detail} if event.detail else {}
        if event.stream is not None:
            detail["stream"] = str(event.stream)
        if event.kind == "lost":
            s.lost_since = time.monotonic()
            # close the open event now, not after recovery
            self._emit_all(s, self._stamp(s, s.detector.flush()))
        else:
            s.lost_since = None
        if event.kind == "clock_jump":
            detail["jump_s"] = round(event.jump_s, 6)
        channels = s.inlet.channels
        if event.kind in ("connected", "recovered") and channels is not None and channels.absent:
            detail["absent_electrodes"] = list(channels.absent)
        start = event.time_lsl if event.kind in ("lost", "clock_jump") else None
        self._emit(s, self._status(s, event.kind, start_lsl=start, detail=detail))

    def _fail(self, s: _Stream, exc: BaseException) -> None:
        """One stream failed: report it, disconnect it; the others carry on."""
        log.error("stream %s failed: %s", s.stream_id, exc, exc_info=exc)
        s.error = exc
        self._deactivate(s)
        s.inlet.disconnect()
        self._emit(s, self._status(s, "stopped", detail={"error": f"{type(exc).__name__}: {exc}"}))

    def _housekeeping(self, now: float) -> None:
        """About once a second: rates, backlogs, NaN reports, detaching streams gone for good."""
        if self._rate and now - self._rate[-1][0] < _RATE_EVERY_S:
            return
        self._rate.append((now, self._windows))
        for s in tuple(self._active):
            self._report_nan(s, now)
            s.rates.append((now, s.inlet.stats.samples, s.detector.stats.get("windows", 0)))
            backlog_before, s.backlog = s.backlog, s.inlet.backlog()
            self._check_overload(s, backlog_before)
            if (
                self.discover
                and s.lost_since is not None
                and now - s.lost_since > self.detach_after
            ):
                self._detach(s, now - s.lost_since)

    def _check_overload(self, s: _Stream, backlog_before: int) -> None:
        """Say so when this process falls behind a stream (samples pile up in liblsl's buffer).

        Why: a service that cannot keep up delivers events late, then loses samples when the
        buffer overflows (a gap); without a word it looks like a quiet headset. A backlog of a
        second or more at two checks a second apart, not shrinking, is an overload (the burst
        after a reconnection or a slow start drains within a tick or two and is not).
        """
        behind = _OVERLOAD_BACKLOG <= backlog_before <= s.backlog
        if not s.overloaded and behind:
            s.overloaded = True
            self._overloads += 1
            log.warning(
                "stream %s: %d samples wait to be processed: the service is overloaded",
                s.stream_id, s.backlog,
            )  # fmt: skip
            detail = {
                "backlog_samples": s.backlog,
                "reason": "samples arrive faster than processed",
            }
            self._emit(s, self._status(s, "overloaded", detail=detail))
        elif s.overloaded and s.backlog < _OVERLOAD_BACKLOG // 4:
            s.overloaded = False  # /status's scheduler.overloaded drops; no status message
            log.warning("stream %s: the service caught up", s.stream_id)

    def _detach(self, s: _Stream, gone_s: float) -> None:
        log.info("detaching stream %s: lost for %.1f s", s.stream_id, gone_s)
        s.inlet.disconnect()  # stops its own search; discovery re-attaches it if it returns
        self._deactivate(s)
        s.detached = True
        s.lost_since = None
        detail = {"reason": f"detached: lost for {gone_s:.1f} s", "detached": True}
        self._emit(s, self._status(s, "stopped", detail=detail))

    def _drop(self, s: _Stream) -> None:
        """Remove a stream entirely (``remove``)."""
        if s.active:
            self._emit_all(s, self._stamp(s, s.detector.flush()))
            self._emit(s, self._status(s, "stopped", detail={"reason": "removed"}))
        self._deactivate(s)
        s.inlet.disconnect()
        with self._lock:
            self._streams.pop(s.stream_id, None)
            self._retired[s.stream_id] = s.detector
            if self._keys.get(s.key) == s.stream_id:
                del self._keys[s.key]

    # --- commands from other threads ------------------------------------------------------------

    def _pending(self) -> Iterator[tuple[Any, ...]]:
        """The commands queued so far, taken one by one."""
        while True:
            try:
                yield self._commands.get_nowait()
            except queue.Empty:
                return

    def _run_commands(self) -> None:
        for cmd in self._pending():
            try:
                if cmd[0] == "attach":
                    s = cmd[1]
                    s.detached = False
                    s.error = None
                    s.lost_since = None
                    if not s.active:
                        s.active = True
                        self._active.append(s)
                    log.info("attached stream %s (%s)", s.stream_id, s.inlet.description)
                elif cmd[0] == "remove":
                    s = self._streams.get(cmd[1])
                    if s is not None:
                        self._drop(s)
            finally:
                if len(cmd) > 2 and cmd[2] is not None:
                    cmd[2].set()

    def _deactivate(self, s: _Stream) -> None:
        s.active = False
        if s in self._active:
            self._active.remove(s)

    def _drain_commands(self) -> None:
        """After the scheduler stopped: attaches that came too late are closed, waiters freed."""
        for cmd in self._pending():
            if cmd[0] == "attach" and not cmd[1].active:
                cmd[1].inlet.disconnect()
            if len(cmd) > 2 and cmd[2] is not None:
                cmd[2].set()

    # --- discovery ------------------------------------------------------------------------------

    def _discover_loop(self) -> None:
        """Background: attach every stream of ``stream_type`` that appears (never blocks ticks)."""
        pred = stream_predicate(None, self.stream_type, None)  # the type in any case
        resolver = pylsl.ContinuousResolver(pred=pred, forget_after=2.0)
        try:
            while not self._stop.wait(self.discover_interval):
                try:
                    infos = resolver.results()
                except Exception:  # liblsl hiccup: try again next round
                    log.warning("stream discovery failed; retrying", exc_info=True)
                    continue
                for info in infos:
                    if self._stop.is_set():
                        return
                    self._consider(info)
        finally:
            del resolver

    def _consider(self, info: pylsl.StreamInfo) -> None:
        """Open a newly seen stream (or a detached one that came back) and hand it over."""
        desc = StreamDescription.from_info(info)
        if not types_match(desc.type, self.stream_type):  # "EEG" finds MNE-LSL's "eeg" too
            return
        key = _key(desc)
        with self._lock:
            sid = self._keys.get(key)
            s = self._streams.get(sid) if sid is not None else None
            if s is not None and not s.detached:
                return  # attached (or failed: left alone) - its inlet handles recovery
        # by uid: a dead outlet that the resolver still lists must not hold up its successor
        seen = self._rejected.get(desc.uid)
        if seen is not None and time.monotonic() - seen[0] < _RETRY_REJECTED_S:
            return
        if time.monotonic() - self._gone.get(desc.uid, -math.inf) < _RETRY_REJECTED_S:
            return
        inlet = EEGInlet(
            desc.name,
            desc.type,
            desc.source_id or None,
            info=info,
            resolve_timeout=self.settings.resolve_timeout,
            max_chunk=_MAX_CHUNK,
        )
        try:
            inlet.connect()
            entry = self._entry(inlet, None)
        except StreamGoneError as exc:  # a dead outlet the resolver still lists: not rejected
            log.debug("not attaching %s: %s", desc, exc)
            now = time.monotonic()
            self._gone = {u: t for u, t in self._gone.items() if now - t < _RETRY_REJECTED_S}
            self._gone[desc.uid] = now
            return
        except EegstreamError as exc:
            if seen is None:
                log.warning("not attaching %s: %s", desc, exc)
            self._rejected[desc.uid] = (time.monotonic(), str(desc), str(exc))
            return
        self._rejected.pop(desc.uid, None)
        self._commands.put(("attach", entry, None))

    # --- output ---------------------------------------------------------------------------------

    def _note_nan(
        self, s: _Stream, data: npt.NDArray[np.float64], ts: npt.NDArray[np.float64], n: int
    ) -> None:
        """Accumulate non-finite samples for the stream's next (rate-limited) ``nan`` status."""
        bad = ~np.isfinite(data)  # only on chunks that have some: rare
        channels = s.inlet.channels
        if channels is not None and channels.absent:  # absent electrodes are NaN by design
            bad &= channels.present[None, :]
        rows = np.flatnonzero(bad.any(axis=1))
        span = (float(ts[rows[0]]), float(ts[rows[-1]]))
        s.nan_span = span if s.nan_span is None else (s.nan_span[0], span[1])
        s.nan_pending += n
        s.nan_electrodes.update(ELECTRODES[i] for i in np.flatnonzero(bad.any(axis=0)).tolist())

    def _report_nan(self, s: _Stream, now: float) -> None:
        if not s.nan_pending or now - s.nan_reported_at < 1.0:
            return
        start, end = s.nan_span or (None, None)
        detail = {"samples": s.nan_pending, "total": s.inlet.stats.nonfinite_samples}
        electrodes = [e for e in ELECTRODES if e in s.nan_electrodes]
        self._emit(
            s,
            self._status(
                s, "nan", start_lsl=start, end_lsl=end, electrodes=electrodes, detail=detail
            ),
        )
        s.nan_pending, s.nan_span, s.nan_electrodes = 0, None, set()
        s.nan_reported_at = now

    @staticmethod
    def _stamp(s: _Stream, messages: list[Message]) -> list[Message]:
        """Artifact events become :class:`LiveArtifactEvent`, with the pull time.

        They are flagged ``interpolated`` when the source filled in samples between onset and
        offset, as ``eegstream detect`` flags them from the recording's column.
        """
        out: list[Message] = []
        for m in messages:
            if isinstance(m, ArtifactEvent):
                flags = m.flags
                if "interpolated" not in flags and any(
                    m.onset_lsl <= t <= m.offset_lsl for t in s.interpolated
                ):
                    flags = [*flags, "interpolated"]
                fields = m.model_dump(exclude={"flags"})
                m = LiveArtifactEvent(**fields, flags=flags, pulled_unix=s.pulled_unix)
            out.append(m)
        return out

    @staticmethod
    def _status(
        s: _Stream,
        status: str,
        *,
        start_lsl: float | None = None,
        end_lsl: float | None = None,
        electrodes: list[str] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> StatusMessage:
        return StatusMessage(
            stream_id=s.stream_id,
            status=status,  # type: ignore[arg-type]
            start_lsl=start_lsl,
            end_lsl=end_lsl,
            electrodes=electrodes or [],
            detail=detail or {},
            unix_time=time.time(),
        )

    def _emit(self, s: _Stream, message: Message) -> None:
        self.sink(message)
        s.messages += 1

    def _emit_all(self, s: _Stream, messages: list[Message]) -> None:
        for message in messages:
            self._emit(s, message)
