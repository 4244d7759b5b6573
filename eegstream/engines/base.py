"""The engine interface every inference backend implements, and what all backends share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError


class BundleLike(Protocol):
    """What an engine needs from a model bundle (``eegstream.bundle.ModelBundle`` has it all)."""

    @property
    def onnx_path(self) -> Path:
        """``model.onnx``: input ``features`` float32 ``[batch, 10, 33]``, output ``probs``."""
        ...

    @property
    def keras_path(self) -> Path | None:
        """``model.keras`` for the reference engine; may be absent."""
        ...

    @property
    def fp16_onnx_path(self) -> Path | None:
        """``model.fp16.onnx`` (float16 graph for TensorRT 11+); may be absent."""
        ...

    @property
    def sha256(self) -> str:
        """Content hash of the bundle: the TensorRT plan cache key."""
        ...

    @property
    def meta(self) -> Mapping[str, Any]:
        """``model.json``."""
        ...


@runtime_checkable
class Engine(Protocol):
    """Maps standardised features ``float32[n, electrodes, bins]`` to probabilities ``float32[n, 3]``.

    ``n`` may be anything from 1 up; engines split batches larger than ``max_batch`` themselves.
    """

    name: str
    max_batch: int

    def infer(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities for each window."""
        ...

    def warmup(self) -> None:
        """Run a few dummy batches so the first real call is not slow."""
        ...

    def close(self) -> None:
        """Release native resources; safe to call twice."""
        ...


def check_features(
    features: npt.ArrayLike, shape: tuple[int, int], engine: str
) -> npt.NDArray[np.float32]:
    """Features as a C-contiguous float32 ``(n, electrodes, bins)`` array (no copy if already so).

    Every engine calls this first, so a wrong shape fails with the same clear message everywhere
    instead of deep inside a native runtime.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != shape:
        raise EegstreamError(
            f"{engine} engine: features must have shape (n, {shape[0]}, {shape[1]}) "
            f"(windows, electrodes, bins); got {x.shape}; build them with the bundle's "
            "FeaturePipeline"
        )
    return x


def infer_in_batches(
    run: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
    x: npt.NDArray[np.float32],
    max_batch: int,
) -> npt.NDArray[np.float32]:
    """Call ``run`` on slices of at most ``max_batch`` windows and join the results.

    The loop is over batches, never windows: engines have a fixed maximum batch (TensorRT's
    optimisation profile, the page-locked buffers), callers may pass any number of windows.
    """
    n = x.shape[0]
    if n <= max_batch:
        return run(x)
    return np.concatenate([run(x[i : i + max_batch]) for i in range(0, n, max_batch)])


class BatchedEngine(ABC):
    """What every backend does the same way: check the input, split batches, warm up.

    A backend sets ``name``, ``max_batch``, ``shape`` and ``_closed`` and implements ``_run``
    (one call of at most ``max_batch`` windows) and ``close``.
    """

    name: str
    max_batch: int
    shape: tuple[int, int]
    _closed: bool

    def infer(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities ``(n, classes)`` for standardised features ``(n, electrodes, bins)``."""
        if self._closed:
            raise EegstreamError(f"{self.name} engine: infer() called after close()")
        x = check_features(features, self.shape, self.name)
        return infer_in_batches(self._run, x, self.max_batch)

    @abstractmethod
    def _run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for one batch of at most ``max_batch`` checked windows."""

    def warmup(self) -> None:
        """Run batch 1 and the largest batch once, so allocations happen before live data."""
        for n in (1, self.max_batch):
            self.infer(np.zeros((n, *self.shape), dtype=np.float32))

    @abstractmethod
    def close(self) -> None:
        """Release native resources; safe to call twice."""
