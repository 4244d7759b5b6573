"""Keras CNN -> ONNX, written node by node with ``onnx.helper`` from the trained weights.

Why not tf2onnx: version 1.17 cannot convert grouped ``Conv1D`` (it emits an opaque
``StatefulPartitionedCall``). The network is small and fixed, so the graph is built directly:

``features [batch,10,33]`` -> Conv(group=10) -> Relu -> Conv(group=10) -> Relu -> Flatten -> Gemm
-> Relu -> Gemm -> Relu -> Gemm -> Softmax -> ``probs [batch,3]``.

The input is already ``(batch, channels=electrodes, width=bins)``, ONNX's NCW layout, and the ten
Keras heads (one ``Conv1D`` pair per electrode) become two grouped convolutions: head ``e``'s
filters are output channels ``e*32..e*32+31`` (then ``e*16..``), the order in which Keras
concatenates the heads. Inference-time batch norms are affine maps that
follow a ReLU, so each is folded (in float64) into the next dense layer's weights; Keras's
channels-last ``Flatten`` order (``bin * 160 + channel``) is folded into the first dense layer's
rows the same way. Fewer nodes, identical function: ``tests/test_model_export.py`` checks ONNX
Runtime against Keras within 1e-5 on 1,000 windows.

Opset 17 (IR 8) with a dynamic batch dimension named ``batch``. :func:`to_fp16` makes the
float16 variant for TensorRT's strongly typed networks: float16 weights, float32 I/O kept at the
boundary by two Casts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from eegstream.errors import EegstreamError
from eegstream.settings import CLASSES, MODEL_ELECTRODES

log = logging.getLogger(__name__)

__all__ = [
    "INPUT_NAME",
    "OPSET",
    "OUTPUT_NAME",
    "flops_per_window",
    "keras_to_onnx",
    "save_onnx",
    "to_fp16",
]

INPUT_NAME = "features"
OUTPUT_NAME = "probs"
OPSET = 17
IR_VERSION = 8  # the IR that opset 17 shipped with: readable by older ONNX Runtime and TensorRT

F64 = npt.NDArray[np.float64]


def _weights(model: Any, name: str) -> list[F64]:
    """Weights of the named layer as float64 arrays (clear error when the layer is missing)."""
    try:
        layer = model.get_layer(name)
    except ValueError as exc:
        raise EegstreamError(
            f"cannot export model {model.name!r}: it has no layer {name!r}; expected the network "
            "built by eegstream.model.build_model"
        ) from exc
    return [np.asarray(w, dtype=np.float64) for w in layer.get_weights()]


def _bn_affine(model: Any, name: str) -> tuple[F64, F64]:
    """Inference-time batch norm as ``y = a * x + b`` per channel."""
    gamma, beta, mean, var = _weights(model, name)
    eps = float(model.get_layer(name).epsilon)
    a = gamma / np.sqrt(var + eps)
    return a, beta - mean * a


def keras_to_onnx(model: Any) -> onnx.ModelProto:
    """The float32 ONNX graph of a model made by :func:`eegstream.model.build_model`."""
    _, n_electrodes, n_bins = (int(d) if d is not None else 0 for d in model.input_shape)
    # per-electrode heads -> one grouped convolution: head e owns output channels e*k..e*k+k-1
    conv1 = [_weights(model, f"head{e}_conv1") for e in range(n_electrodes)]
    conv2 = [_weights(model, f"head{e}_conv2") for e in range(n_electrodes)]
    k1 = np.concatenate([w.transpose(2, 1, 0) for w, _ in conv1])  # (10*32, 1, k)
    c1b = np.concatenate([b for _, b in conv1])
    k2 = np.concatenate([w.transpose(2, 1, 0) for w, _ in conv2])  # (10*16, 32, k)
    c2b = np.concatenate([b for _, b in conv2])
    groups = n_electrodes
    kernel = k1.shape[2]
    ch2 = k2.shape[0]
    width2 = n_bins - 2 * (kernel - 1)  # 'valid' convolutions, stride 1

    # head_bn follows the ReLU of conv2; fold it and Keras's (bin, channel) flatten into dense1.
    a0, b0 = _bn_affine(model, "head_bn")
    w1, d1b = _weights(model, "dense1")  # (width2 * ch2, 100)
    w1 = w1.reshape(width2, ch2, -1)
    d1b = d1b + np.einsum("wcu,c->u", w1, b0)
    w1 = (w1 * a0[None, :, None]).transpose(1, 0, 2).reshape(width2 * ch2, -1)  # ONNX: c*W + w

    a1, b1 = _bn_affine(model, "dense1_bn")
    w2, d2b = _weights(model, "dense2")
    d2b = d2b + b1 @ w2
    w2 = w2 * a1[:, None]
    w3, d3b = _weights(model, "probs")

    inits = {
        "conv1.W": k1,
        "conv1.B": c1b,
        "conv2.W": k2,
        "conv2.B": c2b,
        "dense1.W": w1,
        "dense1.B": d1b,
        "dense2.W": w2,
        "dense2.B": d2b,
        "dense3.W": w3,
        "dense3.B": d3b,
    }
    conv: dict[str, Any] = {
        "group": groups,
        "kernel_shape": [kernel],
        "strides": [1],
        "pads": [0, 0],
    }
    nodes = [
        helper.make_node("Conv", [INPUT_NAME, "conv1.W", "conv1.B"], ["c1"], "conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "conv2.W", "conv2.B"], ["c2"], "conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("Flatten", ["r2"], ["flat"], "flatten", axis=1),
        helper.make_node("Gemm", ["flat", "dense1.W", "dense1.B"], ["g1"], "dense1"),
        helper.make_node("Relu", ["g1"], ["h1"], "relu3"),
        helper.make_node("Gemm", ["h1", "dense2.W", "dense2.B"], ["g2"], "dense2"),
        helper.make_node("Relu", ["g2"], ["h2"], "relu4"),
        helper.make_node("Gemm", ["h2", "dense3.W", "dense3.B"], ["logits"], "dense3"),
        helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], "softmax", axis=1),
    ]
    n_classes = w3.shape[1]
    graph = helper.make_graph(
        nodes,
        "eegstream_cnn",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", n_electrodes, n_bins]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[
            numpy_helper.from_array(v.astype(np.float32), name=k) for k, v in inits.items()
        ],
    )
    proto = helper.make_model(
        graph,
        producer_name="eegstream",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        doc_string="Blink / jaw clench / nothing from standardised Welch PSD features.",
    )
    _set_metadata(proto, n_classes, n_electrodes)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _set_metadata(proto: onnx.ModelProto, n_classes: int, n_electrodes: int) -> None:
    """Class and electrode names travel inside the ONNX file too (model.json is the authority)."""
    classes = CLASSES if n_classes == len(CLASSES) else tuple(map(str, range(n_classes)))
    electrodes = MODEL_ELECTRODES if n_electrodes == len(MODEL_ELECTRODES) else ()
    helper.set_model_props(
        proto,
        {
            "classes": ",".join(classes),
            "electrodes": ",".join(electrodes),
            "flops_per_window": str(flops_per_window(proto)),
        },
    )


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Float16 copy: weights and arithmetic in float16, input and output still float32.

    TensorRT's strongly typed networks take each tensor's precision from the ONNX types, so the
    float16 engine needs float16 weights in the file; the Casts at the boundary keep the engine
    interface (float32 features in, float32 probabilities out) identical to the float32 model.
    """
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(
                numpy_helper.from_array(
                    numpy_helper.to_array(init).astype(np.float16), name=init.name
                )
            )
    nodes = list(graph.node)
    for node in nodes:
        node.input[:] = [f"{i}_fp16" if i == INPUT_NAME else i for i in node.input]
        node.output[:] = [f"{o}_fp16" if o == OUTPUT_NAME else o for o in node.output]
    cast_in = helper.make_node(
        "Cast", [INPUT_NAME], [f"{INPUT_NAME}_fp16"], "cast_in", to=TensorProto.FLOAT16
    )
    cast_out = helper.make_node(
        "Cast", [f"{OUTPUT_NAME}_fp16"], [OUTPUT_NAME], "cast_out", to=TensorProto.FLOAT
    )
    del graph.node[:]
    graph.node.extend([cast_in, *nodes, cast_out])
    graph.name = f"{graph.name}_fp16"
    onnx.checker.check_model(out, full_check=True)
    return out


def flops_per_window(proto: onnx.ModelProto) -> int:
    """Floating-point operations for one window: 2 x the multiply-accumulates of Conv and Gemm.

    Counted from the graph itself (shape inference gives each Conv's output width), so the figure
    the benchmark divides by always describes the model that runs. Bias adds, ReLU and softmax
    are ignored (under 0.1 %).
    """
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes: dict[str, list[int]] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    weights = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    macs = 0
    for node in proto.graph.node:
        if node.op_type == "Conv":
            w = weights[node.input[1]]  # (out, in/group, k...)
            out_shape = shapes[node.output[0]]  # (batch, out, width...)
            macs += int(np.prod(out_shape[1:])) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            macs += int(np.prod(weights[node.input[1]]))
    return 2 * macs


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Write a model file (one self-contained protobuf; no external data at this size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
