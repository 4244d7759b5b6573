"""The service's detection side: model bundle + engine + one multi-stream pipeline.

Every ``serve`` runs one :class:`~eegstream.live.scheduler.MultiStreamPipeline`, whether it watches
one headset, several (``--stream-name`` repeated) or whatever appears (``--discover``): the
windows due on all streams go to the engine in one call.

``preload(settings)`` does the slow and fallible parts up front (load the bundle, build and warm
the engine, resolve the named streams), so ``eegstream serve`` fails with one clear line before
it binds a port; it returns the ``PipelineFactory`` the app calls once its event loop runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from eegstream.bundle import ModelBundle
from eegstream.engines import load_engine
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.live.contract import EventSource, ModelInfo, Sink
from eegstream.live.scheduler import MultiStreamPipeline, StreamSpec
from eegstream.service.metrics import Metrics, TimedEngine
from eegstream.settings import Settings
from eegstream.stream.inlet import resolve_stream

if TYPE_CHECKING:  # the app calls this module's factories; it is not imported back at run time
    from eegstream.service.state import PipelineFactory

log = logging.getLogger(__name__)

#: Scheduler tick of the service (see :class:`MultiStreamPipeline`, ``poll_interval``).
POLL_INTERVAL_S = 0.005


def stream_specs(settings: Settings) -> list[StreamSpec]:
    """The streams named by the settings (none with ``--discover`` and no ``--stream-name``).

    No name and no discovery means one stream found by type (and ``--source-id``), as a
    single-headset user expects.
    """
    names: list[str | None] = list(settings.stream_name)
    if not names and not settings.discover:
        names = [None]
    if settings.source_id is not None and len(names) > 1:
        raise EegstreamError(
            f"--source-id {settings.source_id} names one stream but --stream-name was given "
            f"{len(names)} times ({', '.join(str(n) for n in names)}); drop --source-id or give "
            "one --stream-name"
        )
    return [
        StreamSpec(name=name, stype=settings.stream_type, source_id=settings.source_id)
        for name in names
    ]


def resolve_specs(specs: Sequence[StreamSpec], timeout: float) -> list[StreamSpec]:
    """The same specs with their streams resolved now (an error names the missing one)."""
    return [replace(s, info=resolve_stream(s.name, s.stype, s.source_id, timeout)) for s in specs]


def pipeline_factory(
    settings: Settings,
    bundle: ModelBundle,
    engine: Engine,
    specs: Sequence[StreamSpec] | None = None,
    *,
    poll_interval: float = POLL_INTERVAL_S,
) -> PipelineFactory:
    """The app's factory: one pipeline over ``bundle``'s features and the warmed-up ``engine``.

    ``specs`` default to :func:`stream_specs` (resolved when the pipeline starts); ``preload``
    passes them already resolved. The pipeline owns the engine: stopping it closes the engine.
    """
    chosen = list(stream_specs(settings) if specs is None else specs)

    def factory(s: Settings, sink: Sink, metrics: Metrics) -> MultiStreamPipeline:
        return MultiStreamPipeline(
            TimedEngine(engine, metrics),
            bundle.features,
            _with_profile(s),
            sink,
            streams=chosen,
            discover=s.discover,
            stream_type=s.stream_type,
            poll_interval=poll_interval,
            model=ModelInfo(bundle.name, bundle.sha256, engine.name, _profile_info(settings)),
            owns_engine=True,
        )

    return factory


def _profile_info(settings: Settings) -> dict[str, object] | None:
    """The profile shown in ``/status`` and on the dashboard."""
    if settings.profile is None:
        return None
    from eegstream.profile import load_profile

    prof = load_profile(settings.profile)
    return {"name": prof.name, "file": str(settings.profile), "thresholds": prof.thresholds}


def _with_profile(settings: Settings) -> Settings:
    """Settings carrying the profile's per-class thresholds (the detectors read them there)."""
    if settings.profile is None:
        return settings
    from eegstream.profile import load_profile

    th = load_profile(settings.profile).thresholds
    return settings.model_copy(update={"class_thresholds": {**settings.class_thresholds, **th}})


def _load(settings: Settings) -> tuple[ModelBundle, Engine]:
    """The bundle and its engine, warmed up (closed again if the warm-up fails)."""
    bundle = ModelBundle.load(settings.model_dir)
    if settings.profile is not None:  # the person's baseline and thresholds (calibrate)
        from eegstream.profile import apply_profile

        bundle, _ = apply_profile(settings.profile, bundle, settings)
    engine = load_engine(settings.backend, bundle, settings.max_batch)
    try:
        engine.warmup()
    except BaseException:
        engine.close()
        raise
    log.info("model %s (%s) on %s", bundle.name, bundle.sha256[:12], engine.name)
    return bundle, engine


def build_pipeline(settings: Settings, sink: Sink, metrics: Metrics) -> EventSource:
    """Everything from the settings alone (the app's default when no factory is given)."""
    bundle, engine = _load(settings)
    return pipeline_factory(settings, bundle, engine)(settings, sink, metrics)


def preload(settings: Settings, *, poll_interval: float = POLL_INTERVAL_S) -> PipelineFactory:
    """Load the bundle and the engine and resolve the named streams now; return the factory."""
    specs = stream_specs(settings)
    bundle, engine = _load(settings)
    try:
        resolved = resolve_specs(specs, settings.resolve_timeout)
    except BaseException:
        engine.close()
        raise
    return pipeline_factory(settings, bundle, engine, resolved, poll_interval=poll_interval)
