"""ONNX Runtime engine: the CPU default, and onnxruntime-gpu's CUDA provider when asked for."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from eegstream.engines.base import BatchedEngine
from eegstream.errors import BackendUnavailableError, EegstreamError

log = logging.getLogger(__name__)

__all__ = ["OnnxRuntimeEngine"]

#: Intra-op threads on the CPU. Measured on the 2-core CI machine (AMD EPYC, ORT 1.32, the
#: exported CNN, best p50 of 6 rounds): batch 1: 1 thread 89.5 us, 2 threads 92.4 us; batch 64:
#: 3.32 ms vs 2.12 ms. One thread: live windows come one at a time per stream, and the other core
#: stays free for the LSL pull and the service (pass threads=2 for offline batch work).
CPU_THREADS: int = 1


class OnnxRuntimeEngine(BatchedEngine):
    """ONNX Runtime session tuned for small batches: sequential, one thread, all graph optimisations.

    Parameters
    ----------
    onnx_path
        ``model.onnx`` with one input ``[batch, electrodes, bins]`` and one output ``[batch, 3]``.
    max_batch
        Larger inputs are split into slices of this many windows.
    device
        ``"cpu"`` (default) or ``"cuda"`` (needs onnxruntime-gpu); the provider list is always
        given explicitly so ONNX Runtime never picks one on its own.
    threads
        Intra-op threads on the CPU (see :data:`CPU_THREADS`).
    """

    def __init__(
        self,
        onnx_path: Path,
        *,
        max_batch: int = 64,
        device: Literal["cpu", "cuda"] = "cpu",
        threads: int = CPU_THREADS,
    ) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise EegstreamError(
                f"ONNX model {path} does not exist; expected model.onnx inside the model bundle; "
                "pass --model with a bundle folder, or retrain with `eegstream train`"
            )
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailableError(
                    "ONNX Runtime has no CUDAExecutionProvider here; install onnxruntime-gpu "
                    "(pip install onnxruntime-gpu) on a machine with an NVIDIA GPU"
                )
            providers: list[str] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session: Any = ort.InferenceSession(
                str(path), sess_options=opts, providers=providers
            )
        except Exception as exc:  # ORT raises its own exception types from C++ (InvalidGraph, ...)
            raise EegstreamError(
                f"ONNX Runtime cannot load {path}: {exc}; the file is corrupt or not an ONNX "
                "model; re-export the bundle with `eegstream train`"
            ) from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 3:
            raise EegstreamError(
                f"{path}: expected one input [batch, electrodes, bins] and one output "
                f"[batch, classes]; got inputs {[(i.name, i.shape) for i in inputs]} and "
                f"outputs {[(o.name, o.shape) for o in outputs]}; re-export the bundle"
            )
        dims = inputs[0].shape[1:]
        if not all(isinstance(d, int) for d in dims):
            raise EegstreamError(
                f"{path}: input {inputs[0].name} must have fixed electrode and bin dimensions; "
                f"got {inputs[0].shape}; re-export the bundle"
            )
        self._input = str(inputs[0].name)
        self._output = str(outputs[0].name)
        self.shape: tuple[int, int] = (int(dims[0]), int(dims[1]))
        self.max_batch = max_batch
        self.device = device
        self.providers = list(self._session.get_providers())
        self.name = "onnxruntime" if device == "cpu" else "onnxruntime-cuda"
        self._closed = False
        log.debug("ONNX Runtime %s: %s with providers %s", ort.__version__, path, self.providers)

    def _run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = self._session.run([self._output], {self._input: x})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        """Drop the session (ONNX Runtime frees its memory with it); safe to call twice."""
        self._closed = True
        self._session = None
