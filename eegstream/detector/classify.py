"""Features and inference: the classifiable windows of one or several streams in one engine call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from eegstream.detector.checks import WindowBatch
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.preprocess import FeaturePipeline
from eegstream.settings import N_BINS

__all__ = ["classify_together", "featurize_batches"]


def featurize_batches(
    features: FeaturePipeline, batches: Sequence[WindowBatch]
) -> npt.NDArray[np.float32]:
    """Model input of the classifiable windows of several batches (streams) in one pass.

    One log-power computation over all windows, flat electrodes marked NaN (-> features 0, the
    training mean, as electrode dropout taught), the log-power kept in each batch for its
    person baseline to learn from, then each window standardised relative to its stream's
    baseline location (``refs``).
    """
    parts = [b for b in batches if b.m]
    if not parts:
        return np.zeros((0, len(features.electrodes), N_BINS), np.float32)
    windows = parts[0].windows if len(parts) == 1 else np.concatenate([b.windows for b in parts])
    logp = features.log_power(windows)
    flat = np.concatenate([b.flat for b in parts]) if len(parts) > 1 else parts[0].flat
    if flat.any():
        logp[flat] = np.nan
    pos = 0
    for b in parts:
        if b.logp is not None:
            b.logp[...] = logp[pos : pos + b.m]
        pos += b.m
    refs = [b.refs for b in parts]
    if all(r is None for r in refs):
        return features.standardise(logp)
    if any(r is None for r in refs):
        raise EegstreamError("featurize_batches: batches mix detectors with and without baselines")
    ref = refs[0] if len(parts) == 1 else np.concatenate([r for r in refs if r is not None])
    return features.standardise(logp, ref)


def classify_together(
    engine: Engine, features: FeaturePipeline, batches: Sequence[WindowBatch]
) -> list[npt.NDArray[np.float32] | None]:
    """Probabilities for the classifiable windows of several streams in ONE engine call.

    One feature pass over the concatenated windows (:func:`featurize_batches`:
    flat electrodes set to 0, each stream relative to its own person baseline), one
    ``engine.infer``; the result is split back per batch
    (``None`` where a batch has nothing to classify), ready for :meth:`Detector.apply`.
    """
    sizes = [b.m for b in batches]
    if not any(sizes):
        return [None] * len(batches)
    feats = featurize_batches(features, batches)
    probs = engine.infer(feats)
    ends = np.cumsum(sizes).tolist()
    return [probs[e - m : e] if m else None for m, e in zip(sizes, ends, strict=True)]
