"""TensorRT engine: the bundle's ONNX built into a TensorRT plan and run through pycuda.

TensorRT 10 and 11 Python API only: the builder with an optimisation profile (batch 1..max),
``build_serialized_network``, then the tensor-name runtime API (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) on a pycuda stream with page-locked host buffers
and asynchronous copies. Batch 1 (the live case: one window per stream per hop) is replayed from
a CUDA graph when pycuda can capture one.

``tensorrt`` and ``pycuda`` are imported inside the functions that need them, so this module
imports on any machine; ``tensorrt_host.py`` says why TensorRT cannot run where it cannot
(:func:`tensorrt_available`), names the plan files and forwards TensorRT's log.
Plans are cached under ``$EEGSTREAM_CACHE/trt`` (default ``~/.cache/eegstream/trt``), keyed by
the hash of the ONNX file, the TensorRT version, the GPU, the precision and the maximum batch,
so any change of those rebuilds the plan. Plans are machine-specific: never commit them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from eegstream.engines.base import BatchedEngine, BundleLike
from eegstream.engines.tensorrt_host import (
    cache_dir,
    fast_fp16,
    make_logger,
    plan_name,
    tensorrt_available,
)
from eegstream.errors import EegstreamError

log = logging.getLogger(__name__)

__all__ = ["TensorRTEngine", "cache_dir", "tensorrt_available"]

Precision = Literal["auto", "fp32", "fp16"]

#: Builder scratch limit. The CNN needs well under 1 MiB; this only bounds the tactic search.
WORKSPACE_BYTES: int = 256 << 20
#: ONNX file the bundle may carry for TensorRT 11+, which takes precision from the graph itself.
FP16_ONNX_NAME: str = "model.fp16.onnx"


class TensorRTEngine(BatchedEngine):
    """A TensorRT execution context with fixed page-locked host and device buffers.

    Parameters
    ----------
    onnx_path
        ``model.onnx`` (FP32): one input ``[batch, electrodes, bins]``, one output ``[batch, 3]``.
    max_batch
        Top of the optimisation profile and size of the buffers; larger inputs are split.
    precision
        ``"auto"``: FP16 where the GPU runs it at full rate (TensorRT 10: the builder's FP16
        flag; TensorRT 11+, strongly typed: the bundle's ``model.fp16.onnx`` when present), else
        FP32. ``"fp32"``: strict FP32 (TF32 off), which matches ONNX Runtime to 1e-4.
        ``"fp16"``: FP16 or an error.
    fp16_onnx_path
        The FP16 graph for TensorRT 11+ (default: ``model.fp16.onnx`` beside ``onnx_path``).
    cuda_graph
        Replay batch 1 from a captured CUDA graph (captured in :meth:`warmup`, checked against
        the plain path, dropped with a warning if pycuda or the driver cannot capture).
    device
        CUDA device index.
    plan_dir
        Plan cache folder (default :func:`cache_dir`).
    """

    name = "tensorrt"

    def __init__(
        self,
        onnx_path: Path,
        *,
        max_batch: int = 64,
        precision: Precision = "auto",
        fp16_onnx_path: Path | None = None,
        cuda_graph: bool = True,
        device: int = 0,
        plan_dir: Path | None = None,
    ) -> None:
        import pycuda.driver as cuda
        import tensorrt as trt

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise EegstreamError(
                f"ONNX model {onnx_path} does not exist; expected model.onnx inside the model "
                "bundle; pass --model with a bundle folder, or retrain with `eegstream train`"
            )
        if precision not in ("auto", "fp32", "fp16"):
            raise EegstreamError(
                f"TensorRT precision must be auto, fp32 or fp16; got {precision!r}"
            )
        self._cuda = cuda
        self._trt = trt
        self._lock = threading.Lock()
        self._closed = True  # until every resource below exists
        self.max_batch = max_batch
        self._use_graph = cuda_graph
        self._graph: Any = None
        cuda.init()
        dev = cuda.Device(device)
        self.gpu = str(dev.name())
        # The primary context is the one TensorRT's runtime API uses too; pushed around each call
        # so the engine works from whichever thread calls it (the pipeline thread, the bench).
        self._ctx: Any = dev.retain_primary_context()
        self._ctx.push()
        try:
            self._logger = make_logger(trt)
            weak_typing = hasattr(trt.BuilderFlag, "FP16")  # gone in TensorRT 11 (strong typing)
            source, self.precision = self._choose_source(
                onnx_path,
                fp16_onnx_path or onnx_path.with_name(FP16_ONNX_NAME),
                precision,
                weak_typing,
                tuple(dev.compute_capability()),
            )
            onnx_bytes = source.read_bytes()
            digest = hashlib.sha256(onnx_bytes).hexdigest()
            self.plan_path = (plan_dir or cache_dir()) / plan_name(
                digest, str(trt.__version__), self.gpu, self.precision, max_batch
            )
            self._runtime: Any = trt.Runtime(self._logger)
            self._engine: Any = self._load_engine(onnx_bytes, source, weak_typing)
            self._setup_io()
        except BaseException:
            self._ctx.pop()
            self._ctx.detach()
            raise
        self._ctx.pop()
        self._closed = False
        log.info(
            "TensorRT %s engine on %s: %s, %s, batch 1..%d",
            trt.__version__,
            self.gpu,
            source.name,
            self.precision,
            max_batch,
        )

    @classmethod
    def from_bundle(
        cls, bundle: BundleLike, *, max_batch: int = 64, precision: Precision = "auto"
    ) -> TensorRTEngine:
        """The engine for a model bundle (its ``model.onnx``, and ``model.fp16.onnx`` if any)."""
        return cls(
            bundle.onnx_path,
            max_batch=max_batch,
            precision=precision,
            fp16_onnx_path=bundle.fp16_onnx_path,
        )

    # --- build or load the plan --------------------------------------------------------------

    def _choose_source(
        self,
        onnx_path: Path,
        fp16_onnx: Path,
        precision: Precision,
        weak_typing: bool,
        compute_capability: tuple[int, ...],
    ) -> tuple[Path, str]:
        """Which ONNX file to build from and the precision it gives."""
        if precision == "fp32":
            return onnx_path, "fp32"
        cc = (int(compute_capability[0]), int(compute_capability[1]))
        if weak_typing:
            if fast_fp16(cc):
                return onnx_path, "fp16"
            if precision == "fp16":
                raise EegstreamError(
                    f"TensorRT precision fp16 was asked for, but {self.gpu} (compute capability "
                    f"{cc[0]}.{cc[1]}) has no fast FP16; use precision auto or fp32"
                )
            return onnx_path, "fp32"
        if fp16_onnx.is_file():
            return fp16_onnx, "fp16"
        if precision == "fp16":
            raise EegstreamError(
                f"TensorRT {self._trt.__version__} builds FP16 only from an FP16 ONNX graph, and "
                f"{fp16_onnx} does not exist; export it with the bundle, or use precision auto "
                "or fp32"
            )
        return onnx_path, "fp32"

    def _load_engine(self, onnx_bytes: bytes, source: Path, weak_typing: bool) -> Any:
        """Deserialise the cached plan, or build (and cache) it when missing or stale."""
        if self.plan_path.is_file():
            engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
            if engine is not None:
                log.info("TensorRT plan loaded from %s", self.plan_path)
                return engine
            log.warning("TensorRT plan %s is unreadable; rebuilding it", self.plan_path)
        plan = self._build_plan(onnx_bytes, source, weak_typing)
        self._save_plan(plan)
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EegstreamError(
                f"TensorRT built a plan from {source} but cannot load it; run with -v to see "
                "TensorRT's log"
            )
        return engine

    def _build_plan(self, onnx_bytes: bytes, source: Path, weak_typing: bool) -> bytes:
        trt = self._trt
        log.info(
            "building the TensorRT plan from %s (%s); this takes a minute", source, self.precision
        )
        builder = trt.Builder(self._logger)
        # Flags 0: explicit batch is the only mode since TensorRT 10; on 10.x this network is
        # weakly typed, so the FP16 builder flag below applies; on 11+ it is strongly typed.
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EegstreamError(
                f"TensorRT cannot parse {source}: {errors}; re-export the bundle with "
                "`eegstream train`"
            )
        if network.num_inputs != 1 or network.num_outputs != 1:
            raise EegstreamError(
                f"{source}: expected one input and one output; got {network.num_inputs} and "
                f"{network.num_outputs}; re-export the bundle"
            )
        tensor = network.get_input(0)
        dims = tuple(int(d) for d in tensor.shape)
        if len(dims) != 3 or min(dims[1:]) < 1:
            raise EegstreamError(
                f"{source}: input {tensor.name} must be [batch, electrodes, bins] with fixed "
                f"electrodes and bins; got {dims}; re-export the bundle"
            )
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        profile = builder.create_optimization_profile()
        opt = max(1, self.max_batch // 2)
        profile.set_shape(
            tensor.name,
            (1, *dims[1:]),
            (opt, *dims[1:]),
            (self.max_batch, *dims[1:]),
        )
        config.add_optimization_profile(profile)
        if self.precision == "fp16" and weak_typing:
            if getattr(builder, "platform_has_fast_fp16", True):
                config.set_flag(trt.BuilderFlag.FP16)
        if self.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # TF32 rounds to 10 bits: not FP32 results
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EegstreamError(
                f"TensorRT could not build an engine from {source}; run with -v to see "
                "TensorRT's log"
            )
        return bytes(plan)

    def _save_plan(self, plan: bytes) -> None:
        """Write the plan atomically; a read-only cache only costs a rebuild next time."""
        tmp = self.plan_path.with_name(f"{self.plan_path.name}.{os.getpid()}.tmp")
        try:
            self.plan_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(plan)
            os.replace(tmp, self.plan_path)
            log.info("TensorRT plan cached at %s", self.plan_path)
        except OSError as exc:
            log.warning(
                "cannot cache the TensorRT plan at %s (%s); set EEGSTREAM_CACHE to a writable "
                "folder to skip the build next time",
                self.plan_path,
                exc,
            )

    # --- run ---------------------------------------------------------------------------------

    def _setup_io(self) -> None:
        """Find the I/O tensors by name and bind fixed buffers sized for ``max_batch``."""
        trt, cuda, engine = self._trt, self._cuda, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EegstreamError(
                f"TensorRT plan {self.plan_path} has inputs {inputs} and outputs {outputs}; "
                "expected one of each; delete the plan and re-export the bundle"
            )
        self._in_name, self._out_name = inputs[0], outputs[0]
        in_dims = tuple(int(d) for d in engine.get_tensor_shape(self._in_name))
        out_dims = tuple(int(d) for d in engine.get_tensor_shape(self._out_name))
        self.shape: tuple[int, int] = (in_dims[1], in_dims[2])
        self.n_classes = out_dims[-1]
        in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._in_name)))
        out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._out_name)))
        self._context: Any = engine.create_execution_context()
        self._stream: Any = cuda.Stream()
        self._h_in: Any = cuda.pagelocked_empty((self.max_batch, *self.shape), in_dtype)
        self._h_out: Any = cuda.pagelocked_empty((self.max_batch, self.n_classes), out_dtype)
        self._d_in: Any = cuda.mem_alloc(self._h_in.nbytes)
        self._d_out: Any = cuda.mem_alloc(self._h_out.nbytes)
        self._context.set_tensor_address(self._in_name, int(self._d_in))
        self._context.set_tensor_address(self._out_name, int(self._d_out))
        self._batch = 0  # batch size the context's input shape is set for

    def _run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        n = x.shape[0]
        with self._lock:
            self._ctx.push()
            try:
                self._h_in[:n] = x  # casts if the plan's input is FP16
                self._set_batch(n)
                if n == 1 and self._graph is not None:
                    self._graph.launch(self._stream)
                else:
                    self._enqueue(n)
                self._stream.synchronize()
                return np.array(self._h_out[:n], dtype=np.float32)  # copy: the buffer is reused
            finally:
                self._ctx.pop()

    def _set_batch(self, n: int) -> None:
        if n != self._batch:
            if not self._context.set_input_shape(self._in_name, (n, *self.shape)):
                raise EegstreamError(
                    f"TensorRT rejected batch {n}; the plan was built for 1..{self.max_batch}"
                )
            self._batch = n

    def _enqueue(self, n: int) -> None:
        """Copy in, run, copy out: all asynchronous on the engine's stream."""
        cuda = self._cuda
        cuda.memcpy_htod_async(self._d_in, self._h_in[:n], self._stream)
        if not self._context.execute_async_v3(self._stream.handle):
            raise EegstreamError("TensorRT execution failed; run with -v to see TensorRT's log")
        cuda.memcpy_dtoh_async(self._h_out[:n], self._d_out, self._stream)

    def warmup(self) -> None:
        """Run batch 1 and the largest batch, then capture the batch-1 CUDA graph."""
        super().warmup()
        if self._use_graph and self._graph is None:
            self._capture_graph()

    def _capture_graph(self) -> None:
        """Capture copy-in, execute and copy-out at batch 1 as one CUDA graph, and check it.

        Optional speed-up: any failure (an old pycuda without stream capture, a driver or plan
        that cannot be captured) is logged with its cause and batch 1 keeps the plain path.
        """
        if not hasattr(self._stream, "begin_capture"):
            log.info("this pycuda cannot capture CUDA graphs; batch 1 runs without one")
            return
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, *self.shape)).astype(np.float32)
        expected = self.infer(x)  # also leaves the context at batch 1, as capture requires
        try:
            with self._lock:
                self._ctx.push()
                try:
                    self._h_in[:1] = x
                    self._stream.begin_capture()
                    try:
                        self._enqueue(1)
                    finally:
                        graph = self._stream.end_capture()
                    self._graph = graph.instantiate()
                finally:
                    self._ctx.pop()
            got = self.infer(x)
        except Exception as exc:  # optional path: report the cause, keep the plain path
            log.warning("CUDA graph capture failed (%s); batch 1 runs without it", exc)
            self._graph = None
            return
        if not np.allclose(got, expected, rtol=0.0, atol=1e-6):
            log.warning("CUDA graph replay differs from the plain run; batch 1 runs without it")
            self._graph = None
            return
        log.info("batch 1 replays a captured CUDA graph")

    def close(self) -> None:
        """Free the context, engine, buffers and stream; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._ctx.push()
            try:
                self._stream.synchronize()
                self._graph = None
                self._context = None  # context before engine before runtime
                self._engine = None
                self._runtime = None
                self._d_in.free()
                self._d_out.free()
                self._h_in.base.free()
                self._h_out.base.free()
                self._h_in = self._h_out = None
                self._stream = None
            finally:
                self._ctx.pop()
                self._ctx.detach()
