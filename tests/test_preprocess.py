"""The feature path: exactness against the original definition, filters on sinusoids, state."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from eegstream.baseline import Baseline
from eegstream.errors import EegstreamError
from eegstream.preprocess import (
    FeaturePipeline,
    Scaler,
    band_sos,
    electrode_index,
    psd_features,
)
from eegstream.settings import ELECTRODES, FS, MODEL_ELECTRODES, N_BINS, WINDOW


def _eeg_like(rng: np.random.Generator, n: int, ch: int) -> np.ndarray:
    """Random windows with Emotiv-like DC offsets and drift (what the demean is for)."""
    noise = rng.normal(0.0, 20.0, (n, ch, WINDOW))
    offset = rng.uniform(4100.0, 4300.0, (n, ch, 1))
    drift = np.cumsum(rng.normal(0.0, 2.0, (n, ch, WINDOW)), axis=-1)
    return noise + offset + drift


def _reference(windows: np.ndarray) -> np.ndarray:
    """The original definition, one channel at a time: lfilter(b, a) from rest, then welch."""
    b, a = signal.butter(5, (1.0, 50.0), btype="band", fs=FS)
    out = np.empty(windows.shape[:2] + (N_BINS,))
    for i in range(windows.shape[0]):
        for c in range(windows.shape[1]):
            x = windows[i, c] - windows[i, c].mean()
            y = signal.lfilter(b, a, x)
            out[i, c] = signal.welch(y, FS, nperseg=64)[1]
    return out


def test_psd_features_matches_per_channel_lfilter_loop() -> None:
    rng = np.random.default_rng(0)
    windows = _eeg_like(rng, 100, 14)
    got = psd_features(windows)
    ref = _reference(windows)
    assert got.shape == (100, 14, N_BINS)
    assert got.dtype == np.float32
    rel = np.abs(got - ref) / np.abs(ref)
    assert rel.max() <= 1e-5


def test_psd_features_equals_scipy_welch_of_the_filtered_windows() -> None:
    rng = np.random.default_rng(1)
    windows = _eeg_like(rng, 20, 10)
    x = windows - windows.mean(axis=-1, keepdims=True)
    filtered = signal.sosfilt(band_sos(FS), x, axis=-1)
    _, ref = signal.welch(filtered, fs=FS, nperseg=WINDOW, axis=-1)
    np.testing.assert_allclose(psd_features(windows), ref, rtol=1e-6)


def test_windows_are_independent_in_a_batch() -> None:
    rng = np.random.default_rng(2)
    windows = _eeg_like(rng, 7, 14)
    batch = psd_features(windows)
    one_by_one = np.concatenate([psd_features(windows[i : i + 1]) for i in range(7)])
    np.testing.assert_array_equal(batch, one_by_one)


@pytest.mark.parametrize(("freq", "bin_index"), [(10.0, 5), (20.0, 10), (30.0, 15)])
def test_in_band_sinusoid_peaks_at_its_bin(freq: float, bin_index: int) -> None:
    t = np.arange(WINDOW) / FS
    x = 30.0 * np.sin(2 * np.pi * freq * t)[None, None, :]
    psd = psd_features(x)[0, 0]
    assert int(np.argmax(psd)) == bin_index  # bins are 2 Hz apart


def test_band_pass_attenuates_out_of_band_sinusoids() -> None:
    t = np.arange(WINDOW) / FS
    power = {
        f: float(psd_features(np.sin(2 * np.pi * f * t)[None, None, :])[0, 0].sum())
        for f in (0.25, 20.0, 62.0)
    }
    assert power[20.0] > 20 * power[62.0]  # above the 50 Hz edge
    assert power[20.0] > 20 * power[0.25]  # below the 1 Hz edge (drift)


def test_constant_offset_does_not_change_features() -> None:
    rng = np.random.default_rng(3)
    windows = rng.normal(0.0, 10.0, (5, 14, WINDOW))
    np.testing.assert_allclose(
        psd_features(windows + 4200.0), psd_features(windows), rtol=1e-5, atol=1e-9
    )


def test_psd_features_rejects_wrong_shape() -> None:
    with pytest.raises(EegstreamError, match=r"shape \(n, channels, 64\); got \(3, 14, 63\)"):
        psd_features(np.zeros((3, 14, 63)))


def test_band_sos_rejects_too_low_rate() -> None:
    with pytest.raises(EegstreamError, match=r"fs=64.0 Hz is too low .* resample"):
        band_sos(64.0)


def test_baseline_is_mean_of_first_30_s_in_any_chunking() -> None:
    rng = np.random.default_rng(4)
    data = rng.normal(4200.0, 50.0, (50 * FS, 14))
    data[:, 3] += np.linspace(0, 100, len(data))  # a drift the frozen baseline must ignore
    whole = Baseline(fs=FS)
    whole.update(data)
    chunked = Baseline(fs=FS)
    bounds = np.cumsum(rng.integers(1, 700, 200))
    for a, b in zip(np.r_[0, bounds], bounds, strict=False):
        chunked.update(data[a:b])
    expected = data[: 30 * FS].mean(axis=0)
    np.testing.assert_allclose(whole.value, expected, rtol=1e-12)
    np.testing.assert_allclose(chunked.value, expected, rtol=1e-12)
    assert whole.ready
    assert chunked.ready


def test_baseline_running_mean_before_ready_and_reset() -> None:
    base = Baseline(n_channels=2, fs=FS)
    base.update(np.array([[1.0, np.nan], [3.0, 10.0]]))
    assert not base.ready
    np.testing.assert_array_equal(base.value, [2.0, 10.0])  # NaN skipped per channel
    base.reset()
    assert base.seen == 0
    np.testing.assert_array_equal(base.value, [0.0, 0.0])


def test_baseline_rejects_wrong_channel_count() -> None:
    with pytest.raises(EegstreamError, match=r"shape \(n, 14\); got \(5, 10\)"):
        Baseline().update(np.zeros((5, 10)))


def test_scaler_standardises_log_power_and_round_trips() -> None:
    rng = np.random.default_rng(5)
    psd = rng.lognormal(0.0, 2.0, (500, 10, N_BINS))
    scaler = Scaler.fit(psd)
    z = scaler.transform(psd)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)
    again = Scaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(psd), z)


def test_scaler_maps_dead_electrodes_to_the_training_mean() -> None:
    rng = np.random.default_rng(6)
    psd = rng.lognormal(0.0, 1.0, (50, 10, N_BINS))
    scaler = Scaler.fit(psd)
    broken = psd.copy()
    broken[0, 2] = 0.0  # flat electrode
    broken[1, 4] = np.nan  # NaN samples reached the spectrum
    z = scaler.transform(broken)
    assert np.all(z[0, 2] == 0.0)
    assert np.all(z[1, 4] == 0.0)
    np.testing.assert_array_equal(z[0, 3], scaler.transform(psd)[0, 3])
    assert np.isfinite(z).all()


def test_scaler_errors_name_the_problem() -> None:
    with pytest.raises(EegstreamError, match=r"mean and std must both have shape"):
        Scaler(np.zeros((10, 33)), np.ones((10, 32)))
    with pytest.raises(EegstreamError, match=r"std > 0 everywhere"):
        Scaler(np.zeros((10, 33)), np.zeros((10, 33)))
    scaler = Scaler(np.zeros((10, 33)), np.ones((10, 33)))
    with pytest.raises(EegstreamError, match=r"fitted for \(10, 33\)"):
        scaler.transform(np.ones((2, 14, 33)))
    with pytest.raises(EegstreamError, match=r"scaler in model.json must be"):
        Scaler.from_dict({"mean": [[0.0]]})


def test_feature_pipeline_picks_model_electrodes_by_name() -> None:
    rng = np.random.default_rng(7)
    windows = rng.normal(0.0, 10.0, (4, 14, WINDOW))
    scaler = Scaler(np.zeros((10, N_BINS)), np.ones((10, N_BINS)))
    pipe = FeaturePipeline(scaler)
    base = pipe(windows)
    assert base.shape == (4, 10, N_BINS)
    assert base.dtype == np.float32

    changed = windows.copy()
    changed[:, ELECTRODES.index("O1")] *= 50  # not a model electrode: no effect
    np.testing.assert_array_equal(pipe(changed), base)

    changed = windows.copy()
    changed[:, ELECTRODES.index("T8")] *= 50
    diff = np.any(pipe(changed) != base, axis=(0, 2))
    assert diff.tolist() == [e == "T8" for e in MODEL_ELECTRODES]


def test_feature_pipeline_errors() -> None:
    scaler = Scaler(np.zeros((10, N_BINS)), np.ones((10, N_BINS)))
    with pytest.raises(EegstreamError, match=r"shape \(n, 14, 64\) in ELECTRODES order; got"):
        FeaturePipeline(scaler)(np.zeros((1, 10, WINDOW)))
    with pytest.raises(EegstreamError, match=r"does not match 9 electrodes"):
        FeaturePipeline(scaler, MODEL_ELECTRODES[:9])
    with pytest.raises(EegstreamError, match=r"model electrodes Cz are not Emotiv channels"):
        electrode_index(["AF3", "Cz"])
