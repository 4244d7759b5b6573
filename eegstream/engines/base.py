"""The engine interface every inference backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


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
