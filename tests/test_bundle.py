"""Model bundles: round trip, content hash, and a clear error for every way a bundle can break."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from eegstream.bundle import ModelBundle, file_sha256, finalize_bundle
from eegstream.errors import EegstreamError
from eegstream.export import keras_to_onnx, save_onnx, to_fp16
from eegstream.model import build_model
from eegstream.preprocess import Scaler
from eegstream.settings import CLASSES, ELECTRODES, FS, MODEL_ELECTRODES, N_BINS, POST, PRE, WINDOW


def _meta(scaler: Scaler, flops: int) -> dict[str, Any]:
    return {
        "classes": list(CLASSES),
        "electrodes": list(MODEL_ELECTRODES),
        "fs": FS,
        "window": WINDOW,
        "pre": PRE,
        "post": POST,
        "filter": {"type": "butterworth", "band_hz": [1.0, 50.0], "order": 5},
        "scaler": scaler.to_dict(),
        "flops_per_window": flops,
        "metrics": {},
    }


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete bundle from an untrained network, written the way training writes one."""
    out = tmp_path_factory.mktemp("bundle")
    model = build_model(seed=0, compile=False)
    proto = keras_to_onnx(model)
    save_onnx(proto, out / "model.onnx")
    save_onnx(to_fp16(proto), out / "model.fp16.onnx")
    model.save(out / "model.keras")
    rng = np.random.default_rng(0)
    scaler = Scaler(rng.normal(size=(10, N_BINS)), rng.uniform(0.5, 2.0, (10, N_BINS)))
    finalize_bundle(out, _meta(scaler, 1234))
    return out


@pytest.fixture
def bundle_dir(made: Path, tmp_path: Path) -> Path:
    """A fresh copy each test may damage."""
    return Path(shutil.copytree(made, tmp_path / "b"))


def _edit_meta(path: Path, **changes: Any) -> None:
    meta = json.loads((path / "model.json").read_text())
    for k, v in changes.items():
        if v is None:
            del meta[k]
        else:
            meta[k] = v
    (path / "model.json").write_text(json.dumps(meta))


def test_load_round_trip(bundle_dir: Path) -> None:
    b = ModelBundle.load(bundle_dir)
    assert b.dir == bundle_dir
    assert b.name == "b"
    assert b.classes == CLASSES
    assert b.electrodes == MODEL_ELECTRODES
    assert b.onnx_path == bundle_dir / "model.onnx"
    assert b.keras_path == bundle_dir / "model.keras"
    assert b.fp16_onnx_path == bundle_dir / "model.fp16.onnx"
    assert b.flops_per_window == 1234
    assert len(b.sha256) == 64
    meta = json.loads((bundle_dir / "model.json").read_text())
    assert meta["files"]["model.onnx"]["sha256"] == file_sha256(b.onnx_path)
    assert meta["format"] == "eegstream-bundle/1"
    assert "created" in meta

    raw = np.random.default_rng(1).normal(0.0, 20.0, (3, len(ELECTRODES), WINDOW))
    feats = b.features(raw)
    assert feats.shape == (3, 10, N_BINS)
    np.testing.assert_array_equal(feats, b.scaler.transform(b.features.psd(raw)))
    sess = ort.InferenceSession(str(b.onnx_path), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"features": feats})[0].shape == (3, 3)


def test_optional_files_may_be_absent(bundle_dir: Path) -> None:
    (bundle_dir / "model.keras").unlink()
    (bundle_dir / "model.fp16.onnx").unlink()
    b = ModelBundle.load(bundle_dir)
    assert b.keras_path is None
    assert b.fp16_onnx_path is None


def test_hash_changes_with_model_json(bundle_dir: Path) -> None:
    before = ModelBundle.load(bundle_dir).sha256
    _edit_meta(bundle_dir, metrics={"note": "edited"})
    assert ModelBundle.load(bundle_dir).sha256 != before


def test_missing_folder_and_files(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EegstreamError, match=r"nope does not exist; expected a folder with"):
        ModelBundle.load(tmp_path / "nope")
    (bundle_dir / "model.onnx").unlink()
    with pytest.raises(EegstreamError, match=r"model.onnx is missing; model.json lists it"):
        ModelBundle.load(bundle_dir)
    (bundle_dir / "model.json").unlink()
    with pytest.raises(EegstreamError, match=r"model.json is missing; a bundle needs model.json"):
        ModelBundle.load(bundle_dir)


def test_model_file_from_another_run_is_caught(bundle_dir: Path, made: Path) -> None:
    other = build_model(seed=1, compile=False)
    save_onnx(keras_to_onnx(other), bundle_dir / "model.onnx")
    with pytest.raises(EegstreamError, match=r"model.onnx does not match model.json: sha256"):
        ModelBundle.load(bundle_dir)
    shutil.copy(made / "model.onnx", bundle_dir / "model.onnx")
    (bundle_dir / "model.keras").write_bytes(b"not a keras file")
    with pytest.raises(EegstreamError, match=r"model.keras does not match model.json"):
        ModelBundle.load(bundle_dir)


def test_unlisted_model_file_is_rejected(bundle_dir: Path) -> None:
    meta = json.loads((bundle_dir / "model.json").read_text())
    del meta["files"]["model.keras"]
    (bundle_dir / "model.json").write_text(json.dumps(meta))
    with pytest.raises(EegstreamError, match=r"model.keras is not listed in .*model.json"):
        ModelBundle.load(bundle_dir)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scaler": None, "fs": None}, r"lacks key\(s\) fs, scaler"),
        ({"format": "other/9"}, r"format is 'other/9', expected 'eegstream-bundle/1'"),
        ({"classes": ["blink", "nothing"]}, r"classes is \['blink', 'nothing'\], this eegstream"),
        ({"fs": 256}, r"fs is 256, this eegstream needs 128"),
        ({"pre": 32}, r"pre is 32, this eegstream needs 26"),
        ({"electrodes": ["AF3", "Fz"]}, r"model electrodes Fz are not Emotiv channels"),
        ({"electrodes": MODEL_ELECTRODES[:9]}, r"does not match 9 electrodes x 33 bins"),
        ({"scaler": {"mean": 1}}, r"mean and std must both have shape|scaler in model.json"),
    ],
)
def test_bad_model_json(bundle_dir: Path, changes: dict[str, Any], message: str) -> None:
    _edit_meta(bundle_dir, **changes)
    with pytest.raises(EegstreamError, match=message):
        ModelBundle.load(bundle_dir)


def test_invalid_json(bundle_dir: Path) -> None:
    (bundle_dir / "model.json").write_text("{not json")
    with pytest.raises(EegstreamError, match=r"model.json is not valid JSON"):
        ModelBundle.load(bundle_dir)


def test_default_bundle_loads_and_is_small() -> None:
    b = ModelBundle.load()
    assert b.name == "default"
    assert b.keras_path is not None
    assert b.fp16_onnx_path is not None
    total = sum(p.stat().st_size for p in b.dir.iterdir())
    assert total < 8_000_000
    assert b.meta["flops_per_window"] > 1_000_000
