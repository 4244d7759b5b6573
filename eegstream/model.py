"""The multi-head 1-D CNN (Keras 3): one head per electrode, merged by dense layers.

Imported only by training and the Keras engine, so a plain install never loads TensorFlow.

The original network had ten separate inputs, one small CNN per electrode. Here there is one
input ``features`` ``(batch, 10, 33)``; inside the graph each head takes its electrode's row
(``Cropping1D``), views it as 33 bins x 1 channel and runs ``Conv1D(32, 3)`` -> ``Conv1D(16, 3)``;
the heads are concatenated channels-last, so channel ``16 * e + k`` is filter ``k`` of electrode
``e`` -- exactly the layout of a grouped convolution, which is what the ONNX export
(:mod:`eegstream.export`) writes: ``Conv(group=10)`` twice, the fast form for ONNX Runtime and
TensorRT.

Why not grouped ``Conv1D(320, 3, groups=10)`` in Keras too: TensorFlow's CPU kernels for grouped
convolutions are slow to train -- 1.5-2 s per batch of 128 against 72 ms for the split heads
(measured on the 2-core build machine) -- which would break the 10-minute training budget.
The function is the same; ``tests/test_model_export.py`` proves the heads stay independent and
that the ONNX graph matches Keras.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner

import keras  # noqa: E402

from eegstream.settings import CLASSES, MODEL_ELECTRODES, N_BINS  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["HEAD_FILTERS", "build_model"]

#: Filters per electrode head in the two convolutions (the original 32 and 16).
HEAD_FILTERS: tuple[int, int] = (32, 16)
KERNEL: int = 3
DENSE_UNITS: tuple[int, int] = (100, 50)
CONV_DROPOUT: float = 0.25
DENSE_DROPOUT: float = 0.3


def build_model(
    n_electrodes: int = len(MODEL_ELECTRODES),
    n_bins: int = N_BINS,
    n_classes: int = len(CLASSES),
    *,
    seed: int = 0,
    learning_rate: float = 1e-3,
    compile: bool = True,
) -> keras.Model:
    """The network, compiled for training unless ``compile=False``.

    ``seed`` fixes weight init, dropout and shuffling for reproducibility. An uncompiled copy
    (weights set from the trained one) is what the bundle stores: no optimizer state, a third of
    the file.
    """
    keras.utils.set_random_seed(seed)
    inp = keras.Input((n_electrodes, n_bins), name="features")
    heads = []
    for e in range(n_electrodes):
        h = keras.layers.Cropping1D((e, n_electrodes - 1 - e), name=f"head{e}_pick")(inp)
        h = keras.layers.Permute((2, 1), name=f"head{e}_bins")(h)  # (batch, bins, 1)
        h = keras.layers.Conv1D(HEAD_FILTERS[0], KERNEL, activation="relu", name=f"head{e}_conv1")(
            h
        )
        h = keras.layers.Conv1D(HEAD_FILTERS[1], KERNEL, activation="relu", name=f"head{e}_conv2")(
            h
        )
        heads.append(h)
    x = keras.layers.Concatenate(axis=-1, name="heads")(heads)  # (batch, width, 16 * electrodes)
    x = keras.layers.Dropout(CONV_DROPOUT, name="head_dropout")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(DENSE_UNITS[0], activation="relu", name="dense1")(x)
    x = keras.layers.BatchNormalization(name="dense1_bn")(x)
    x = keras.layers.Dropout(DENSE_DROPOUT, name="dense1_dropout")(x)
    x = keras.layers.Dense(DENSE_UNITS[1], activation="relu", name="dense2")(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="eegstream_cnn")
    if not compile:
        return model
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
