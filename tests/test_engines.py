"""Inference engines: every engine that can run here agrees with ONNX Runtime; clear errors.

The engines are checked on a bundle built here from the real network code (``build_model`` ->
``keras_to_onnx`` -> ``finalize_bundle``, untrained weights) and on the shipped default bundle
when it exists. TensorRT parts skip with the reason :func:`tensorrt_available` gives.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from eegstream.bundle import ModelBundle, finalize_bundle
from eegstream.cli import main
from eegstream.engines import (
    Engine,
    check_features,
    infer_in_batches,
    load_engine,
    tensorrt_available,
)
from eegstream.errors import BackendUnavailableError, EegstreamError
from eegstream.preprocess import FeaturePipeline, Scaler
from eegstream.settings import (
    BAND,
    CLASSES,
    ELECTRODES,
    FILTER_ORDER,
    FS,
    MODEL_ELECTRODES,
    N_BINS,
    POST,
    PRE,
    WINDOW,
    default_model_dir,
)

F32 = npt.NDArray[np.float32]
TOL = 1e-4  # FP32 agreement the engines promise (issue #4)
TRT_OK, TRT_WHY = tensorrt_available()
ENGINE_SOURCE = Path(__file__).resolve().parent.parent / "eegstream" / "engines"


def make_bundle(out: Path, seed: int = 0) -> ModelBundle:
    """A complete bundle from the real model code, with untrained weights and a fitted scaler."""
    from eegstream.export import flops_per_window, keras_to_onnx, save_onnx, to_fp16
    from eegstream.model import build_model

    model = build_model(seed=seed)
    rng = np.random.default_rng(seed)
    model(rng.standard_normal((2, len(MODEL_ELECTRODES), N_BINS)).astype(np.float32))
    proto = keras_to_onnx(model)
    out.mkdir(parents=True, exist_ok=True)
    save_onnx(proto, out / "model.onnx")
    save_onnx(to_fp16(proto), out / "model.fp16.onnx")
    model.save(out / "model.keras")
    raw = rng.normal(0.0, 15.0, size=(256, len(ELECTRODES), WINDOW))
    psd = FeaturePipeline(Scaler(np.zeros((10, N_BINS)), np.ones((10, N_BINS)))).psd(raw)
    meta = {
        "classes": list(CLASSES),
        "electrodes": list(MODEL_ELECTRODES),
        "fs": FS,
        "window": WINDOW,
        "pre": PRE,
        "post": POST,
        "filter": {"type": "butterworth", "band_hz": list(BAND), "order": FILTER_ORDER},
        "scaler": Scaler.fit(psd).to_dict(),
        "flops_per_window": flops_per_window(proto),
    }
    return finalize_bundle(out, meta)


@pytest.fixture(scope="session")
def built_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "untrained")


@pytest.fixture(params=["built", "default"])
def bundle(request: pytest.FixtureRequest, built_bundle: ModelBundle) -> ModelBundle:
    if request.param == "built":
        return built_bundle
    if not (default_model_dir() / "model.json").is_file():
        pytest.skip(f"no default bundle at {default_model_dir()} yet (train it: see README)")
    return ModelBundle.load()


@pytest.fixture(scope="module")
def windows() -> F32:
    """1,000 random standardised feature windows."""
    rng = np.random.default_rng(42)
    return rng.standard_normal((1000, len(MODEL_ELECTRODES), N_BINS)).astype(np.float32)


def assert_agree(ref: F32, got: F32, tol: float) -> None:
    """Probabilities within ``tol``; the same class wherever the top two differ by more than ``tol``.

    Where the two best classes are closer than the tolerance itself, either order is within the
    contract; the test insists such near-ties are rare, so it cannot pass by excluding everything.
    """
    assert got.shape == ref.shape
    assert got.dtype == np.float32
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=0.0, atol=tol)
    top2 = np.sort(ref, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > 2 * tol
    assert decided.mean() > 0.95
    np.testing.assert_array_equal(got.argmax(1)[decided], ref.argmax(1)[decided])


def _onnxruntime(bundle: ModelBundle, max_batch: int = 64) -> Engine:
    return load_engine("onnxruntime", bundle, max_batch=max_batch)


# --- agreement -----------------------------------------------------------------------------


def test_onnxruntime_probabilities_are_distributions(bundle: ModelBundle, windows: F32) -> None:
    engine = _onnxruntime(bundle)
    probs = engine.infer(windows)
    assert probs.shape == (1000, len(CLASSES))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    assert len(np.unique(probs.argmax(1))) > 1  # the inputs reach more than one class


def test_keras_engine_agrees_with_onnxruntime(bundle: ModelBundle, windows: F32) -> None:
    ref = _onnxruntime(bundle).infer(windows)
    keras_engine = load_engine("keras", bundle)
    assert keras_engine.name == "keras"
    assert_agree(ref, keras_engine.infer(windows), TOL)
    keras_engine.close()


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT cannot run here: {TRT_WHY}")
def test_tensorrt_fp32_agrees_with_onnxruntime(
    bundle: ModelBundle, windows: F32, tmp_path: Path
) -> None:
    from eegstream.engines.tensorrt import TensorRTEngine

    ref = _onnxruntime(bundle).infer(windows)
    engine = TensorRTEngine(bundle.onnx_path, precision="fp32", max_batch=64, plan_dir=tmp_path)
    try:
        engine.warmup()  # also captures the batch-1 CUDA graph
        assert_agree(ref, engine.infer(windows), TOL)  # 1,000 windows: 16 batches of <= 64
        singles = np.concatenate([engine.infer(windows[i : i + 1]) for i in range(50)])
        assert_agree(ref[:50], singles, TOL)  # batch 1 (the graph path when captured)
        assert engine.plan_path.is_file()
        assert engine.plan_path.parent == tmp_path
    finally:
        engine.close()
        engine.close()  # idempotent
    again = TensorRTEngine(bundle.onnx_path, precision="fp32", plan_dir=tmp_path)  # cached plan
    try:
        assert_agree(ref, again.infer(windows), TOL)
    finally:
        again.close()


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT cannot run here: {TRT_WHY}")
def test_tensorrt_auto_precision_keeps_the_classes(bundle: ModelBundle, windows: F32) -> None:
    ref = _onnxruntime(bundle).infer(windows)
    engine = load_engine("tensorrt", bundle)
    try:
        engine.warmup()
        assert_agree(ref, engine.infer(windows), 1e-2)  # FP16 where the GPU has it
    finally:
        engine.close()


def _ort_cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(
    not _ort_cuda_available(), reason="ONNX Runtime has no CUDAExecutionProvider here"
)
def test_onnxruntime_cuda_agrees_with_cpu(bundle: ModelBundle, windows: F32) -> None:
    ref = _onnxruntime(bundle).infer(windows)
    engine = load_engine("onnxruntime-cuda", bundle)
    assert_agree(ref, engine.infer(windows), TOL)


# --- batching and input checks -------------------------------------------------------------


def test_infer_in_batches_never_exceeds_max_batch() -> None:
    seen: list[int] = []

    def run(x: F32) -> F32:
        seen.append(x.shape[0])
        return x[:, 0, :3] * 2

    x = np.arange(50 * 10 * 33, dtype=np.float32).reshape(50, 10, 33)
    out = infer_in_batches(run, x, 7)
    assert seen == [7] * 7 + [1]
    np.testing.assert_array_equal(out, x[:, 0, :3] * 2)


@pytest.mark.parametrize("name", ["onnxruntime", "keras"])
def test_engines_split_large_batches(name: str, built_bundle: ModelBundle, windows: F32) -> None:
    small = load_engine(name, built_bundle, max_batch=7)
    assert small.max_batch == 7
    whole = small.infer(windows[:50])
    one_by_one = np.concatenate([small.infer(windows[i : i + 1]) for i in range(50)])
    reference = _onnxruntime(built_bundle).infer(windows[:50])
    np.testing.assert_allclose(whole, one_by_one, rtol=0, atol=1e-6)
    np.testing.assert_allclose(whole, reference, rtol=0, atol=TOL)


@pytest.mark.parametrize("name", ["onnxruntime", "keras"])
def test_engine_rejects_wrong_feature_shape(name: str, built_bundle: ModelBundle) -> None:
    engine = load_engine(name, built_bundle)
    with pytest.raises(
        EegstreamError,
        match=rf"{name} engine: features must have shape \(n, 10, 33\).*got \(4, 14, 33\)",
    ):
        engine.infer(np.zeros((4, 14, 33), dtype=np.float32))
    with pytest.raises(EegstreamError, match=r"got \(10, 33\)"):
        engine.infer(np.zeros((10, 33), dtype=np.float32))


def test_check_features_converts_without_copying_float32() -> None:
    x = np.zeros((3, 10, 33), dtype=np.float32)
    assert check_features(x, (10, 33), "t") is x
    y = check_features(np.zeros((3, 10, 33), dtype=np.float64), (10, 33), "t")
    assert y.dtype == np.float32
    assert y.flags.c_contiguous


@pytest.mark.parametrize("name", ["onnxruntime", "keras"])
def test_warmup_and_close_are_safe(name: str, built_bundle: ModelBundle) -> None:
    engine = load_engine(name, built_bundle)
    assert isinstance(engine, Engine)
    engine.warmup()
    engine.close()
    engine.close()
    with pytest.raises(EegstreamError, match=rf"{name} engine: infer\(\) called after close\(\)"):
        engine.infer(np.zeros((1, 10, 33), dtype=np.float32))


def test_onnxruntime_session_is_cpu_single_threaded(built_bundle: ModelBundle) -> None:
    engine = load_engine("onnxruntime", built_bundle)
    session = engine._session  # type: ignore[attr-defined]
    assert session.get_providers() == ["CPUExecutionProvider"]
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1


# --- choosing an engine --------------------------------------------------------------------


@pytest.mark.skipif(TRT_OK, reason="TensorRT can run here, so auto picks it")
def test_auto_is_onnxruntime_without_tensorrt(built_bundle: ModelBundle) -> None:
    assert load_engine("auto", built_bundle).name == "onnxruntime"


@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT cannot run here: {TRT_WHY}")
def test_auto_is_tensorrt_where_it_can_run(built_bundle: ModelBundle) -> None:
    engine = load_engine("auto", built_bundle)
    try:
        assert engine.name == "tensorrt"
    finally:
        engine.close()


@pytest.mark.skipif(TRT_OK, reason="TensorRT can run here")
def test_tensorrt_named_but_missing_raises_one_clear_line(built_bundle: ModelBundle) -> None:
    with pytest.raises(
        BackendUnavailableError,
        match=r"backend 'tensorrt' cannot run here: .*(tensorrt|pycuda|CUDA).*eegstream\[gpu\]",
    ) as exc:
        load_engine("tensorrt", built_bundle)
    assert "\n" not in str(exc.value)


@pytest.mark.skipif(_ort_cuda_available(), reason="onnxruntime-gpu is installed here")
def test_onnxruntime_cuda_named_but_missing_raises(built_bundle: ModelBundle) -> None:
    with pytest.raises(BackendUnavailableError, match=r"onnxruntime-cuda.*onnxruntime-gpu"):
        load_engine("onnxruntime-cuda", built_bundle)


def test_unknown_backend_is_refused(built_bundle: ModelBundle) -> None:
    with pytest.raises(
        EegstreamError, match=r"unknown backend 'cuda'; expected one of: auto, tensorrt"
    ):
        load_engine("cuda", built_bundle)


def test_missing_model_files_are_named(tmp_path: Path) -> None:
    from eegstream.engines.keras import KerasEngine
    from eegstream.engines.onnxruntime import OnnxRuntimeEngine

    with pytest.raises(EegstreamError, match=r"ONNX model .*nope\.onnx does not exist"):
        OnnxRuntimeEngine(tmp_path / "nope.onnx")
    with pytest.raises(
        EegstreamError, match=r"Keras model model\.keras does not exist.*--backend onnxruntime"
    ):
        KerasEngine(None)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EegstreamError, match=r"ONNX Runtime cannot load .*bad\.onnx"):
        OnnxRuntimeEngine(bad)


@pytest.mark.skipif(TRT_OK, reason="TensorRT can run here")
def test_cli_bench_with_tensorrt_exits_2(
    built_bundle: ModelBundle, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "--backend", "tensorrt", "--model", str(built_bundle.dir)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert re.match(r"eegstream bench: error: backend 'tensorrt' cannot run here: ", err[0])
    assert "pip install 'eegstream[gpu]'" in err[0]


@pytest.mark.skipif(TRT_OK, reason="TensorRT can run here")
def test_cli_detect_with_tensorrt_exits_2(
    built_bundle: ModelBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("eegstream.offline", reason="eegstream detect (offline.py) not built yet")
    recording = tmp_path / "rec.csv"
    assert main(["simulate", str(recording), "--duration", "40", "--seed", "1"]) == 0
    capsys.readouterr()
    code = main(
        ["detect", str(recording), "--backend", "tensorrt", "--model", str(built_bundle.dir)]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "backend 'tensorrt' cannot run here" in err[0]
    assert "pip install 'eegstream[gpu]'" in err[0]


# --- TensorRT code without a GPU -----------------------------------------------------------


def test_tensorrt_code_uses_the_current_api_only() -> None:
    source = (ENGINE_SOURCE / "tensorrt.py").read_text(encoding="utf-8")
    for gone in (
        "execute_async_v2",
        "execute_v2",
        "binding",
        "max_workspace_size",
        "build_engine(",
        "max_batch_size",
        "pycuda.autoinit",
    ):
        assert gone not in source, gone
    for current in (
        "build_serialized_network",
        "create_optimization_profile",
        "set_memory_pool_limit",
        "MemoryPoolType.WORKSPACE",
        "num_io_tensors",
        "get_tensor_name",
        "get_tensor_mode",
        "set_input_shape",
        "set_tensor_address",
        "execute_async_v3",
        "pagelocked_empty",
        "memcpy_htod_async",
        "memcpy_dtoh_async",
        "deserialize_cuda_engine",
    ):
        assert current in source, current


def test_tensorrt_module_imports_without_tensorrt_or_pycuda() -> None:
    code = (
        "import sys, eegstream.engines, eegstream.engines.tensorrt;"
        "print('tensorrt' in sys.modules, 'pycuda' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(TRT_OK, reason="TensorRT can run here")
def test_tensorrt_available_names_what_is_missing() -> None:
    ok, why = tensorrt_available()
    assert not ok
    assert re.search(r"(tensorrt|pycuda|CUDA)", why)
    assert "\n" not in why


def test_plan_cache_key_changes_with_each_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eegstream.engines.tensorrt_host import cache_dir, fast_fp16, plan_name

    base = dict(digest="a" * 64, trt_version="10.8.0", gpu="NVIDIA H100 80GB HBM3")
    name = plan_name(**base, precision="fp16", max_batch=64)
    assert name == "aaaaaaaaaaaaaaaa-trt10.8.0-nvidia-h100-80gb-hbm3-fp16-b64.plan"
    variants = {
        plan_name(**{**base, "digest": "b" * 64}, precision="fp16", max_batch=64),
        plan_name(**{**base, "trt_version": "11.0.0"}, precision="fp16", max_batch=64),
        plan_name(**{**base, "gpu": "NVIDIA A10"}, precision="fp16", max_batch=64),
        plan_name(**base, precision="fp32", max_batch=64),
        plan_name(**base, precision="fp16", max_batch=32),
    }
    assert name not in variants
    assert len(variants) == 5
    monkeypatch.setenv("EEGSTREAM_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "trt"
    monkeypatch.delenv("EEGSTREAM_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "eegstream" / "trt"
    assert [fast_fp16(cc) for cc in ((9, 0), (7, 5), (5, 3), (6, 1), (5, 2))] == [
        True,
        True,
        True,
        False,
        False,
    ]
