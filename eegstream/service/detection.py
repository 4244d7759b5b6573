"""The service's detection side: model bundle + engine + one ``StreamPipeline`` per stream.

``preload(settings)`` does the slow and fallible parts up front (load the bundle, build and warm
the engine, resolve the streams), so ``eegstream serve`` fails with one clear line before it
binds a port; it returns the ``PipelineFactory`` the app calls once its event loop runs.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from eegstream.bundle import ModelBundle
from eegstream.detector import Detector
from eegstream.engines import load_engine
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.service.api import ModelInfo, PipelineFactory, Sink
from eegstream.service.metrics import Metrics, TimedEngine
from eegstream.settings import ELECTRODES, Settings
from eegstream.stream.inlet import EEGInlet, resolve_stream
from eegstream.stream.pipeline import StreamPipeline

if TYPE_CHECKING:
    import pylsl

log = logging.getLogger(__name__)


def _queries(settings: Settings) -> list[tuple[str | None, str | None, str | None]]:
    """``(name, type, source_id)`` of each stream to attach."""
    if settings.discover:
        raise EegstreamError(
            "--discover (attach every EEG stream that appears) is not available in this version; "
            "name the streams with --stream-name (repeatable)"
        )
    names: list[str | None] = list(settings.stream_name) or [None]
    if settings.source_id is not None and len(names) > 1:
        raise EegstreamError(
            f"--source-id {settings.source_id} names one stream but --stream-name was given "
            f"{len(names)} times ({', '.join(str(n) for n in names)}); drop --source-id or give "
            "one --stream-name"
        )
    return [(name, settings.stream_type, settings.source_id) for name in names]


class DetectionService:
    """Runs detection on every configured stream and reports to the app (an ``EventSource``).

    Parameters
    ----------
    settings, sink, metrics
        As the app hands them to its pipeline factory.
    bundle, engine, infos
        Already loaded / resolved parts (``preload``); whatever is missing is made here. The
        engine is owned either way: ``stop`` closes it.
    """

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        metrics: Metrics,
        *,
        bundle: ModelBundle | None = None,
        engine: Engine | None = None,
        infos: list[pylsl.StreamInfo] | None = None,
    ) -> None:
        queries = _queries(settings)
        bundle = bundle if bundle is not None else ModelBundle.load(settings.model_dir)
        if engine is None:
            engine = load_engine(settings.backend, bundle, settings.max_batch)
            engine.warmup()
        self._engine = engine
        self.model = ModelInfo(bundle.name, bundle.sha256, engine.name)
        timed = TimedEngine(engine, metrics)
        if infos is None:
            infos = [
                resolve_stream(name, stype, sid, settings.resolve_timeout)
                for name, stype, sid in queries
            ]
        self.pipelines: list[StreamPipeline] = []
        for (name, stype, sid), info in zip(queries, infos, strict=True):
            inlet = EEGInlet(name, stype, sid, info=info, resolve_timeout=settings.resolve_timeout)
            stream_id = str(info.name())
            detector = Detector(timed, bundle.features, settings, stream_id)
            self.pipelines.append(StreamPipeline(inlet, detector, sink, stream_id=stream_id))
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Connect every stream and start its thread (errors name the stream)."""
        for pipeline in self.pipelines:
            pipeline.start()

    def stop(self) -> None:
        """Stop every pipeline (releasing its inlet), then close the engine; safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            for pipeline in self.pipelines:
                try:
                    pipeline.stop()
                except Exception:  # one stream's failure must not keep the others running
                    log.exception("pipeline of stream %s failed", pipeline.stream_id)
        finally:
            self._engine.close()

    def status(self) -> dict[str, Any]:
        """The engine, each stream's status, and the first error, if any."""
        streams = {p.stream_id: p.status() for p in self.pipelines}
        errors = [s["last_error"] for s in streams.values() if s.get("last_error")]
        return {
            "engine": self.model.backend,
            "streams": streams,
            "error": errors[0] if errors else None,
        }

    def latest(self, seconds: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The newest samples of the first stream (the dashboard shows one headset)."""
        if not self.pipelines:
            return np.empty((0, len(ELECTRODES))), np.empty(0)
        return self.pipelines[0].latest(seconds)


def preload(settings: Settings) -> PipelineFactory:
    """Load the bundle and the engine and resolve the streams now; return the app's factory."""
    queries = _queries(settings)
    bundle = ModelBundle.load(settings.model_dir)
    engine = load_engine(settings.backend, bundle, settings.max_batch)
    try:
        engine.warmup()
        infos = [
            resolve_stream(name, stype, sid, settings.resolve_timeout)
            for name, stype, sid in queries
        ]
    except BaseException:
        engine.close()
        raise
    log.info("model %s (%s) on %s", bundle.name, bundle.sha256[:12], engine.name)

    def factory(s: Settings, sink: Sink, metrics: Metrics) -> DetectionService:
        return DetectionService(s, sink, metrics, bundle=bundle, engine=engine, infos=infos)

    return factory
