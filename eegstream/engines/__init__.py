"""Inference backends, chosen by :func:`load_engine`; heavy ones import only when chosen.

One module per backend: ``onnxruntime.py`` (CPU, or onnxruntime-gpu's CUDA provider),
``tensorrt.py`` (TensorRT 10+ through pycuda) and ``keras.py`` (the reference). The helpers below
are shared by all three, so each engine checks its input and splits large batches the same way.
"""

from __future__ import annotations

import logging

from eegstream.engines.base import BundleLike, Engine, check_features, infer_in_batches
from eegstream.engines.tensorrt_host import tensorrt_available  # stdlib only: cheap to import
from eegstream.errors import BackendUnavailableError, EegstreamError
from eegstream.settings import BACKENDS

log = logging.getLogger(__name__)

__all__ = [
    "ENGINE_NAMES",
    "BundleLike",
    "Engine",
    "check_features",
    "infer_in_batches",
    "load_engine",
    "tensorrt_available",
]

#: Engines :func:`load_engine` can build by name (``auto`` picks one of the first two).
#: ``onnxruntime-cuda`` is ONNX Runtime's CUDA provider (needs ``onnxruntime-gpu``).
ENGINE_NAMES: tuple[str, ...] = tuple(b for b in BACKENDS if b != "auto")  #: the one list


def _onnxruntime_cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def load_engine(name: str, bundle: BundleLike, max_batch: int = 64) -> Engine:
    """Build the engine called ``name`` (``auto`` or one of :data:`ENGINE_NAMES`) for ``bundle``.

    ``auto`` is TensorRT when it can actually run (library, pycuda and a CUDA device), else
    ONNX Runtime on the CPU. An engine asked for by name that cannot run raises
    :class:`~eegstream.errors.BackendUnavailableError` naming what is missing: it never falls
    back silently.
    """
    if max_batch < 1:
        raise EegstreamError(f"max_batch must be >= 1; got {max_batch}")
    if name == "auto":
        ok, why = tensorrt_available()
        if ok:
            log.info("backend auto: TensorRT can run (%s)", why)
            name = "tensorrt"
        else:
            log.info("backend auto: using ONNX Runtime on the CPU; TensorRT cannot run: %s", why)
            name = "onnxruntime"
    if name == "tensorrt":
        ok, why = tensorrt_available()
        if not ok:
            raise BackendUnavailableError(
                f"backend 'tensorrt' cannot run here: {why}; or choose --backend onnxruntime (CPU)"
            )
        from eegstream.engines.tensorrt import TensorRTEngine

        return TensorRTEngine.from_bundle(bundle, max_batch=max_batch)
    if name == "onnxruntime":
        from eegstream.engines.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(bundle.onnx_path, max_batch=max_batch)
    if name == "onnxruntime-cuda":
        if not _onnxruntime_cuda_available():
            raise BackendUnavailableError(
                "backend 'onnxruntime-cuda' cannot run here: ONNX Runtime has no "
                "CUDAExecutionProvider; install onnxruntime-gpu in place of onnxruntime "
                "(pip install onnxruntime-gpu) on a machine with an NVIDIA GPU, "
                "or choose --backend onnxruntime (CPU)"
            )
        from eegstream.engines.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(bundle.onnx_path, max_batch=max_batch, device="cuda")
    if name == "keras":
        from eegstream.engines.keras import KerasEngine

        return KerasEngine(bundle.keras_path, max_batch=max_batch)
    raise EegstreamError(
        f"unknown backend {name!r}; expected one of: auto, {', '.join(ENGINE_NAMES)}"
    )
