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

The work is split by concern: ``live/session.py`` is one stream (pull, status, NaN reports,
overload), ``live/ticker.py`` the tick across sessions (batching) without a thread,
``live/registry.py`` the streams by id and headset, ``live/discovery.py`` the discovery thread;
this module owns the threads, the commands from other threads, start/stop and the status.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from eegstream.detector import Detector
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.live.commands import Attach, CommandQueue, Remove
from eegstream.live.contract import ModelInfo, Sink
from eegstream.live.discovery import Discovery
from eegstream.live.ports import SYSTEM_CLOCK, Inlet
from eegstream.live.registry import StreamRegistry, StreamSpec, connect_all
from eegstream.live.session import LiveArtifactEvent, StreamSession
from eegstream.live.ticker import Ticker
from eegstream.preprocess import FeaturePipeline
from eegstream.settings import ELECTRODES, FS, Settings
from eegstream.stream.inlet import EEGInlet
from eegstream.stream.threads import ThreadOwner

log = logging.getLogger(__name__)

__all__ = ["LiveArtifactEvent", "MultiStreamPipeline", "StreamSpec"]

#: Samples pulled at most per stream and tick (2 s at 128 Hz). When the process has fallen
#: behind, this bounds one tick (all streams' windows in one batch) to a few seconds of work,
#: so messages keep flowing while it catches up instead of arriving in one burst per minute.
_MAX_CHUNK = 256


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
        # the ticker calls the engine; ``engine`` reads and replaces the ticker's
        self._ticker = Ticker(
            engine,
            features,
            detach_after=float(detach_after) if discover else None,  # named: never detached
            clock=SYSTEM_CLOCK,
        )
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
        self._clock = SYSTEM_CLOCK
        self._specs: list[StreamSpec] = []  # named streams not yet connected (start connects)
        self._registry = StreamRegistry(self._new_detector, sink, clock=self._clock)
        self._streams = self._registry.streams  # every stream ever attached, by id
        self._commands = CommandQueue()
        self._finder = Discovery(
            self._registry,
            lambda s: self._commands.put(Attach(s)),
            stream_type=self.stream_type,
            interval=self.discover_interval,
            resolve_timeout=settings.resolve_timeout,
            max_chunk=_MAX_CHUNK,
            clock=self._clock,
        )
        self._discovery: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        for s in streams:
            self.add(s) if isinstance(s, StreamSpec) else self.add(StreamSpec(name=s))

    @property
    def engine(self) -> Engine:
        """The shared inference engine (called from the scheduler thread only)."""
        return self._ticker.engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self._ticker.engine = engine

    def _new_detector(self, stream_id: str) -> Detector:
        return Detector(self.engine, self.features, self.settings, stream_id)

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
        inlet = self._inlet(spec)
        inlet.connect()
        s = self._registry.entry(inlet, spec.stream_id)
        self._commands.submit(Attach(s), lambda: self.running)
        return s.stream_id

    def remove(self, stream_id: str) -> None:
        """Detach a stream for good: close its open event, report ``stopped``, disconnect it."""
        if stream_id not in self._streams:
            raise EegstreamError(
                f"MultiStreamPipeline.remove: no stream {stream_id!r}; attached: "
                f"{', '.join(sorted(self._streams)) or 'none'}"
            )
        if self.running:
            self._commands.submit(Remove(stream_id), lambda: self.running)
        s = self._streams.get(stream_id)
        if s is not None and not self.running:  # not running (any more): do it here
            self._drop(s)

    @property
    def stream_ids(self) -> list[str]:
        """Ids of every stream attached so far (detached and failed ones included)."""
        with self._registry.lock:
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
        inlets: list[Inlet] = [s.inlet for s in again]
        inlets += [self._inlet(spec) for spec in self._specs]
        opened: list[StreamSession] = list(again)
        try:
            connect_all(inlets)
            for spec, inlet in zip(self._specs, inlets[len(again) :], strict=True):
                opened.append(self._registry.entry(inlet, spec.stream_id))
        except BaseException:
            for inlet in inlets:
                inlet.disconnect()
            raise
        self._specs = []
        for s in opened:
            s.active = True
        self._ticker.active = opened
        self._ticker.reset()
        self._stop.clear()
        # The scheduler's matmuls (features) are small: a second OpenBLAS thread only spins
        # after each one (59 % of a core at 64 headsets, measured) and starves the LSL threads.
        threadpool_limits(1, user_api="blas")
        self._thread = threading.Thread(target=self._run, name="eegstream-multi", daemon=True)
        self._thread.start()
        if self.discover:
            self._discovery = threading.Thread(
                target=self._finder.run, args=(self._stop,), name="eegstream-discover", daemon=True
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
        self._commands.drain()
        if was_running:
            failed = self._ticker.stop_all(report=self._error is None)
            self._error = self._error or failed  # the sink failed: like a thread failure
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
        streams = self._registry.snapshot()
        per = {s.stream_id: s.status() for s in streams}
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
                **self._ticker.figures(streams),
                "poll_interval_s": self.poll_interval,
            },
            "rejected": self._finder.rejected(),
            "error": first or (errors[0] if errors else None),
            "uptime_s": self._clock.unix() - self._ticker.started,
        }

    def latest(
        self, seconds: float, stream_id: str | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Copies of the newest ``seconds`` of a stream (default: the first attached one)."""
        s = self._registry.get(stream_id)
        if s is None:
            return np.empty((0, len(ELECTRODES))), np.empty(0)
        with s.lock:
            return s.detector.ring.latest(max(0, int(round(seconds * FS))))

    # --- the scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        ticker = self._ticker
        try:
            while not self._stop.is_set():
                t0 = self._clock.monotonic()
                self._run_commands()
                ticker.tick()
                ticker.housekeeping(t0)
                elapsed = self._clock.monotonic() - t0
                ticker.tick_s.append(elapsed)
                if elapsed < self.poll_interval:
                    self._stop.wait(self.poll_interval - elapsed)
        except Exception as exc:  # stored, shown in status(), raised by check()/stop()
            log.exception("multi-stream pipeline failed")
            self._error = exc
            detail = {"error": f"{type(exc).__name__}: {exc}"}
            for s in ticker.active:
                try:
                    s.emit(s.message("stopped", detail=detail))
                except Exception:  # the sink itself may be what failed
                    log.debug("could not report the failure of %s", s.stream_id, exc_info=True)

    def _drop(self, s: StreamSession) -> None:
        """Remove a stream entirely (``remove``)."""
        self._ticker.remove(s)
        self._registry.retire(s)

    def _run_commands(self) -> None:
        for cmd in self._commands.pending():
            try:
                if isinstance(cmd, Attach):
                    self._ticker.attach(cmd.session)
                else:
                    dropped = self._streams.get(cmd.stream_id)
                    if dropped is not None:
                        self._drop(dropped)
            finally:
                cmd.done.set()
