"""``eegstream bench``: the feature path, every engine and the original pipeline, timed in one run.

Everything is measured in one process on the same random windows, so the ratios compare like with
like: ``speedup_vs_original`` is the per-window cost of the original pipeline (a Python loop over
10 electrodes of baseline, ``butter`` + ``lfilter``, ``welch`` and standardisation, then Keras
``model.predict`` on 10 separate inputs) over ours (vectorised features + ONNX Runtime, batch 1,
CPU). Latencies are medians (p50) and 99th percentiles over many calls after a warm-up.

The end-to-end multi-headset and soak benchmarks (``--e2e``, ``--soak``) are in
:mod:`eegstream.bench_e2e`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from eegstream.bundle import ModelBundle
from eegstream.engines import ENGINE_NAMES, Engine, load_engine, tensorrt_available
from eegstream.errors import BackendUnavailableError, EegstreamError
from eegstream.settings import BAND, ELECTRODES, FILTER_ORDER, FS, N_BINS, WINDOW

log = logging.getLogger(__name__)

__all__ = ["BenchConfig", "benchmark"]

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: Windows in the pool every measurement draws from.
POOL = 512
#: The batch the throughput figures use.
BATCH = 64


class BenchConfig:
    """How many calls each measurement makes (``quick`` is for tests and smoke runs)."""

    def __init__(self, calls: int = 1000, *, quick: bool = False, progress: bool = True) -> None:
        if calls < 1:
            raise EegstreamError(f"bench --calls must be >= 1; got {calls}")
        self.quick = quick
        self.progress = progress
        self.calls = min(calls, 30) if quick else calls  #: batch-1 calls per engine
        self.warmup = 5 if quick else 50  #: untimed calls before each series
        self.batch_reps = 5 if quick else 200  #: batch-64 calls per engine
        self.feature_reps = 5 if quick else 50  #: calls of the 512-window feature batch
        self.original_calls = min(self.calls, 3 if quick else 50)  #: the original is slow
        self.settle_s = 0.1 if quick else 1.0  #: idle pause before each timed phase
        self.predict_calls = min(self.calls, 3 if quick else 100)  #: Keras model.predict calls


# --- timing helpers --------------------------------------------------------------------------


def _settle(cfg: BenchConfig) -> None:
    """Pause before a timed phase, so the one before cannot slow it down.

    TensorFlow's and OpenBLAS's worker threads keep spinning for a while after they ran; on the
    2-core CI machine, ONNX Runtime's batch-1 p50 measured right after Keras calls was 165 us
    instead of 92 us (features: 86 instead of 35 us). One second of idle time brings it back.
    """
    time.sleep(cfg.settle_s)


def _time_us(fn: Callable[[int], object], calls: int, desc: str, cfg: BenchConfig) -> F64:
    """Wall time of each ``fn(i)`` call in microseconds (the progress bar is outside the timing)."""
    out = np.empty(calls, dtype=np.float64)
    bar = tqdm(
        range(calls), desc=desc, file=sys.stderr, leave=False, disable=not cfg.progress,
        mininterval=0.5,
    )  # fmt: skip
    for i in bar:
        t0 = time.perf_counter_ns()
        fn(i)
        out[i] = time.perf_counter_ns() - t0
    return out / 1e3


def _r(x: float) -> float:
    """Round for the report: 4 significant digits is more than the noise allows."""
    return float(f"{x:.4g}")


# --- the machine -----------------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _matmul_gflops(reps: int) -> float:
    """GFLOP/s of a float32 1024x1024 matrix product (numpy's BLAS, all cores).

    A practical arithmetic ceiling of this machine to set each engine's GFLOP/s against.
    """
    n = 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a @ b  # noqa: B018 -- warm-up: BLAS threads start
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b  # noqa: B018
        t.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(t)) / 1e9


def machine_info(cfg: BenchConfig) -> dict[str, Any]:
    """CPU, cores, Python and the versions of every library that takes part."""
    ok, trt_why = tensorrt_available()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "tensorrt": _version("tensorrt"),
        "pycuda": _version("pycuda"),
        "gpu": trt_why if ok else None,
        "matmul_gflops": _r(_matmul_gflops(3 if cfg.quick else 10)),
    }


# --- ours ------------------------------------------------------------------------------------


def _raw_windows(rng: np.random.Generator) -> F64:
    """Random 14-channel windows in uV around Emotiv-like electrode offsets (~4200 uV)."""
    offsets = rng.uniform(4000.0, 4400.0, size=(1, len(ELECTRODES), 1))
    return offsets + rng.normal(0.0, 15.0, size=(POOL, len(ELECTRODES), WINDOW))


def _bench_features(features: Callable[[F64], F32], raw: F64, cfg: BenchConfig) -> dict[str, float]:
    """Our feature path, with the baseline subtraction the live detector does first."""
    baseline = raw.mean(axis=(0, 2))[None, :, None]

    def run(windows: F64) -> F32:
        return features(windows - baseline)

    for _ in range(3):
        run(raw)
    batch = _time_us(lambda _: run(raw), cfg.feature_reps, "features x512", cfg)
    single = _time_us(lambda i: run(raw[i % POOL : i % POOL + 1]), cfg.calls, "features x1", cfg)
    return {
        "features_us_per_window": float(np.median(batch)) / POOL,
        "features_batch1_us": float(np.median(single)),
    }


def _bench_engine(engine: Engine, pool: F32, flops: float, cfg: BenchConfig) -> dict[str, Any]:
    """Batch-1 latency (p50, p99) and batch-64 throughput of one engine."""
    engine.warmup()
    singles = [pool[i : i + 1] for i in range(BATCH)]  # cycle through real feature windows
    batch = pool[:BATCH]
    for i in range(cfg.warmup):
        engine.infer(singles[i % BATCH])
    lat = _time_us(_cycle(engine.infer, singles), cfg.calls, f"{engine.name} x1", cfg)
    for _ in range(max(1, cfg.warmup // 10)):
        engine.infer(batch)
    big = _time_us(lambda _: engine.infer(batch), cfg.batch_reps, f"{engine.name} x{BATCH}", cfg)
    p50 = float(np.median(lat))
    per_s = BATCH / (float(np.median(big)) / 1e6)
    out: dict[str, Any] = {
        "batch1_p50_us": _r(p50),
        "batch1_p99_us": _r(float(np.percentile(lat, 99))),
        "batch1_mean_us": _r(float(lat.mean())),
        "batch1_calls": cfg.calls,
        "batch64_us_per_call": _r(float(np.median(big))),
        "batch64_windows_per_s": _r(per_s),
        "batch64_vs_batch1": _r(per_s * p50 / 1e6),
        "gflops": _r(flops * per_s / 1e9),
        "gflops_batch1": _r(flops / p50 / 1e3),
    }
    precision = getattr(engine, "precision", None)
    if precision is not None:
        out["precision"] = precision
    for method in ("eager", "predict"):  # Keras: the untraced call, and the original's way
        call: Callable[[F32], F32] | None = getattr(engine, method, None)
        if call is not None:
            call(singles[0])
            t = _time_us(_cycle(call, singles), cfg.predict_calls, f"keras {method}", cfg)
            out[f"batch1_{method}_p50_us"] = _r(float(np.median(t)))
            out[f"batch1_{method}_calls"] = cfg.predict_calls
    return out


def _cycle(call: Callable[[F32], F32], inputs: Sequence[F32]) -> Callable[[int], F32]:
    """``i -> call(inputs[i % len(inputs)])``: successive calls see different windows."""
    return lambda i: call(inputs[i % len(inputs)])


# --- the original pipeline -------------------------------------------------------------------


def _original_model(n_inputs: int, n_bins: int, n_classes: int) -> Any:
    """The original network: one input and one small CNN per electrode (random weights).

    Same layer sizes as :mod:`eegstream.model` (which fuses the heads into grouped convolutions);
    only its timing matters here.
    """
    from eegstream.engines.keras import _import_keras

    keras = _import_keras()
    from eegstream.model import (
        CONV_DROPOUT,
        DENSE_DROPOUT,
        DENSE_UNITS,
        HEAD_FILTERS,
        KERNEL,
    )

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = [keras.Input((n_bins, 1), name=f"electrode_{i}") for i in range(n_inputs)]
    heads = []
    for inp in inputs:  # model construction, once: not a hot path
        x = layers.Conv1D(HEAD_FILTERS[0], KERNEL, activation="relu")(inp)
        x = layers.Conv1D(HEAD_FILTERS[1], KERNEL, activation="relu")(x)
        x = layers.Dropout(CONV_DROPOUT)(x)
        x = layers.BatchNormalization()(x)
        heads.append(layers.Flatten()(x))
    x = layers.Concatenate()(heads)
    x = layers.Dense(DENSE_UNITS[0], activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(DENSE_DROPOUT)(x)
    x = layers.Dense(DENSE_UNITS[1], activation="relu")(x)
    out = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, out, name="original_multi_input_cnn")


def original_features(
    window: F64, baseline: F64, index: Sequence[int], mean: F64, std: F64
) -> list[F64]:
    """The original feature code for one window: a Python loop over the model electrodes.

    Deliberately unvectorised (it is what the benchmark compares against): baseline subtraction,
    ``butter`` designed anew and applied with ``lfilter`` in ``(b, a)`` form, ``welch``, then
    standardisation, giving one ``(1, bins, 1)`` input per electrode.
    """
    inputs = []
    for k, ch in enumerate(index):
        x = window[ch] - baseline[ch]
        b, a = signal.butter(FILTER_ORDER, BAND, btype="bandpass", fs=FS)
        y = signal.lfilter(b, a, x)
        _, p = signal.welch(y, fs=FS, nperseg=WINDOW)
        inputs.append(((p - mean[k]) / std[k]).reshape(1, N_BINS, 1))
    return inputs


def _bench_original(
    raw: F64, index: Sequence[int], psd: F32, n_classes: int, cfg: BenchConfig
) -> dict[str, Any]:
    """Per-window cost of the original pipeline: features loop + ``model.predict``."""
    model = _original_model(len(index), N_BINS, n_classes)
    baseline = raw.mean(axis=(0, 2))
    mean = psd.mean(axis=0).astype(np.float64)
    std = psd.std(axis=0).astype(np.float64) + 1e-12
    for i in range(2):  # the first calls trace the graphs
        inputs = original_features(raw[i], baseline, index, mean, std)
        model.predict(inputs, verbose=0)
        model.predict_on_batch(inputs)
    n = cfg.original_calls
    feat, pred, pob = np.empty(n), np.empty(n), np.empty(n)
    bar = tqdm(range(n), desc="original", file=sys.stderr, leave=False, disable=not cfg.progress)
    for i in bar:
        t0 = time.perf_counter_ns()
        inputs = original_features(raw[i % POOL], baseline, index, mean, std)
        t1 = time.perf_counter_ns()
        model.predict(inputs, verbose=0)
        t2 = time.perf_counter_ns()
        model.predict_on_batch(inputs)  # the cheapest Keras call, for a lower bound
        t3 = time.perf_counter_ns()
        feat[i], pred[i], pob[i] = (t1 - t0) / 1e3, (t2 - t1) / 1e3, (t3 - t2) / 1e3
    total = feat + pred
    return {
        "us_per_window": _r(float(np.median(total))),
        "p99_us": _r(float(np.percentile(total, 99))),
        "features_us_per_window": _r(float(np.median(feat))),
        "predict_us_per_window": _r(float(np.median(pred))),
        "predict_on_batch_us_per_window": _r(float(np.median(pob))),
        "us_per_window_predict_on_batch": _r(float(np.median(feat + pob))),
        "calls": n,
        "description": (
            "per window: Python loop over 10 electrodes of baseline subtraction, "
            "butter(5, 1-50 Hz) + lfilter (b, a), welch, standardisation; then Keras "
            "model.predict on 10 separate inputs (original multi-input CNN, random weights); "
            "us_per_window_predict_on_batch swaps predict for predict_on_batch (lower bound)"
        ),
    }


# --- live detection latency --------------------------------------------------------------------


def _bench_detector(bundle: ModelBundle, engine: Engine, cfg: BenchConfig) -> dict[str, Any]:
    """Latency of one live hop: a chunk of ``hop`` new samples in, its messages out.

    This is the detector's share of the path from pulling the last sample of a window to emitting
    the event (features, inference, event logic), fed a simulated recording hop by hop as a live
    headset delivers it (:class:`~eegstream.live.scheduler.MultiStreamPipeline` ingests a stream's
    chunks and classifies its due windows each tick; alone, that is :meth:`Detector.process`).
    """
    from eegstream.detector import Detector
    from eegstream.settings import load_settings
    from eegstream.simulate import simulate_recording

    settings = load_settings()
    rec = simulate_recording(60.0 if cfg.quick else 180.0, seed=4242)
    detector = Detector(engine, bundle.features, settings, "bench")
    hop = settings.hop
    lat: list[float] = []
    emitting: list[float] = []
    for a in tqdm(
        range(0, rec.n_samples - hop + 1, hop),
        desc="detector",
        file=sys.stderr,
        leave=False,
        disable=cfg.quick,
    ):
        t0 = time.perf_counter()
        out = detector.process(rec.data[a : a + hop], rec.timestamps[a : a + hop])
        dt = (time.perf_counter() - t0) * 1e6
        lat.append(dt)
        if any(m.type == "artifact" for m in out):
            emitting.append(dt)
    arr = np.asarray(lat)
    ev = np.asarray(emitting)
    return {
        "hop_samples": hop,
        "calls": int(arr.size),
        "hop_p50_us": _r(float(np.median(arr))),
        "hop_p99_us": _r(float(np.percentile(arr, 99))),
        "event_hop_p50_us": _r(float(np.median(ev))) if ev.size else None,
        "event_hop_p99_us": _r(float(np.percentile(ev, 99))) if ev.size else None,
        "event_hops": int(ev.size),
        "description": "Detector.process on one hop of samples (features + ONNX Runtime + events)",
    }


def _bench_tick(bundle: ModelBundle, engine: Engine, cfg: BenchConfig) -> dict[str, Any]:
    """CPU per window of the scheduler's tick across many streams, LSL left out.

    Why: with many headsets the per-stream Python of a tick (ingest, checks, applying the
    decisions), not inference, decided how many a core serves. ``Ticker.tick`` runs over
    :class:`~eegstream.live.memory.MemoryInlet` sessions fed 8-sample chunks of simulated
    subjects (the real detector, features and ONNX Runtime), after the 30 s signal-baseline
    warm-up; every stream's chunk in one tick (``all``) or an eighth of them per tick
    (``eighth``, staggered like real headsets). Three consecutive spans each; median and range.
    """
    from eegstream.detector import Detector
    from eegstream.live.memory import MemoryInlet, StepClock
    from eegstream.live.session import StreamSession
    from eegstream.live.ticker import Ticker
    from eegstream.settings import load_settings
    from eegstream.simulate import simulate_recording
    from eegstream.stream.inlet import Chunk

    settings = load_settings()
    n, hop = (16 if cfg.quick else 128), settings.hop
    warm_s, span_s, spans = (32.0, 1.0, 3) if cfg.quick else (40.0, 10.0, 3)
    length = warm_s + 2 * spans * span_s + 2.0
    recs = [
        simulate_recording(length, 9000 + k, blink_rate=20.0, clench_rate=10.0) for k in range(4)
    ]
    clock = StepClock()
    ticker = Ticker(engine, bundle.features, clock=clock)
    feeds: list[tuple[MemoryInlet, Any, int]] = []
    for i in range(n):
        inlet = MemoryInlet(f"bench-{i}")
        det = Detector(engine, bundle.features, settings, f"bench-{i}", clock=None)
        ticker.attach(
            StreamSession(f"bench-{i}", f"bench-{i}", inlet, det, lambda m: None, clock=clock)
        )
        feeds.append((inlet, recs[i % 4], (i // 4) * 37))  # subjects shared, offset in time
    hop_s = hop / FS

    def run(first: int, hops: int, groups: int) -> float:
        """Seconds of CPU per window over ``hops`` hops of every stream."""
        w0, t0 = ticker.windows, time.process_time()
        for j in range(first, first + hops):
            for g in range(groups):
                for q in range(g, n, groups):
                    inlet, rec, off = feeds[q]
                    a = off + j * hop
                    inlet.feed(Chunk(rec.data[a : a + hop], rec.timestamps[a : a + hop]))
                clock.t += hop_s / groups
                ticker.tick()
        return (time.process_time() - t0) / max(1, ticker.windows - w0)

    hops_warm, hops_span = int(warm_s / hop_s), int(span_s / hop_s)
    out: dict[str, Any] = {"streams": n, "span_s": span_s, "spans": spans}
    with threadpool_limits(1, user_api="blas"):  # as MultiStreamPipeline.start sets it
        run(0, hops_warm, 1)
        pos = hops_warm
        for label, groups in (("all", 1), ("eighth", 8)):
            us = []
            for _ in tqdm(range(spans), desc=f"tick ({label})", file=sys.stderr, leave=False,
                          disable=cfg.quick or not cfg.progress):  # fmt: skip
                us.append(run(pos, hops_span, groups) * 1e6)
                pos += hops_span
            out[label] = {
                "windows_per_tick": n // groups,
                "us_per_window_p50": _r(float(np.median(us))),
                "us_per_window_min": _r(min(us)),
                "us_per_window_max": _r(max(us)),
            }
    out["description"] = (
        "Ticker.tick over in-memory sessions (detector + features + ONNX Runtime, no LSL): "
        "process CPU time per window"
    )
    return out


# --- the whole report ------------------------------------------------------------------------


def _engines_to_run(backend: str) -> list[str]:
    """ONNX Runtime always (it is 'ours'); ``auto`` adds every other engine that can run."""
    if backend == "auto":
        return ["onnxruntime", *[n for n in ENGINE_NAMES if n != "onnxruntime"]]
    if backend not in ENGINE_NAMES:
        raise EegstreamError(
            f"bench --backend must be auto or one of {', '.join(ENGINE_NAMES)}; got {backend!r}"
        )
    return list(dict.fromkeys(["onnxruntime", backend]))


def benchmark(
    bundle: ModelBundle, *, backend: str = "auto", cfg: BenchConfig | None = None
) -> dict[str, Any]:
    """Run every measurement and return the JSON-ready report.

    With ``backend="auto"`` engines that cannot run are listed under ``skipped`` with the reason;
    an engine named explicitly that cannot run raises
    :class:`~eegstream.errors.BackendUnavailableError`.
    """
    cfg = cfg or BenchConfig()
    loaded, skipped = _load_engines(bundle, backend)
    try:
        return _measure(bundle, loaded, skipped, cfg)
    finally:
        for engine in loaded.values():
            engine.close()


def _load_engines(bundle: ModelBundle, backend: str) -> tuple[dict[str, Engine], dict[str, str]]:
    """Every engine first, so a missing one fails the run before minutes of measuring."""
    loaded: dict[str, Engine] = {}
    skipped: dict[str, str] = {}
    try:
        for name in _engines_to_run(backend):
            try:
                loaded[name] = load_engine(name, bundle, max_batch=BATCH)
            except BackendUnavailableError as exc:
                if backend != "auto":
                    raise
                skipped[name] = str(exc)
                log.info("bench: skipping %s: %s", name, exc)
    except BaseException:
        for engine in loaded.values():
            engine.close()
        raise
    return loaded, skipped


def _measure(
    bundle: ModelBundle, loaded: dict[str, Engine], skipped: dict[str, str], cfg: BenchConfig
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    raw = _raw_windows(rng)
    flops = float(bundle.flops_per_window)
    report: dict[str, Any] = {
        "machine": machine_info(cfg),
        "model": {"dir": str(bundle.dir), "sha256": bundle.sha256},
        "flops_per_window": bundle.flops_per_window,
        "quick": cfg.quick,
    }
    _settle(cfg)
    feats = _bench_features(bundle.features, raw, cfg)
    report["features_us_per_window"] = _r(feats["features_us_per_window"])
    report["features_batch1_us"] = _r(feats["features_batch1_us"])
    baseline = raw.mean(axis=(0, 2))[None, :, None]
    pool = bundle.features(raw - baseline)

    engines: dict[str, Any] = {}
    for name, engine in loaded.items():
        _settle(cfg)
        stats = _bench_engine(engine, pool, flops, cfg)
        stats["e2e_batch1_us"] = _r(feats["features_batch1_us"] + stats["batch1_p50_us"])
        engines[name] = stats
    report["engines"] = engines
    report["skipped"] = skipped

    ort = engines["onnxruntime"]
    ours_us = feats["features_batch1_us"] + ort["batch1_p50_us"]
    report["ours"] = {
        "us_per_window": _r(ours_us),
        "features_us": _r(feats["features_batch1_us"]),
        "inference_us": ort["batch1_p50_us"],
        "engine": "onnxruntime (CPU), batch 1",
        "batched_us_per_window": _r(
            feats["features_us_per_window"] + 1e6 / ort["batch64_windows_per_s"]
        ),
    }
    report["batch64_vs_batch1"] = ort["batch64_vs_batch1"]
    # The most batching can gain on this machine: batch 64 at the machine's measured matmul rate
    # (every core, all arithmetic, no overhead) over what batch 1 already achieves.
    matmul = report["machine"].get("matmul_gflops")
    report["batch64_vs_batch1_bound"] = (
        _r(matmul / ort["gflops_batch1"]) if matmul and ort["gflops_batch1"] else None
    )
    _settle(cfg)
    report["detector"] = _bench_detector(bundle, loaded["onnxruntime"], cfg)
    _settle(cfg)
    report["tick"] = _bench_tick(bundle, loaded["onnxruntime"], cfg)
    try:
        _settle(cfg)
        report["original"] = _bench_original(
            raw, bundle.features.index.tolist(), bundle.features.psd(raw), len(bundle.classes), cfg
        )
        original = report["original"]
        report["speedup_vs_original"] = _r(original["us_per_window"] / ours_us)
        report["speedup_vs_original_predict_on_batch"] = _r(
            original["us_per_window_predict_on_batch"] / ours_us
        )
    except BackendUnavailableError as exc:  # no TensorFlow: the original cannot be rebuilt
        report["original"] = {"skipped": str(exc)}
        report["speedup_vs_original"] = None
        report["speedup_vs_original_predict_on_batch"] = None
    report["notes"] = [
        f"latencies: median (p50) and p99 of {cfg.calls} batch-1 calls after {cfg.warmup} "
        f"warm-up calls; batch-{BATCH} throughput from the median of {cfg.batch_reps} calls",
        f"original pipeline timed over {report['original'].get('calls', 0)} windows only "
        "(it is slow); median in original.us_per_window, spread in original.p99_us",
        "ours = vectorised features of one window + ONNX Runtime batch 1 on the CPU; "
        "speedup_vs_original = original.us_per_window / ours.us_per_window",
    ]
    return report
