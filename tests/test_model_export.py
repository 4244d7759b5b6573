"""The Keras CNN and its hand-built ONNX export: same function, independent heads, float16 variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from eegstream.errors import EegstreamError
from eegstream.export import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    flops_per_window,
    keras_to_onnx,
    save_onnx,
    to_fp16,
)
from eegstream.model import DENSE_UNITS, HEAD_FILTERS, KERNEL, build_model
from eegstream.settings import CLASSES, MODEL_ELECTRODES, N_BINS

N_EL = len(MODEL_ELECTRODES)


@pytest.fixture(scope="module")
def model() -> Any:
    """A model whose batch norms hold non-trivial statistics, so folding them is really tested."""
    m = build_model(seed=3)
    rng = np.random.default_rng(0)
    for name in ("head_bn", "dense1_bn"):
        layer = m.get_layer(name)
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights(
            [
                rng.uniform(0.5, 2.0, gamma.shape),
                rng.normal(0.0, 0.5, beta.shape),
                rng.normal(0.0, 1.0, mean.shape),
                rng.uniform(0.2, 3.0, var.shape),
            ]
        )
    return m


@pytest.fixture(scope="module")
def proto(model: Any) -> onnx.ModelProto:
    return keras_to_onnx(model)


def _session(p: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])


def test_each_head_sees_only_its_electrode(model: Any) -> None:
    heads = keras.Model(model.input, model.get_layer("heads").output)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, N_EL, N_BINS)).astype(np.float32)
    base = heads(x, training=False).numpy()
    per_head = HEAD_FILTERS[1]
    for e in (0, 4, 9):
        changed = x.copy()
        changed[:, e] += rng.normal(size=(4, N_BINS)).astype(np.float32) * 3
        moved = np.any(heads(changed, training=False).numpy() != base, axis=(0, 1))
        owner = np.arange(moved.size) // per_head
        assert moved[owner == e].any()
        assert not moved[owner != e].any()


def test_onnx_matches_keras_on_1000_windows(model: Any, proto: onnx.ModelProto) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1000, N_EL, N_BINS)).astype(np.float32)
    ref = model(x, training=False).numpy()
    got = _session(proto).run(None, {INPUT_NAME: x})[0]
    assert got.shape == (1000, len(CLASSES))
    assert got.dtype == np.float32
    assert np.max(np.abs(got - ref)) <= 1e-5
    assert ref.std(axis=0).min() > 1e-3  # the outputs really vary: not a constant model


def test_onnx_graph_interface_and_grouped_convs(proto: onnx.ModelProto, tmp_path: Path) -> None:
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    (inp,) = proto.graph.input
    (out,) = proto.graph.output
    assert inp.name == INPUT_NAME
    assert out.name == OUTPUT_NAME
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", N_EL, N_BINS]
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert [a.i for n in convs for a in n.attribute if a.name == "group"] == [N_EL, N_EL]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["classes"] == ",".join(CLASSES)
    save_onnx(proto, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 257):
        x = np.zeros((batch, N_EL, N_BINS), np.float32)
        probs = sess.run(None, {INPUT_NAME: x})[0]
        assert probs.shape == (batch, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_fp16_variant_agrees_within_1e_2(model: Any, proto: onnx.ModelProto) -> None:
    half = to_fp16(proto)
    onnx.checker.check_model(half, full_check=True)
    assert {i.data_type for i in half.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, N_EL, N_BINS)).astype(np.float32)
    got = _session(half).run(None, {INPUT_NAME: x})[0]
    assert got.dtype == np.float32
    assert np.max(np.abs(got - model(x, training=False).numpy())) <= 1e-2
    assert half.ByteSize() < 0.6 * proto.ByteSize()


def test_flops_per_window_counts_every_multiply_accumulate(proto: onnx.ModelProto) -> None:
    f1, f2 = (f * N_EL for f in HEAD_FILTERS)
    w1 = N_BINS - (KERNEL - 1)
    w2 = w1 - (KERNEL - 1)
    macs = (
        w1 * f1 * KERNEL  # conv1: one input channel per group
        + w2 * f2 * HEAD_FILTERS[0] * KERNEL  # conv2: 32 input channels per group
        + w2 * f2 * DENSE_UNITS[0]
        + DENSE_UNITS[0] * DENSE_UNITS[1]
        + DENSE_UNITS[1] * len(CLASSES)
    )
    assert flops_per_window(proto) == 2 * macs


def test_saved_keras_model_loads_without_custom_objects(model: Any, tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path, compile=False)
    x = np.random.default_rng(4).normal(size=(8, N_EL, N_BINS)).astype(np.float32)
    np.testing.assert_array_equal(
        again(x, training=False).numpy(), model(x, training=False).numpy()
    )


def test_export_rejects_a_foreign_model() -> None:
    inp = keras.Input((N_EL, N_BINS), name="features")
    other = keras.Model(inp, keras.layers.Flatten()(inp), name="other")
    with pytest.raises(EegstreamError, match=r"model 'other': it has no layer 'head0_conv1'"):
        keras_to_onnx(other)


def test_build_model_is_seeded() -> None:
    a = build_model(seed=7, compile=False).get_weights()
    b = build_model(seed=7, compile=False).get_weights()
    c = build_model(seed=8, compile=False).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))
