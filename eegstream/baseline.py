"""Running baselines: the signal's mean for fault limits, and the person's resting power.

Two estimators the feature path (:mod:`eegstream.preprocess`) and the detector share, free of
threads and I/O:

* :class:`Baseline` -- per-channel mean of the first 30 s (the running mean until then), kept for
  signal-fault limits;
* :class:`PersonBaseline` -- the person's resting ``log10`` power per (electrode, bin), a robust
  running location kept per stream, started from the bundle's :class:`BaselinePrior`; features
  are ``log10`` power relative to it. Training uses the same estimator in batch form
  (:func:`robust_location`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError
from eegstream.settings import BASELINE_S, ELECTRODES, FS, MODEL_ELECTRODES

__all__ = [
    "ADAPT_S",
    "BLOCK",
    "CLIP",
    "PRIOR_S",
    "WARMUP_S",
    "Baseline",
    "BaselinePrior",
    "PersonBaseline",
    "robust_location",
]

FloatArray = npt.NDArray[np.floating[Any]]
F32 = npt.NDArray[np.float32]

#: Samples per person-baseline block (1 s). The baseline changes only between blocks and a
#: window in block ``b`` uses the state after block ``b - 2``: the state a window sees then does
#: not depend on how the stream was chunked, so live and offline give the same features.
BLOCK: int = FS
#: Seconds of classified windows during which every window (not only resting ones) updates the
#: person baseline: at the start the prior may be far from this person (a decade of muscle
#: power), so judging "resting" with it would freeze a wrong baseline.
WARMUP_S: float = 20.0
#: Time constant (s of resting windows) of the running location after the warm-up: slow, so an
#: artifact-rich minute barely moves it.
ADAPT_S: float = 120.0
#: Weight of the bundle's prior, in seconds of windows: the first seconds lean on it.
PRIOR_S: float = 1.0
#: Residuals beyond this many mean absolute deviations are clipped (Huber): a blink that slips
#: into the resting set moves the location by a bounded step.
CLIP: float = 3.0


def robust_location(logp: FloatArray, clip: float = CLIP) -> tuple[F32, F32]:
    """Huber-clipped mean and mean absolute deviation of ``(n, electrodes, bins)`` over windows.

    The batch form of :class:`PersonBaseline`'s update (same clipping), used by training on a
    recording's resting windows. NaN entries (dead electrodes) are skipped.
    """
    x = np.asarray(logp, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] < 1:
        raise EegstreamError(f"robust_location: need (n >= 1, electrodes, bins); got {x.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: a dead electrode
        loc = np.nanmedian(x, axis=0)
        spread = np.nanmean(np.abs(x - loc), axis=0)
        for _ in range(3):
            c = clip * np.maximum(spread, 1e-3)
            r = np.clip(x - loc, -c, c)
            loc = loc + np.nanmean(r, axis=0)
            spread = np.nanmean(np.minimum(np.abs(x - loc), c), axis=0)
    loc = np.nan_to_num(loc, nan=0.0)
    spread = np.nan_to_num(spread, nan=1.0)
    return loc.astype(np.float32), np.maximum(spread, 1e-3).astype(np.float32)


class Baseline:
    """Streaming per-channel mean of the first ``seconds`` of a recording or stream.

    Until ``seconds`` have been seen ``value`` is the mean so far; afterwards it is frozen, so the
    offline and live paths agree sample for sample. Non-finite samples (gaps, missing electrodes)
    are skipped per channel; a channel with no finite sample yet has baseline 0.
    """

    def __init__(
        self, n_channels: int = len(ELECTRODES), fs: float = FS, seconds: float = BASELINE_S
    ):
        self.n_channels = n_channels
        self.fs = fs
        self.seconds = seconds
        self.target = max(1, round(seconds * fs))
        self._sum = np.zeros(n_channels, dtype=np.float64)
        self._count = np.zeros(n_channels, dtype=np.int64)
        self._value = np.zeros(n_channels, dtype=np.float64)
        self.seen = 0

    def reset(self) -> None:
        """Forget everything (a new stream, or a reconnect to a different device)."""
        self._sum[:] = 0.0
        self._count[:] = 0
        self._value[:] = 0.0
        self.seen = 0

    @property
    def ready(self) -> bool:
        """True once the full averaging period has been seen and the value is frozen."""
        return self.seen >= self.target

    @property
    def value(self) -> npt.NDArray[np.float64]:
        """Current per-channel baseline ``(n_channels,)`` (read-only view)."""
        view = self._value.view()
        view.setflags(write=False)
        return view

    def update(self, chunk: FloatArray) -> None:
        """Add samples ``(n, n_channels)``; only the part inside the averaging period counts."""
        if self.ready:
            return
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise EegstreamError(
                f"Baseline.update: chunk must have shape (n, {self.n_channels}); got {x.shape}"
            )
        part = x[: self.target - self.seen]
        finite = np.isfinite(part)
        self._sum += np.where(finite, part, 0.0).sum(axis=0)
        self._count += finite.sum(axis=0)
        self.seen += part.shape[0]
        np.divide(self._sum, self._count, out=self._value, where=self._count > 0)


@dataclass(frozen=True)
class BaselinePrior:
    """Where every person baseline starts: the training recordings' mean resting log-power.

    ``loc`` and ``spread`` are ``(electrodes, bins)``: the mean over training recordings of each
    recording's :func:`robust_location` of its resting windows. Stored in ``model.json`` under
    ``baseline``; a bundle without it has absolute features (no person baseline).

    A user profile (:mod:`eegstream.profile`) holds the same two arrays measured on one person's
    calibration rest: then ``weight_s`` is that rest's length (the first live windows barely move
    it) and ``warm`` skips the warm-up, since the starting point is already this person's.
    """

    loc: F32
    spread: F32
    #: seconds of windows the starting point weighs as (the bundle's prior: ``PRIOR_S``)
    weight_s: float = PRIOR_S
    #: start warm: only resting windows update it from the first window on (a profile's rest)
    warm: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored in ``model.json``."""
        return {
            "loc": np.round(self.loc, 5).tolist(),
            "spread": np.round(self.spread, 5).tolist(),
            "estimator": "Huber-clipped mean of resting log10 power",
            "clip": CLIP,
            "block_s": BLOCK / FS,
            "warmup_s": WARMUP_S,
            "adapt_s": ADAPT_S,
            "prior_s": PRIOR_S,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselinePrior:
        """Inverse of :meth:`to_dict`."""
        try:
            loc = np.asarray(data["loc"], np.float32)
            spread = np.asarray(data["spread"], np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EegstreamError(
                f"baseline in model.json must be {{'loc': [[...]], 'spread': [[...]]}} ({exc}); "
                "retrain the model"
            ) from exc
        if loc.ndim != 2 or loc.shape != spread.shape or not np.all(spread > 0):
            raise EegstreamError(
                f"baseline in model.json: loc {loc.shape} and spread {spread.shape} must be equal "
                "(electrodes, bins) arrays with spread > 0; retrain the model"
            )
        return cls(loc, spread)


class PersonBaseline:
    """One stream's running robust location of resting ``log10`` power per (electrode, bin).

    Why: people differ by decades in resting muscle power and by large factors in contact noise;
    a model that judges absolute power calls a tense wearer's rest a jaw clench. Features are
    therefore log-power minus this location (:meth:`FeaturePipeline.__call__`).

    How (all per (electrode, bin), NaN entries of dead electrodes skipped):

    * starts from the bundle's :class:`BaselinePrior`, weighted as ``PRIOR_S`` seconds of windows;
    * **warm-up**: during the first ``WARMUP_S`` seconds of classified windows every classified
      window counts (the prior may be wrong enough to call all of this person's rest an
      artifact); afterwards only windows judged *resting* (``observe``'s mask: the detector
      passes "nothing" with every artifact probability below its release level), so artifacts,
      faults, NaN and settling windows never move it ("frozen" during them);
    * update: Huber-clipped residuals (``CLIP`` mean absolute deviations), a cumulative mean
      first, then an exponential average with time constant ``ADAPT_S`` seconds of windows;
    * in blocks of ``BLOCK`` samples: a window in block ``b`` is expressed relative to the state
      after block ``b - 2``, so the state it meets does not depend on chunking (live ==
      offline). The detector therefore never hands out windows beyond block ``b0 + 1`` in one
      batch (:meth:`max_end`) and commits blocks before it builds the next batch.
    """

    def __init__(
        self, prior: BaselinePrior, hop: int, electrodes: Sequence[str] = MODEL_ELECTRODES
    ) -> None:
        self.prior = prior
        self.electrodes = tuple(electrodes)
        per_s = FS / hop
        self.warmup_n = int(round(WARMUP_S * per_s))
        self.tau_n = float(ADAPT_S * per_s)
        self.prior_n = float(prior.weight_s * per_s)
        self.reset()

    def reset(self) -> None:
        """Back to the prior (a new stream, or a device with another electrode set)."""
        self.loc = self.prior.loc.astype(np.float64)
        self.spread = self.prior.spread.astype(np.float64)
        self.n = np.zeros((self.loc.shape[0], 1))  #: windows learnt per electrode
        #: classified windows committed (warm-up clock); a profile's baseline starts warm
        self.classified = self.warmup_n if self.prior.warm else 0
        self._snaps: list[tuple[int, F32]] = []  #: (block, loc after committing it)
        self._pending: dict[int, list[tuple[F32, npt.NDArray[np.bool_]]]] = {}

    @property
    def warm(self) -> bool:
        """True once the warm-up is over (only resting windows update it from then on)."""
        return self.classified >= self.warmup_n

    def max_end(self, cursor: int) -> int:
        """Largest window end a batch starting at window end ``cursor`` may include."""
        return (cursor // BLOCK + 2) * BLOCK - 1

    def refs(self, ends: npt.NDArray[np.int64]) -> F32:
        """The location each window is expressed against, ``(k, electrodes, bins)``.

        Commits every pending block before the first window's block first; the windows must lie
        in at most two consecutive blocks (:meth:`max_end`).
        """
        k = int(ends.shape[0])
        shape = (k, *self.loc.shape)
        if k == 0:
            return np.zeros(shape, np.float32)
        b0 = int(ends[0]) // BLOCK
        self.commit_before(b0)
        first = self._state(b0 - 2)
        if int(ends[-1]) // BLOCK == b0:  # the usual case live: one or two windows, one block
            return first[None] if k == 1 else np.broadcast_to(first, shape)
        blocks = ends // BLOCK
        out = np.empty(shape, np.float32)
        for b in np.unique(blocks).tolist():
            out[blocks == b] = self._state(b - 2)
        return out

    def observe(
        self, ends: npt.NDArray[np.int64], logp: FloatArray, resting: npt.NDArray[np.bool_]
    ) -> None:
        """Classified windows (end index, log-power, judged resting) for their blocks' commit."""
        if ends.shape[0] == 0:
            return
        x = np.asarray(logp, np.float32)
        b0 = int(ends[0]) // BLOCK
        if int(ends[-1]) // BLOCK == b0:  # one block (ends ascend): no grouping to do
            self._pending.setdefault(b0, []).append((x, resting))
            return
        blocks = ends // BLOCK
        for b in np.unique(blocks).tolist():
            sel = blocks == b
            self._pending.setdefault(b, []).append((x[sel], resting[sel]))

    def commit_before(self, block: int) -> None:
        """Fold every pending block older than ``block`` into the location (in block order)."""
        if not self._pending or min(self._pending) >= block:  # most calls: nothing to fold
            return
        for b in sorted(k for k in self._pending if k < block):
            parts = self._pending.pop(b)
            x = np.concatenate([p[0] for p in parts])
            rest = np.concatenate([p[1] for p in parts])
            use = x if not self.warm else x[rest]
            self.classified += int(x.shape[0])
            if use.shape[0]:
                self._update(use)
            self._snaps.append((b, self.loc.astype(np.float32)))
            del self._snaps[:-4]  # a batch needs the states of at most two blocks back

    def _update(self, x: F32) -> None:
        ok = np.isfinite(x)
        n_b = ok.sum(axis=0)  # (electrodes, bins) windows with information
        r = np.where(ok, x - self.loc, 0.0)
        c = CLIP * np.maximum(self.spread, 1e-3)
        rc = np.clip(r, -c, c)
        big_n = np.minimum(self.n + n_b + self.prior_n, self.tau_n)
        self.loc += rc.sum(axis=0) / big_n
        dev = np.where(ok, np.minimum(np.abs(r), c), 0.0).sum(axis=0)
        self.spread += (dev - n_b * self.spread) / big_n
        self.n = self.n + n_b.max(axis=1, keepdims=True)

    def _state(self, block: int) -> F32:
        """The location after committing every block up to ``block``."""
        for b, loc in reversed(self._snaps):  # batches reach at most two blocks back
            if b <= block:
                return loc
        return self.prior.loc

    def status(self) -> dict[str, Any]:
        """JSON-ready state for ``/status``: warm-up, windows learnt, shift from the prior."""
        shift = (self.loc - self.prior.loc).mean(axis=1)  # log10 units per electrode
        return {
            "warm": self.warm,
            "warmup_s": WARMUP_S,
            "classified_windows": self.classified,
            "windows_learnt": int(self.n.max()),
            "shift_db": {
                e: round(10.0 * float(v), 2) for e, v in zip(self.electrodes, shift, strict=True)
            },
        }
