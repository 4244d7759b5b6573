"""Keras engine: the trained model itself, as the reference the other engines must match.

It is also how the original work ran inference. TensorFlow loads only when this engine is built
(``pip install 'eegstream[train]'``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from eegstream.engines.base import BatchedEngine, check_features
from eegstream.errors import BackendUnavailableError, EegstreamError

log = logging.getLogger(__name__)

__all__ = ["KerasEngine"]


def _import_keras() -> Any:
    """Import Keras (TensorFlow backend) or say which extra installs it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner
    try:
        import keras
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend 'keras' cannot run here: TensorFlow/Keras is not installed ({exc}); "
            "install it with pip install 'eegstream[train]', or choose --backend onnxruntime"
        ) from exc
    return keras


class KerasEngine(BatchedEngine):
    """The bundle's ``model.keras`` called directly (``model(x, training=False)``).

    A direct call, not ``model.predict``: ``predict`` builds a data pipeline per call, which costs
    milliseconds at batch 1. On TensorFlow the call is traced once by ``tf.function`` with a
    ``[None, electrodes, bins]`` signature: called eagerly, Keras re-traces the grouped
    convolution on every call (measured: 62 ms per batch-1 call eagerly, 1.8 ms traced, on the
    2-core CI machine). ``eegstream bench`` reports all three.
    """

    name = "keras"

    def __init__(self, keras_path: Path | None, *, max_batch: int = 64) -> None:
        keras = _import_keras()
        if keras_path is None or not Path(keras_path).is_file():
            raise EegstreamError(
                f"Keras model {keras_path or 'model.keras'} does not exist; the keras backend "
                "needs model.keras inside the model bundle; retrain with `eegstream train` or "
                "choose --backend onnxruntime"
            )
        path = Path(keras_path)
        try:
            self.model: Any = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, ...
            raise EegstreamError(
                f"Keras cannot load {path}: {exc}; re-export the bundle with `eegstream train`"
            ) from exc
        if len(self.model.inputs) != 1:
            raise EegstreamError(
                f"{path}: expected one input (batch, electrodes, bins); the model has "
                f"{len(self.model.inputs)}; re-export the bundle with `eegstream train`"
            )
        dims = tuple(self.model.inputs[0].shape[1:])
        if len(dims) != 2 or not all(isinstance(d, int) for d in dims):
            raise EegstreamError(
                f"{path}: input must be (batch, electrodes, bins); got {self.model.inputs[0].shape}"
            )
        self.shape: tuple[int, int] = (int(dims[0]), int(dims[1]))
        self.max_batch = max_batch
        self._ops = keras.ops
        self._call: Any = self._traced_call(keras)
        self._closed = False
        log.debug("Keras %s: loaded %s", keras.__version__, path)

    def _traced_call(self, keras: Any) -> Any:
        """``model(x, training=False)``, traced once per process on the TensorFlow backend."""
        model = self.model
        if keras.backend.backend() != "tensorflow":
            return lambda x: model(x, training=False)
        import tensorflow as tf

        return tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, *self.shape], tf.float32)],
            reduce_retracing=True,
        )

    def _run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = self._call(x)
        return np.asarray(self._ops.convert_to_numpy(out), dtype=np.float32)

    def eager(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The untraced ``model(x, training=False)`` call (for the benchmark's comparison)."""
        x = check_features(features, self.shape, self.name)
        return np.asarray(self._ops.convert_to_numpy(self.model(x, training=False)), np.float32)

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``model.predict`` as the original notebook called it (for the benchmark's comparison)."""
        x = check_features(features, self.shape, self.name)
        out = self.model.predict(x, batch_size=self.max_batch, verbose=0)
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        """Drop the model (TensorFlow keeps its process-wide runtime); safe to call twice."""
        self._closed = True
        self.model = None
        self._call = None
