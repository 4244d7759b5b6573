"""The one feature path from raw microvolts to model input, shared by training, offline and live.

Every stage takes whole arrays ``(windows, channels, samples)`` and is free of threads and I/O, so
the same code runs on a recording (training, ``eegstream detect``) and on the live ring buffer.

Stages, in the order data flows:

1. :class:`~eegstream.baseline.Baseline` -- per-channel mean of the first 30 s (the running mean until then), kept for
   signal-fault limits. Features do not need it: step 2 removes each window's own mean, which
   also removes any constant baseline exactly.
2. :func:`psd_features` -- per-window demean, 1-50 Hz Butterworth band-pass (order 5) from rest,
   Welch PSD: ``(n, ch, 64)`` -> ``(n, ch, 33)``.
3. :class:`~eegstream.baseline.PersonBaseline` -- the person's resting ``log10`` power per (electrode, bin), a robust
   running location kept per stream (see its docstring); features are ``log10`` power *relative*
   to it, so a wearer whose resting muscle tone is ten times the training subjects' is judged
   against their own rest, not against the simulator's.
4. :class:`Scaler` -- relative ``log10`` power standardised per (electrode, bin) with statistics
   fitted on the training windows and stored in the model bundle.
5. :class:`FeaturePipeline` -- picks the 10 model electrodes by name and chains 2-4.

Training uses the same estimator in batch form (:func:`~eegstream.baseline.robust_location`) over each training
recording's resting windows, so the CNN learns exactly the relative features it meets live.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal

from eegstream.baseline import BaselinePrior, PersonBaseline
from eegstream.errors import EegstreamError
from eegstream.settings import (
    BAND,
    ELECTRODES,
    FILTER_ORDER,
    FS,
    MODEL_ELECTRODES,
    N_BINS,
    WINDOW,
)

log = logging.getLogger(__name__)

__all__ = [
    "LOG_EPS",
    "FeaturePipeline",
    "Scaler",
    "band_sos",
    "electrode_index",
    "log_power",
    "psd_features",
]

#: Added to the power before ``log10`` so a flat (dead) channel gives a finite value (uV^2/Hz).
LOG_EPS: float = 1e-10
#: Below this total power (uV^2/Hz summed over bins) a channel counts as dead: its features are set
#: to 0, the training mean, which is exactly what electrode-dropout augmentation teaches the model.
DEAD_POWER: float = 1e-8

FloatArray = npt.NDArray[np.floating[Any]]
F32 = npt.NDArray[np.float32]


@functools.lru_cache(maxsize=8)
def band_sos(fs: float = FS) -> npt.NDArray[np.float64]:
    """The 1-50 Hz order-5 Butterworth band-pass as second-order sections, cached per rate.

    SOS rather than the original ``(b, a)``: an order-10 transfer function with a 1 Hz edge at
    128 Hz is close to ill-conditioned, sections are the robust form of the same filter (here the
    two agree to 5e-7 relative, which ``tests/test_preprocess.py`` checks).
    """
    if not fs > 2 * BAND[1]:
        raise EegstreamError(
            f"fs={fs} Hz is too low for the {BAND[0]:g}-{BAND[1]:g} Hz band-pass; "
            f"expected more than {2 * BAND[1]:g} Hz; resample the recording to {FS} Hz"
        )
    # Not write-protected: scipy's sosfilt rejects read-only coefficient arrays. Do not modify.
    return np.asarray(signal.butter(FILTER_ORDER, BAND, btype="band", fs=fs, output="sos"))


def psd_features(windows: FloatArray, fs: float = FS) -> npt.NDArray[np.float32]:
    """Welch power spectrum of each band-passed window: ``(n, ch, 64)`` -> float32 ``(n, ch, 33)``.

    Each window is demeaned, filtered from rest (``sosfilt``, zero initial state, vectorised over
    windows and channels) and turned into a one-segment Welch PSD (Hann, 64 samples, uV^2/Hz,
    the same numbers as ``scipy.signal.welch(x, fs, nperseg=64)``).
    The demean is a documented improvement on the original ``lfilter`` from rest: it removes the
    step transient that a residual DC offset or drift would otherwise ring through the filter, so
    the features no longer depend on the electrode offset (hundreds of uV on an Emotiv). Work is
    float64 inside; only the result is float32.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != WINDOW:
        raise EegstreamError(
            f"psd_features: windows must have shape (n, channels, {WINDOW}); got {x.shape}"
        )
    spec = x.reshape(-1, WINDOW) @ _spectral_operator(float(fs))  # (n*ch, 66): re | im
    re, im = spec[:, :N_BINS], spec[:, N_BINS:]
    pxx = re * re + im * im
    return pxx.reshape(*x.shape[:-1], N_BINS).astype(np.float32)


def log_power(psd: FloatArray) -> F32:
    """``log10(psd + eps)`` float32; dead channels (near-zero or non-finite power) become NaN.

    NaN marks "no information" for everything downstream: the person baseline skips it and the
    scaler turns it into 0, the training mean, which electrode dropout taught the model.
    """
    p = np.asarray(psd, dtype=np.float32)
    out: F32 = np.log10(p + np.float32(LOG_EPS))
    dead = ~(p.sum(axis=-1, keepdims=True) > DEAD_POWER)  # also true for NaN
    if dead.any():
        np.copyto(out, np.float32(np.nan), where=np.broadcast_to(dead, out.shape))
    return out


@functools.lru_cache(maxsize=8)
def _spectral_operator(fs: float) -> npt.NDArray[np.float64]:
    """The whole linear part of the features as one ``(64, 66)`` matrix.

    Demean, ``sosfilt`` from rest, Welch's constant detrend, the Hann window, the real FFT and the
    density / one-sided scaling are all linear in the 64 samples, so they compose into a single
    matrix built by pushing the 64 unit impulses through the reference steps below; features are
    then one matmul and a squared magnitude. Measured on the 2-core CI machine: batch-1 features
    (10 electrodes) ~150 us -> ~20 us, and ~6x faster per window at batch 512.
    ``tests/test_preprocess.py`` checks it against the per-channel ``lfilter`` + ``welch`` loop.
    """
    eye = np.eye(WINDOW)
    x = eye - eye.mean(axis=-1, keepdims=True)
    x = signal.sosfilt(band_sos(fs), x, axis=-1)
    win, scale = _hann_density(fs)
    seg = (x - x.mean(axis=-1, keepdims=True)) * win
    spec = np.fft.rfft(seg, axis=-1)  # row k: the spectrum of unit impulse k
    fold = np.full(N_BINS, 2.0 * scale)
    fold[[0, -1]] = scale  # one-sided: negative frequencies folded in, not DC or Nyquist
    amp = np.sqrt(fold)
    op = np.concatenate([spec.real * amp, spec.imag * amp], axis=1)
    return np.ascontiguousarray(op)


@functools.lru_cache(maxsize=8)
def _hann_density(fs: float) -> tuple[npt.NDArray[np.float64], float]:
    """Periodic Hann window and the Welch density scale ``1 / (fs * sum(w**2))``."""
    win = np.asarray(signal.get_window("hann", WINDOW), dtype=np.float64)
    return win, 1.0 / (fs * float(np.sum(win * win)))


def electrode_index(
    electrodes: Sequence[str], available: Sequence[str] = ELECTRODES
) -> tuple[int, ...]:
    """Column of each wanted electrode in ``available``, chosen by name, never by position."""
    missing = [e for e in electrodes if e not in available]
    if missing:
        raise EegstreamError(
            f"model electrodes {', '.join(missing)} are not Emotiv channels; "
            f"expected names from: {', '.join(available)}; fix the bundle's model.json"
        )
    return tuple(list(available).index(e) for e in electrodes)


class Scaler:
    """``log10`` power standardised per (electrode, bin) with training-set statistics.

    Log first because EEG power spans decades (blinks are 100x the background at low bins); the
    per-bin standardisation then puts every input of the CNN on the same scale.
    """

    def __init__(self, mean: FloatArray, std: FloatArray):
        mean_arr = np.asarray(mean, dtype=np.float32)
        std_arr = np.asarray(std, dtype=np.float32)
        if mean_arr.ndim != 2 or mean_arr.shape != std_arr.shape:
            raise EegstreamError(
                "Scaler: mean and std must both have shape (electrodes, bins); "
                f"got {mean_arr.shape} and {std_arr.shape}; refit the scaler or fix model.json"
            )
        if not (np.all(np.isfinite(mean_arr)) and np.all(std_arr > 0)):
            raise EegstreamError(
                "Scaler: mean must be finite and std > 0 everywhere; the stored statistics are "
                "corrupt; retrain the model"
            )
        self.mean = mean_arr
        self.std = std_arr
        self._inv_std = (1.0 / std_arr).astype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        """``(electrodes, bins)`` the scaler was fitted for."""
        return (int(self.mean.shape[0]), int(self.mean.shape[1]))

    @classmethod
    def fit(cls, psd: FloatArray) -> Scaler:
        """Fit on training PSDs ``(n, electrodes, bins)`` (never on validation or test windows)."""
        return cls.fit_log(log_power(psd))

    @classmethod
    def fit_log(cls, logp: FloatArray) -> Scaler:
        """Fit on (relative) log-power ``(n, electrodes, bins)``; NaN (dead channels) skipped."""
        x = np.asarray(logp, dtype=np.float64)
        if x.ndim != 3 or x.shape[0] < 2:
            raise EegstreamError(
                f"Scaler.fit: need at least 2 windows of shape (electrodes, bins); got {x.shape}"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
        return cls(np.nan_to_num(mean), np.maximum(np.nan_to_num(std, nan=1.0), 1e-6))

    def transform(self, psd: FloatArray) -> F32:
        """Standardised log-power ``(n, electrodes, bins)`` float32 of absolute PSDs.

        Channels that are dead (non-finite or near-zero power: a lost or flat electrode) get
        features 0, the training mean, so the model degrades as it learnt to under dropout.
        """
        p = np.asarray(psd)
        if p.shape[1:] != self.mean.shape:
            raise EegstreamError(
                f"Scaler.transform: features have shape {p.shape[1:]} per window; the scaler "
                f"was fitted for {self.mean.shape}; use the bundle the scaler came from"
            )
        return self.standardise(log_power(p))

    def standardise(self, logp: FloatArray) -> F32:
        """``(logp - mean) / std`` float32; NaN (no information) becomes 0, the training mean."""
        out: F32 = np.asarray(logp, dtype=np.float32) - self.mean
        out *= self._inv_std
        np.nan_to_num(out, copy=False, nan=0.0)
        return out

    def to_dict(self) -> dict[str, list[list[float]]]:
        """JSON form stored in ``model.json``."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scaler:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))
        except (KeyError, TypeError, ValueError) as exc:
            raise EegstreamError(
                f"scaler in model.json must be {{'mean': [[...]], 'std': [[...]]}}; got "
                f"keys {sorted(data) if isinstance(data, Mapping) else type(data).__name__} ({exc})"
            ) from exc


class FeaturePipeline:
    """Raw 14-channel windows ``(n, 14, 64)`` in uV -> model input float32 ``(n, 10, 33)``.

    The ONE feature path: training, offline detection and every live stream call this object,
    so a feature can never differ between where the model learnt and where it runs. With a
    ``prior`` (bundles trained with person baselines) the log-power is taken relative to each
    stream's :class:`PersonBaseline` before standardisation.
    """

    def __init__(
        self,
        scaler: Scaler,
        electrodes: Sequence[str] = MODEL_ELECTRODES,
        fs: float = FS,
        prior: BaselinePrior | None = None,
    ):
        self.electrodes = tuple(electrodes)
        self.index = np.asarray(electrode_index(self.electrodes), dtype=np.intp)
        if scaler.shape != (len(self.electrodes), N_BINS):
            raise EegstreamError(
                f"scaler shape {scaler.shape} does not match {len(self.electrodes)} electrodes x "
                f"{N_BINS} bins; the bundle's model.json is inconsistent; retrain the model"
            )
        if prior is not None and prior.loc.shape != scaler.shape:
            raise EegstreamError(
                f"baseline prior shape {prior.loc.shape} does not match the scaler's "
                f"{scaler.shape}; the bundle's model.json is inconsistent; retrain the model"
            )
        self.scaler = scaler
        self.fs = fs
        self.prior = prior

    def person_baseline(self, hop: int) -> PersonBaseline | None:
        """A fresh per-stream baseline, or None for a bundle with absolute features."""
        if self.prior is None:
            return None
        return PersonBaseline(self.prior, hop, self.electrodes)

    def psd(self, windows: FloatArray) -> F32:
        """Unscaled PSD of the model electrodes (what :meth:`Scaler.fit` is fitted on)."""
        x = np.asarray(windows)
        if x.ndim != 3 or x.shape[1] != len(ELECTRODES) or x.shape[2] != WINDOW:
            raise EegstreamError(
                f"FeaturePipeline: windows must have shape (n, {len(ELECTRODES)}, {WINDOW}) in "
                f"ELECTRODES order; got {x.shape}"
            )
        return psd_features(x[:, self.index], fs=self.fs)

    def log_power(self, windows: FloatArray) -> F32:
        """``log10`` PSD of the model electrodes; NaN for dead channels."""
        return log_power(self.psd(windows))

    def standardise(self, logp: FloatArray, ref: FloatArray | None = None) -> F32:
        """Model input from log-power: relative to ``ref`` (a person baseline) when given."""
        return self.scaler.standardise(logp if ref is None else np.subtract(logp, ref))

    def __call__(self, windows: FloatArray, ref: FloatArray | None = None) -> F32:
        """Standardised features of the model electrodes (relative to ``ref`` when given)."""
        return self.standardise(self.log_power(windows), ref)
