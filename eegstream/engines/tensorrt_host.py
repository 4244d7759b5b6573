"""What TensorRT needs from the machine: can it run here, where plans are cached, its logger.

Split from ``engines/tensorrt.py`` (the engine) so that the checks every machine makes (``auto``
asks :func:`tensorrt_available` on each start) stay apart from the GPU-only build and runtime code.
``tensorrt`` and ``pycuda`` are imported inside the functions, so this module imports anywhere.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("eegstream.engines.tensorrt")  # TensorRT's messages under the engine's name

__all__ = ["cache_dir", "fast_fp16", "make_logger", "plan_name", "tensorrt_available"]

_INSTALL_HINT = "install it with pip install 'eegstream[gpu]' on a machine with an NVIDIA GPU"


def tensorrt_available() -> tuple[bool, str]:
    """``(True, "TensorRT x on GPU")`` when TensorRT can run here, else ``(False, why not)``.

    Checks, in order, the ``tensorrt`` package, ``pycuda``, a CUDA driver and a device, so the
    reason names the first thing missing.
    """
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:
        return False, f"the tensorrt package is not installed ({exc}); {_INSTALL_HINT}"
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError) as exc:
        return False, f"pycuda is not installed or finds no CUDA driver ({exc}); {_INSTALL_HINT}"
    try:
        cuda.init()
        count = int(cuda.Device.count())
        gpu = str(cuda.Device(0).name()) if count else ""
    except cuda.Error as exc:
        return False, f"no usable CUDA driver ({exc}); check nvidia-smi and the NVIDIA driver"
    if count == 0:
        return False, "no CUDA device found; check nvidia-smi (in Docker: run with --gpus all)"
    return True, f"TensorRT {trt.__version__} on {gpu}"


def cache_dir() -> Path:
    """Where plans are cached: ``$EEGSTREAM_CACHE/trt``, else ``~/.cache/eegstream/trt``."""
    root = os.environ.get("EEGSTREAM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "eegstream") / "trt"


def fast_fp16(compute_capability: tuple[int, int]) -> bool:
    """GPUs with full-rate FP16 arithmetic (TensorRT's own list: 5.3, 6.0, 6.2 and 7.0 on)."""
    return compute_capability in {(5, 3), (6, 0), (6, 2)} or compute_capability >= (7, 0)


def plan_name(digest: str, trt_version: str, gpu: str, precision: str, max_batch: int) -> str:
    """The cached plan's file name: every input that changes the plan is in it."""
    gpu_slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-") or "gpu"
    return f"{digest[:16]}-trt{trt_version}-{gpu_slug}-{precision}-b{max_batch}.plan"


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that forwards into this package's logger (no direct stderr output)."""
    levels = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.ERROR,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.DEBUG,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG - 5,
    }

    class _Logger(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # pybind trampolines need the explicit base init

        def log(self, severity: Any, msg: str) -> None:
            log.log(levels.get(severity, logging.WARNING), "TensorRT: %s", msg)

    return _Logger()
