"""``eegstream train``: recordings (and/or simulated subjects) -> a validated model bundle.

Steps: load or simulate recordings (one subject each); hold out whole subjects for the final
report (15 %) and for validation (10 % of the rest); plan labelled windows
(:mod:`eegstream.dataset`) and split the training subjects' windows at random by 4-s block into
train / test; augment the training windows; fit the scaler on the training windows only; train
the CNN (:mod:`eegstream.model`) with early stopping on the validation subjects' loss; export ONNX
(:mod:`eegstream.export`); score the exported ONNX model -- the one that will run -- on the
held-out windows and the held-out subjects; write the bundle (:mod:`eegstream.bundle`).

TensorFlow and ONNX load only inside :func:`train_bundle`, with an error naming the extra to
install when they are absent.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import eegstream
from eegstream.baseline import BaselinePrior
from eegstream.bundle import ModelBundle, finalize_bundle
from eegstream.dataset import (
    Augmentation,
    WindowConfig,
    class_weights,
    drop_electrodes,
    person_locations,
    plan_windows,
    split_groups,
    split_units,
    window_psd,
)
from eegstream.errors import EegstreamError
from eegstream.io.recording import Recording
from eegstream.preprocess import LOG_EPS, Scaler, log_power
from eegstream.settings import (
    BAND,
    CLASSES,
    FILTER_ORDER,
    FS,
    MODEL_ELECTRODES,
    N_BINS,
    POST,
    PRE,
    WINDOW,
)

log = logging.getLogger(__name__)

__all__ = [
    "TrainOptions",
    "TrainingSources",
    "confounder_spans",
    "confusion_report",
    "evaluate_bundle",
    "format_report",
    "load_training_inputs",
    "sample_weights",
    "simulated_seed",
    "train_bundle",
    "train_from_sources",
]

I64 = npt.NDArray[np.int64]
#: Fraction of subjects (recordings) held out entirely for the "unseen subjects" report.
SUBJECT_HOLDOUT = 0.15
#: Fraction of the other subjects whose windows validate (early stopping): generalising to new
#: subjects is what matters, and a random split of training subjects' windows is too easy to
#: stop on (its loss bottomed out after 1-6 epochs, on noise).
VAL_SUBJECTS = 0.1
#: Random split of the training subjects' windows by 4-s block: train / validation / test
#: (validation only when there are too few subjects to hold some out for it).
RANDOM_SPLIT = (0.8, 0.1, 0.1)
DROPOUT_P = 0.1  #: fraction of training windows with one electrode's features zeroed
BATCH_SIZE = 128
PATIENCE = 5
#: Epochs trained before early stopping may pick one: with real sessions in the validation set
#: its loss was lowest after epoch 1 (a few confident real windows), while the small blinks of
#: simulated subjects are learnt later (1 of 8 unseen subjects kept only 2 of 33 blinks).
MIN_EPOCHS = 4
EVAL_COPIES = 4  #: jittered windows per event in the held-out-subject set
#: Extra "nothing" windows per simulated confounder kind (x WindowConfig.confounder_copies).
#: Talking EMG is the one look-alike a clench detector confuses (11 % of talk windows called
#: jaw_clench at weight 1, measured on 10 unseen subjects), so it gets three times the windows;
#: "dropout" spans are interpolated samples, not look-alikes.
#: Horizontal eye movements and tongue movements are what real EPOC+ data show the model
#: confusing with blinks (lookleft/lookright/tongue epochs called blink 28-48 % by a model
#: trained at weight 1 and without tongue potentials; training part of the real epochs).
CONFOUNDER_WEIGHT: dict[str, int] = {"talk": 3, "saccade": 3, "tongue": 3, "pop": 1}
#: Times each real (``always_train``) session is planned: 859 real epochs are few beside 60
#: simulated subjects, so their windows are drawn at several random jitters each.
REAL_WEIGHT: int = 2
#: Share of the training loss carried by real EEG windows when real sessions are given
#: (:func:`sample_weights`).
REAL_SHARE: float = 0.5


@dataclass(frozen=True)
class TrainOptions:
    """Knobs of one training run (the CLI fills them; tests shrink them)."""

    epochs: int = 60
    seed: int = 0
    batch_size: int = BATCH_SIZE
    patience: int = PATIENCE
    verbose: int = 2  #: Keras progress: 0 silent, 1 progress bar, 2 one line per epoch
    fp16: bool = True  #: also write model.fp16.onnx


def sample_weights(y: I64, real: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """Per-window loss weights: classes balanced within each source, real EEG ``REAL_SHARE``.

    Without it the simulator's windows (tens of thousands) drown the real ones and the model
    learns the simulator's idea of a blink; with only real windows it would know one person.
    Mean 1 over the windows.
    """
    w = np.zeros(len(y), dtype=np.float64)
    mixed = bool(real.any() and (~real).any())
    parts = [(real, REAL_SHARE), (~real, 1.0 - REAL_SHARE)] if mixed else [(real | ~real, 1.0)]
    for mask, share in parts:
        counts = np.bincount(y[mask], minlength=len(CLASSES)).astype(np.float64)
        present = counts > 0
        cw = np.where(present, 1.0 / np.maximum(counts, 1) / present.sum(), 0.0)
        w[mask] = cw[y[mask]] * share
    return np.asarray(w * len(y) / w.sum(), dtype=np.float32)


def simulated_seed(seed: int, i: int) -> int:
    """Simulator seed of subject ``i`` in a run with ``--seed seed`` (recorded in model.json)."""
    return seed * 100_000 + i


def _import_training() -> tuple[Any, Any]:
    """Keras and TensorFlow, or an error that says how to install them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner
    try:
        import keras
        import onnx  # noqa: F401  (export needs it; fail before hours of training, not after)
        import tensorflow as tf
    except ImportError as exc:
        raise EegstreamError(
            f"training needs TensorFlow, Keras and ONNX, which are not installed ({exc}); "
            "install them with: pip install 'eegstream[train]'"
        ) from exc
    return keras, tf


def confusion_report(y_true: I64, y_pred: I64) -> dict[str, Any]:
    """Confusion matrix (rows true, columns predicted) and per-class precision/recall/F1."""
    k = len(CLASSES)
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    true = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, pred, out=np.zeros(k), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros(k), where=true > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "confusion": cm.tolist(),
        "per_class": {
            c: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "n": int(true[i]),
            }
            for i, c in enumerate(CLASSES)
        },
    }


def format_report(title: str, rep: dict[str, Any] | None) -> str:
    """Human-readable confusion matrix and per-class scores."""
    if rep is None:
        return f"{title}: n/a (needs at least 2 recordings/subjects)\n"
    w = max(len(c) for c in CLASSES) + 2
    lines = [f"{title}: {rep['n']} windows, accuracy {rep['accuracy']:.4f}"]
    lines.append("  true \\ predicted".ljust(w + 2) + "".join(c.rjust(w) for c in CLASSES))
    for c, row in zip(CLASSES, rep["confusion"], strict=True):
        lines.append(f"  {c}".ljust(w + 2) + "".join(str(v).rjust(w) for v in row))
    lines.append("  class".ljust(w + 2) + "precision".rjust(11) + "recall".rjust(9) + "f1".rjust(9))
    for c in CLASSES:
        m = rep["per_class"][c]
        lines.append(
            f"  {c}".ljust(w + 2)
            + f"{m['precision']:11.4f}{m['recall']:9.4f}{m['f1']:9.4f}  (n={m['n']})"
        )
    return "\n".join(lines) + "\n"


def _versions(keras: Any, tf: Any) -> dict[str, str]:
    """Library versions that produced the bundle."""
    import onnx

    out = {
        "eegstream": eegstream.__version__,
        "keras": str(keras.__version__),
        "tensorflow": str(tf.__version__),
        "onnx": str(onnx.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    try:
        out["scipy"] = importlib.metadata.version("scipy")
    except importlib.metadata.PackageNotFoundError:
        pass
    return out


def train_bundle(
    recordings: Sequence[Recording],
    out: Path,
    *,
    options: TrainOptions | None = None,
    confounders: Sequence[I64 | None] | None = None,
    description: dict[str, Any] | None = None,
    window_config: WindowConfig | None = None,
    augmentation: Augmentation | None = None,
    always_train: Sequence[bool] | None = None,
) -> tuple[ModelBundle, dict[str, Any]]:
    """Train on ``recordings`` (one subject each), write a bundle to ``out``, return it + metrics.

    ``confounders`` (per recording, optional) are unlabelled look-alike spans used for extra
    "nothing" windows; ``description`` is stored in model.json under ``training.data``;
    recordings flagged in ``always_train`` (real epoch sessions: scarce, and already held out
    by the caller) are never held out as subjects and count ``REAL_WEIGHT`` times.
    Features are log-power relative to each recording's own person baseline
    (:func:`~eegstream.dataset.person_locations`), the converged state of the detector's
    :class:`~eegstream.baseline.PersonBaseline`, whose prior the bundle stores.
    """
    opts = options or TrainOptions()
    cfg = window_config or WindowConfig()
    aug = augmentation or Augmentation()
    keras, tf = _import_training()
    from eegstream.export import flops_per_window, keras_to_onnx, save_onnx, to_fp16
    from eegstream.model import build_model

    t_start = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence([opts.seed, 3]))
    conf = list(confounders) if confounders is not None else [None] * len(recordings)

    # subjects: held out for the final report / validation (early stopping) / training
    fixed = list(always_train) if always_train is not None else [False] * len(recordings)
    pool = [i for i in range(len(recordings)) if not fixed[i]]
    held = [pool[j] for j in split_groups(len(pool), SUBJECT_HOLDOUT, rng).tolist()]
    rest = [i for i in pool if i not in held]
    val_subjects = [rest[j] for j in split_groups(len(rest), VAL_SUBJECTS, rng).tolist()]
    if len(rest) - len(val_subjects) < 2:
        val_subjects = []  # too few subjects: validate on random blocks of the training ones
    real = [i for i in range(len(recordings)) if fixed[i]]
    # one real session validates too, when there are several: early stopping must see real
    # EEG, or it stops where the simulator is best (measured: 4 of 6 real eye-movement
    # confounders then went to "blink" 39-56 % of the time)
    real_val = [real[int(rng.integers(len(real)))]] if len(real) >= 3 and val_subjects else []
    real = [i for i in real if i not in real_val]
    train_ids = [i for i in rest if i not in val_subjects] + real * REAL_WEIGHT
    train_recs = [recordings[i] for i in train_ids]
    locs, spreads = person_locations(recordings, config=cfg, confounders=conf)
    plan = plan_windows(
        train_recs, seed=opts.seed, config=cfg, confounders=[conf[i] for i in train_ids]
    )
    eval_cfg = WindowConfig(**{**asdict(cfg), "copies": EVAL_COPIES})

    def relative(psd: npt.NDArray[np.float32], rec_ids: I64) -> npt.NDArray[np.float32]:
        """Log-power relative to each window's recording's person baseline."""
        return np.asarray(log_power(psd) - locs[rec_ids], dtype=np.float32)

    def unseen(ids: list[int], seed: int) -> tuple[npt.NDArray[np.float32], I64, I64]:
        """Relative log-power, labels and recording of whole subjects never trained on."""
        recs = [recordings[i] for i in ids]
        p = plan_windows(recs, seed=seed, config=eval_cfg, confounders=[conf[i] for i in ids])
        rec_ids = np.asarray(ids, dtype=np.int64)[p.rec]
        return relative(window_psd(recs, p), rec_ids), p.y, rec_ids

    train_map = np.asarray(train_ids, dtype=np.int64)
    if val_subjects:
        m_train, m_test = split_units(plan.unit, RANDOM_SPLIT[::2], rng)
        rel_val, y_val, val_rec = unseen(val_subjects + real_val, opts.seed + 2)
    else:
        m_train, m_val, m_test = split_units(plan.unit, RANDOM_SPLIT, rng)
        p_val = plan.subset(m_val)
        val_rec = train_map[p_val.rec]
        rel_val, y_val = relative(window_psd(train_recs, p_val), val_rec), p_val.y
    p_train, p_test = plan.subset(m_train), plan.subset(m_test)
    log.info("windows: train %s, random test %s", p_train.counts(), p_test.counts())
    weights = class_weights(p_train.y)
    is_real = np.asarray(fixed, dtype=bool)
    w_train = sample_weights(p_train.y, is_real[train_map[p_train.rec]])
    w_val = sample_weights(y_val, is_real[val_rec])

    psd_train = window_psd(train_recs, p_train, augment=aug, seed=opts.seed)
    rel_train = relative(psd_train, train_map[p_train.rec])
    scaler = Scaler.fit_log(rel_train)
    trained_on = sorted(set(train_ids))
    prior = BaselinePrior(locs[trained_on].mean(axis=0), spreads[trained_on].mean(axis=0))
    x_train = drop_electrodes(scaler.standardise(rel_train), rng, DROPOUT_P)
    x_val = scaler.standardise(rel_val)
    x_test = scaler.standardise(relative(window_psd(train_recs, p_test), train_map[p_test.rec]))
    x_held, y_held = None, None
    if held:
        rel_held, y_held, _ = unseen(held, opts.seed + 1)
        x_held = scaler.standardise(rel_held)

    tf.config.experimental.enable_op_determinism()
    model = build_model(seed=opts.seed)
    monitor = "val_loss" if len(y_val) else "loss"
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=2, verbose=0),
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=opts.patience,
            restore_best_weights=True,
            start_from_epoch=min(MIN_EPOCHS, opts.epochs) - 1,
        ),
    ]
    history = model.fit(
        x_train,
        p_train.y,
        sample_weight=w_train,
        validation_data=(x_val, y_val, w_val) if len(y_val) else None,
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        callbacks=callbacks,
        shuffle=True,
        verbose=opts.verbose,
    )
    fit_s = time.perf_counter() - t_start
    watched = history.history[monitor]
    first = min(MIN_EPOCHS, len(watched)) - 1  # EarlyStopping(start_from_epoch) looks from here
    best_epoch = first + int(np.argmin(watched[first:])) + 1  # the weights it restored

    # the bundle keeps an uncompiled copy: no optimizer state in model.keras
    final = build_model(seed=opts.seed, compile=False)
    final.set_weights(model.get_weights())
    proto = keras_to_onnx(final)

    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])

    def predict(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(session.run(None, {"features": x})[0], dtype=np.float32)

    check = x_val[:1000] if len(x_val) else x_train[:1000]
    onnx_diff = float(np.max(np.abs(predict(check) - final(check, training=False).numpy())))
    metrics: dict[str, Any] = {
        "held_out_windows": confusion_report(p_test.y, predict(x_test).argmax(1))
        if len(p_test)
        else None,
        "held_out_subjects": confusion_report(y_held, predict(x_held).argmax(1))
        if x_held is not None and y_held is not None
        else None,
        "onnx_vs_keras_max_abs_diff": onnx_diff,
        "epochs_run": len(history.history["loss"]),
        "best_epoch": best_epoch,
        "best_" + monitor: float(watched[best_epoch - 1]),
        "train_seconds": round(fit_s, 1),
    }

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.fp16.onnx", "model.keras"):
        (out / stale).unlink(missing_ok=True)
    save_onnx(proto, out / "model.onnx")
    if opts.fp16:
        save_onnx(to_fp16(proto), out / "model.fp16.onnx")
    final.save(out / "model.keras")
    meta: dict[str, Any] = {
        "classes": list(CLASSES),
        "electrodes": list(MODEL_ELECTRODES),
        "fs": FS,
        "window": WINDOW,
        "pre": PRE,
        "post": POST,
        "filter": {
            "type": "butterworth",
            "band_hz": list(BAND),
            "order": FILTER_ORDER,
            "form": "sos",
            "initial_state": "rest",
            "demean_per_window": True,
        },
        "features": {
            "psd": "welch",
            "nperseg": WINDOW,
            "window": "hann",
            "scaling": "density",
            "bins": N_BINS,
            "transform": "log10(psd + eps) minus the stream's person baseline (prior: "
            "'baseline'), standardised per electrode and bin",
            "log_eps": LOG_EPS,
        },
        "scaler": scaler.to_dict(),
        "baseline": prior.to_dict(),
        "onnx": {"input": "features", "output": "probs", "opset": proto.opset_import[0].version},
        "flops_per_window": flops_per_window(proto),
        "training": {
            "data": description or {},
            "recordings": [r.source for r in recordings],
            "always_trained": [recordings[i].source for i in real],
            "real_validation": [recordings[i].source for i in real_val],
            "real_weight": REAL_WEIGHT,
            "real_share": REAL_SHARE,
            "held_out_recordings": [recordings[i].source for i in held],
            "validation_recordings": [recordings[i].source for i in val_subjects],
            "windows": {
                "train": p_train.counts(),
                "validation": {c: int(np.sum(y_val == i)) for i, c in enumerate(CLASSES)},
                "test": p_test.counts(),
            },
            "window_config": {k: v for k, v in asdict(cfg).items() if k != "unknown_extent_s"}
            | {"unknown_extent_s": dict(cfg.unknown_extent_s)},
            "augmentation": asdict(aug) | {"electrode_dropout_p": DROPOUT_P},
            "class_weights": {CLASSES[k]: round(v, 4) for k, v in weights.items()},
            "options": asdict(opts),
            "machine": f"{platform.machine()} x{os.cpu_count()}",
        },
        "metrics": metrics,
        "versions": _versions(keras, tf),
    }
    bundle = finalize_bundle(out, meta)
    log.info("wrote bundle %s (%s)", out, bundle.sha256[:12])
    return bundle, metrics


def evaluate_bundle(
    bundle: ModelBundle,
    recordings: Sequence[Recording],
    *,
    confounders: Sequence[I64 | None] | None = None,
    seed: int = 0,
    copies: int = EVAL_COPIES,
) -> dict[str, Any]:
    """Window-level report of a bundle's ONNX model on labelled recordings (no augmentation).

    Windows are planned exactly as for training (``copies`` jittered windows per event), so the
    figure is comparable with the held-out-subject report written at training time.
    """
    import onnxruntime as ort

    plan = plan_windows(
        recordings,
        seed=seed,
        config=WindowConfig(copies=copies),
        confounders=confounders,
        electrodes=bundle.electrodes,
    )
    psd = window_psd(recordings, plan, electrodes=bundle.electrodes)
    if bundle.features.prior is None:
        x = bundle.scaler.transform(psd)
    else:
        locs, _ = person_locations(
            recordings, confounders=confounders, electrodes=bundle.electrodes
        )
        x = bundle.scaler.standardise(log_power(psd) - locs[plan.rec])
    session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    probs = np.asarray(session.run(None, {"features": x})[0])
    return confusion_report(plan.y, probs.argmax(axis=1))


def confounder_spans(truth: Mapping[str, I64]) -> I64 | None:
    """Simulator ground truth ``{kind: (k, 2) [start, length]}`` -> weighted ``(k, 3)`` spans."""
    parts = [
        np.column_stack([spans, np.full(len(spans), CONFOUNDER_WEIGHT[kind])])
        for kind, spans in truth.items()
        if kind in CONFOUNDER_WEIGHT and len(spans)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else None


@dataclass(frozen=True)
class TrainingSources:
    """What one training run learns from: recording files, simulated subjects, labelled epochs."""

    files: tuple[Path, ...] = ()
    marker_map: Mapping[int, str] | None = None  #: labels of the files' marker codes, first
    simulate: int = 0  #: simulated subjects
    seed: int = 0  #: the simulated subjects' seeds (:func:`simulated_seed`) and epoch sessions
    sim_duration: float = 240.0  #: seconds per simulated subject
    epochs: Path | None = None  #: folder of labelled epochs; their training part is mixed in
    label_map: Mapping[str, str] | None = None  #: gesture -> class (default: DEFAULT_LABEL_MAP)
    epoch_fs: float = 256.0  #: sampling rate of the epoch files


def load_training_inputs(
    sources: TrainingSources,
) -> tuple[list[Recording], list[I64 | None], dict[str, Any]]:
    """Read the recording files (labels: ``marker_map`` first) and simulate the subjects.

    Returns the recordings (one subject each), their confounder spans (simulated subjects and
    epoch sessions know theirs) and the description of the inputs that ``model.json`` keeps.
    """
    recordings: list[Recording] = []
    confounders: list[I64 | None] = []
    files = list(sources.files)
    if files:
        from eegstream.io.emotiv import read_recording

        for path in files:
            recordings.append(read_recording(path, target_fs=FS, marker_map=sources.marker_map))
            confounders.append(None)
    sims: list[int] = []
    if sources.simulate:
        from eegstream.simulate import simulate_with_truth

        for i in range(sources.simulate):
            seed = simulated_seed(sources.seed, i)
            rec, truth = simulate_with_truth(sources.sim_duration, seed)
            recordings.append(rec)
            confounders.append(confounder_spans(truth.confounders))
            sims.append(seed)
    description: dict[str, Any] = {"files": [str(p) for p in files]}
    if sources.epochs is not None:
        from eegstream.io.epochs import (
            DEFAULT_LABEL_MAP,
            HOLDOUT_RULE,
            read_epochs,
            training_sessions,
            with_spontaneous_blinks,
        )

        label_map = sources.label_map if sources.label_map is not None else DEFAULT_LABEL_MAP
        epochs = with_spontaneous_blinks(
            read_epochs(sources.epochs, label_map, fs=sources.epoch_fs, part="train", progress=True)
        )
        sessions = training_sessions(epochs, seed=sources.seed)
        for sess in sessions:
            sess.recording.metadata["epoch_session"] = True
            recordings.append(sess.recording)
            confounders.append(sess.confounders())
        counts: dict[str, int] = {}
        for e in epochs:
            counts[e.gesture] = counts.get(e.gesture, 0) + 1
        description["epochs"] = {
            "folder": str(sources.epochs),
            "part": f"training part: every epoch but the held-out ones ({HOLDOUT_RULE})",
            "label_map": dict(label_map),
            "relabelled": "rest epochs holding a spontaneous blink are blinks "
            "(eegstream.io.epochs.with_spontaneous_blinks)",
            "epochs_per_gesture": counts,
            "sessions": len(sessions),
            "fs": sources.epoch_fs,
            "assembly": "eegstream.io.epochs.training_sessions(epochs, seed)",
        }
    if sims:
        description["simulated"] = {
            "subjects": len(sims),
            "seeds": [sims[0], sims[-1]],
            "duration_s": sources.sim_duration,
            "generator": "eegstream.simulate.simulate_with_truth(duration, seed)",
        }
    return recordings, confounders, description


def train_from_sources(
    sources: TrainingSources, out: Path, *, options: TrainOptions | None = None
) -> tuple[ModelBundle, dict[str, Any]]:
    """What ``eegstream train`` runs: check the training extra, load the inputs, train, export.

    TensorFlow is checked before the inputs are read, so a missing extra fails in a second,
    not after minutes of reading and simulating. Epoch sessions always go to training.
    """
    _import_training()
    recordings, confounders, description = load_training_inputs(sources)
    return train_bundle(
        recordings,
        out,
        options=options,
        confounders=confounders,
        description=description,
        always_train=[bool(r.metadata.get("epoch_session")) for r in recordings],
    )
