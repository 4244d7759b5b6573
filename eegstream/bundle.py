"""A model bundle: the folder that carries a trained classifier and everything needed to feed it.

Layout (``eegstream/models/default`` ships inside the package, as package data)::

    model.onnx        float32 graph: input "features" [batch,10,33] -> output "probs" [batch,3]
    model.fp16.onnx   optional float16 variant (TensorRT strongly typed networks)
    model.keras       optional Keras model (the reference backend)
    model.json        classes, electrodes, rate, window, filter, scaler, person-baseline prior
                      (optional: without it features are absolute), training, metrics, hashes

``model.json`` records the sha256 of every model file, so a model file copied from another
training run is caught at load time instead of producing silently wrong probabilities. Loading
needs only the standard library and numpy: no ONNX, no TensorFlow.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegstream.baseline import BaselinePrior
from eegstream.errors import EegstreamError
from eegstream.preprocess import FeaturePipeline, Scaler, electrode_index
from eegstream.settings import CLASSES, FS, N_BINS, PRE, WINDOW, default_model_dir

log = logging.getLogger(__name__)

__all__ = ["BUNDLE_FORMAT", "MODEL_FILES", "ModelBundle", "file_sha256", "finalize_bundle"]

BUNDLE_FORMAT = "eegstream-bundle/1"
ONNX_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
KERAS_FILE = "model.keras"
META_FILE = "model.json"
#: Model files a bundle may hold, in the order they are hashed; model.onnx is required.
MODEL_FILES: tuple[str, ...] = (ONNX_FILE, FP16_FILE, KERAS_FILE)
#: Keys model.json must have.
REQUIRED_KEYS: tuple[str, ...] = (
    "format",
    "classes",
    "electrodes",
    "fs",
    "window",
    "pre",
    "post",
    "filter",
    "scaler",
    "files",
    "flops_per_window",
)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelBundle:
    """A validated bundle; build it with :meth:`load`."""

    dir: Path
    meta: dict[str, Any]
    sha256: str  #: content hash of model.onnx + model.json: identifies the model in events/health
    scaler: Scaler
    features: FeaturePipeline
    onnx_path: Path
    keras_path: Path | None = None  #: None when the bundle has no Keras model
    fp16_onnx_path: Path | None = None  #: None when the bundle has no float16 variant
    classes: tuple[str, ...] = field(default=CLASSES)
    electrodes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The bundle folder's name (``default`` for the shipped model)."""
        return self.dir.name

    @property
    def flops_per_window(self) -> int:
        """Floating-point operations of one forward pass for one window (the bench uses it)."""
        return int(self.meta["flops_per_window"])

    @classmethod
    def load(cls, path: Path | str | None = None) -> ModelBundle:
        """Read and validate a bundle folder (default: the shipped ``eegstream/models/default``)."""
        directory = Path(path) if path is not None else default_model_dir()
        if not directory.is_dir():
            raise EegstreamError(
                f"model bundle folder {directory} does not exist; expected a folder with "
                f"{ONNX_FILE} and {META_FILE}; pass --model DIR or train one with "
                "`eegstream train --out DIR`"
            )
        meta = _read_meta(directory)
        files = meta["files"]
        present: dict[str, Path] = {}
        for name in MODEL_FILES:
            fpath = directory / name
            if name in files and not fpath.is_file():
                if name == ONNX_FILE:
                    raise EegstreamError(
                        f"{fpath} is missing; {META_FILE} lists it and it is required; copy the "
                        "whole bundle folder or retrain with `eegstream train --out DIR`"
                    )
                log.warning("bundle %s: %s listed in %s but absent", directory, name, META_FILE)
                continue
            if not fpath.is_file():
                continue
            if name not in files:
                raise EegstreamError(
                    f"{fpath} is not listed in {directory / META_FILE}; it does not belong to "
                    "this bundle; delete it or copy the bundle folder from one training run"
                )
            expected = str(files[name].get("sha256", "")) if isinstance(files[name], dict) else ""
            actual = file_sha256(fpath)
            if actual != expected:
                raise EegstreamError(
                    f"{fpath} does not match {META_FILE}: sha256 {actual[:12]}..., expected "
                    f"{expected[:12] or '<none>'}...; the files come from different training "
                    "runs; copy the whole bundle folder from one run or retrain"
                )
            present[name] = fpath
        if ONNX_FILE not in present:
            raise EegstreamError(
                f"{directory / ONNX_FILE} is missing or not listed in {META_FILE}; a bundle "
                "needs both; retrain with `eegstream train --out DIR`"
            )
        scaler = Scaler.from_dict(meta["scaler"])
        electrodes = tuple(meta["electrodes"])
        prior = BaselinePrior.from_dict(meta["baseline"]) if "baseline" in meta else None
        features = FeaturePipeline(scaler, electrodes, fs=float(meta["fs"]), prior=prior)
        content = hashlib.sha256()
        content.update(bytes.fromhex(files[ONNX_FILE]["sha256"]))
        content.update((directory / META_FILE).read_bytes())
        log.debug("loaded bundle %s (%s)", directory, content.hexdigest()[:12])
        return cls(
            dir=directory,
            meta=meta,
            sha256=content.hexdigest(),
            scaler=scaler,
            features=features,
            onnx_path=present[ONNX_FILE],
            keras_path=present.get(KERAS_FILE),
            fp16_onnx_path=present.get(FP16_FILE),
            classes=tuple(meta["classes"]),
            electrodes=electrodes,
        )


def _read_meta(directory: Path) -> dict[str, Any]:
    """Parse and check model.json; every message names the file and the offending key."""
    path = directory / META_FILE
    if not path.is_file():
        raise EegstreamError(
            f"{path} is missing; a bundle needs {META_FILE} beside {ONNX_FILE}; copy the whole "
            "bundle folder or retrain with `eegstream train --out DIR`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EegstreamError(f"{path} is not valid JSON ({exc}); restore it or retrain") from exc
    if not isinstance(meta, dict):
        raise EegstreamError(f"{path} must hold a JSON object; got {type(meta).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise EegstreamError(
            f"{path} lacks key(s) {', '.join(missing)}; expected all of "
            f"{', '.join(REQUIRED_KEYS)}; the file is damaged or from another tool; retrain"
        )
    if meta["format"] != BUNDLE_FORMAT:
        raise EegstreamError(
            f"{path}: format is {meta['format']!r}, expected {BUNDLE_FORMAT!r}; this eegstream "
            "cannot read that bundle; retrain it with this version"
        )
    checks: list[tuple[str, Any, Any]] = [
        (
            "classes",
            list(meta["classes"]) if isinstance(meta["classes"], list) else None,
            list(CLASSES),
        ),
        ("fs", meta["fs"], FS),
        ("window", meta["window"], WINDOW),
        ("pre", meta["pre"], PRE),
        ("post", meta["post"], WINDOW - PRE),
    ]
    for key, got, want in checks:
        if got != want:
            raise EegstreamError(
                f"{path}: {key} is {meta[key]!r}, this eegstream needs {want!r}; the bundle "
                "was made for a different setup; retrain it with `eegstream train`"
            )
    if not isinstance(meta["electrodes"], list) or not meta["electrodes"]:
        raise EegstreamError(f"{path}: electrodes must be a non-empty list of names")
    electrode_index(meta["electrodes"])
    if not isinstance(meta["files"], dict):
        raise EegstreamError(f"{path}: files must map file names to {{'sha256': ...}}")
    return meta


def finalize_bundle(directory: Path, meta: Mapping[str, Any]) -> ModelBundle:
    """Hash the model files already written in ``directory``, write model.json, load it back.

    ``meta`` holds everything but ``format``, ``files`` and ``created``, which are filled here;
    ``scaler`` must have shape ``(len(electrodes), 33)``.
    """
    files: dict[str, dict[str, Any]] = {}
    for name in MODEL_FILES:
        fpath = directory / name
        if fpath.is_file():
            files[name] = {"sha256": file_sha256(fpath), "bytes": fpath.stat().st_size}
    if ONNX_FILE not in files:
        raise EegstreamError(f"cannot finalise bundle {directory}: {ONNX_FILE} was not written")
    full: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **dict(meta),
        "files": files,
    }
    scaler = full["scaler"]
    if len(scaler["mean"]) != len(full["electrodes"]) or len(scaler["mean"][0]) != N_BINS:
        raise EegstreamError(
            f"cannot finalise bundle {directory}: scaler is not {len(full['electrodes'])} x {N_BINS}"
        )
    (directory / META_FILE).write_text(json.dumps(full, indent=1) + "\n", encoding="utf-8")
    return ModelBundle.load(directory)
