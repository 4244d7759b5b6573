"""Prometheus metrics of one service instance, in a registry of its own.

A per-app ``CollectorRegistry`` (never the global one) lets several apps live in one process
(tests) without clashing names, and makes ``/metrics`` show exactly this service.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from eegstream import __version__
from eegstream.engines.base import Engine
from eegstream.events import ArtifactEvent, Message

#: Engine call durations (s): TensorRT batch 1 is ~0.1 ms, ONNX Runtime CPU batch 64 ~5 ms.
_INFERENCE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
#: Artifact onset -> message published (s): the window alone needs 0.3 s after the onset.
_E2E_BUCKETS = (0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 5.0)
#: Detector emitted -> published by the hub (s): the thread hop and the event loop's backlog.
_HOP_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

#: Stream states counted as gaps in the data.
_GAP_STATES = frozenset({"gap", "lost"})


class Metrics:
    """The service's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "eegstream_events", "Artifacts detected (counted once, at onset)", ["label"], registry=r
        )
        self.messages = Counter(
            "eegstream_messages", "Messages published to clients", ["type"], registry=r
        )
        self.windows = Counter(
            "eegstream_windows_processed", "Windows classified by the engine", registry=r
        )
        self.inference = Histogram(
            "eegstream_inference_latency_seconds",
            "Duration of one engine call (one batch of windows)",
            buckets=_INFERENCE_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "eegstream_end_to_end_latency_seconds",
            "Artifact onset to the onset message being published to clients",
            buckets=_E2E_BUCKETS,
            registry=r,
        )
        self.publish_hop = Histogram(
            "eegstream_publish_latency_seconds",
            "Detector emitting a message to the hub publishing it",
            buckets=_HOP_BUCKETS,
            registry=r,
        )
        self.clients = Gauge(
            "eegstream_connected_clients", "Connected websocket clients", ["endpoint"], registry=r
        )
        self.dropped = Counter(
            "eegstream_clients_dropped", "Websocket clients dropped for being too slow", registry=r
        )
        self.stream_status = Counter(
            "eegstream_stream_status", "Stream status messages by status", ["status"], registry=r
        )
        self.gaps = Counter(
            "eegstream_stream_gaps",
            "Gaps in a stream's data (missing samples, lost stream)",
            registry=r,
        )
        self.faults = Counter(
            "eegstream_signal_faults",
            "Signal-fault spans (values beyond the fault limit)",
            registry=r,
        )
        self.info = Gauge(
            "eegstream_build_info",
            "Service version, model and engine (value 1)",
            ["version", "model_sha256", "backend"],
            registry=r,
        )
        for label in ("blink", "jaw_clench"):  # export zeros before the first event
            self.events.labels(label=label)
        for endpoint in ("events", "signal"):
            self.clients.labels(endpoint=endpoint).set(0)

    def set_model(self, sha256: str, backend: str) -> None:
        """Record which model and engine run (shown as labels of ``eegstream_build_info``)."""
        self.info.labels(version=__version__, model_sha256=sha256, backend=backend).set(1)

    def observe_message(
        self, message: Message, published_unix: float, published_lsl: float
    ) -> None:
        """Count a published message and its latencies."""
        self.messages.labels(type=message.type).inc()
        if isinstance(message, ArtifactEvent):
            self.publish_hop.observe(max(0.0, published_unix - message.detected_unix))
            if message.phase == "onset":
                self.events.labels(label=message.label).inc()
                self.end_to_end.observe(max(0.0, published_lsl - message.onset_lsl))
            return
        self.stream_status.labels(status=message.status).inc()
        if message.status in _GAP_STATES:
            self.gaps.inc()
        elif message.status == "signal_fault":
            self.faults.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return bytes(generate_latest(self.registry))


class TimedEngine:
    """An ``Engine`` that times every call and counts windows into ``Metrics``.

    Wrapping the engine keeps the detector free of metrics code: the histogram is fed from the
    pipeline thread (prometheus_client metrics are thread-safe).
    """

    def __init__(self, engine: Engine, metrics: Metrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self.name = engine.name
        self.max_batch = engine.max_batch

    def infer(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities, timed."""
        start = time.perf_counter()
        probs = self._engine.infer(features)
        self._metrics.inference.observe(time.perf_counter() - start)
        self._metrics.windows.inc(int(features.shape[0]))
        return probs

    def warmup(self) -> None:
        """Warm the wrapped engine (not timed: it is not real traffic)."""
        self._engine.warmup()

    def close(self) -> None:
        """Close the wrapped engine."""
        self._engine.close()
