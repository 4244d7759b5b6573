"""The polyphase resampler: chunked == whole == scipy, timing, anti-aliasing, rate policy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from eegstream.errors import EegstreamError
from eegstream.resample import Resampler, check_rate


def _signal(n: int, ch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Emotiv-like: a ~4,200 uV offset plus a random walk and white noise.
    return 4200.0 + np.cumsum(rng.normal(0, 3, (n, ch)), axis=0) + rng.normal(0, 10, (n, ch))


def _feed(rs: Resampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts, i = [], 0
    for size in sizes:
        parts.append(rs.process(x[i : i + size]))
        i += size
    assert i >= x.shape[0]
    parts.append(rs.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize(("in_fs", "out_fs"), [(256, 128), (128, 256), (192, 128), (300, 128)])
def test_chunked_equals_whole_equals_scipy(in_fs: int, out_fs: int) -> None:
    x = _signal(2_001, 3, seed=in_fs)
    rs = Resampler(in_fs, out_fs, 3)
    reference = resample_poly(x, rs.up, rs.down, axis=0, padtype="edge")
    whole = _feed(rs, x, [x.shape[0]])
    rng = np.random.default_rng(1)
    sizes = rng.integers(0, 50, size=400).tolist()  # includes empty chunks
    sizes.append(x.shape[0])
    chunked = _feed(rs, x, sizes)
    ones = _feed(rs, x, [1] * x.shape[0])
    assert reference.shape == whole.shape == chunked.shape == ones.shape
    np.testing.assert_allclose(whole, reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ones, whole, rtol=0, atol=1e-9)


def test_outputs_appear_with_the_documented_latency() -> None:
    rs = Resampler(256, 128, 1)
    assert (rs.up, rs.down, rs.half_len, len(rs.taps)) == (1, 2, 20, 41)
    assert rs.latency_s == pytest.approx(20 / 256)
    out = rs.process(np.zeros((256, 1)))
    # 128 outputs are due for 256 inputs; the last ones wait for 20 more input samples.
    assert out.shape[0] == 128 - 11
    assert rs.flush().shape[0] == 11
    assert rs.process(np.ones((2, 1))).shape[0] == 0  # after flush a new signal starts


def test_timestamps_are_those_of_the_aligned_input_sample() -> None:
    x = _signal(1_000, 2)
    t = 1_576_079_627.004193 + np.cumsum(np.random.default_rng(3).uniform(0.0037, 0.0041, 1_000))
    rs = Resampler(256, 128, 2)
    outs, times = [], []
    for i in range(0, 1_000, 37):
        y, ty = rs.process_timed(x[i : i + 37], t[i : i + 37])
        outs.append(y)
        times.append(ty)
    y, ty = rs.flush_timed()
    times.append(ty)
    assert np.array_equal(np.concatenate(times), t[::2])
    # fractional positions (2:3) are interpolated between neighbouring input stamps
    rs = Resampler(128, 192, 1)
    ta = rs.process_timed(np.zeros((64, 1)), np.arange(64) / 128.0)[1]
    assert np.allclose(ta, np.arange(ta.shape[0]) * (2 / 3) / 128.0)


def test_alignment_no_delay_and_anti_aliasing() -> None:
    fs = 256
    t = np.arange(fs * 8) / fs
    slow = np.sin(2 * np.pi * 10 * t)  # in band: must pass unchanged and undelayed
    fast = np.sin(2 * np.pi * 100 * t)  # above the new Nyquist (64 Hz): must be removed
    rs = Resampler(fs, 128, 2)
    y = _feed(rs, np.column_stack([slow, fast]), [100] * 21)
    core = slice(64, -64)  # away from the edges
    np.testing.assert_allclose(y[core, 0], slow[::2][core], atol=2e-3)
    spectrum = np.abs(np.fft.rfft(y[core, 1] * np.hanning(y[core].shape[0])))
    in_spectrum = np.abs(np.fft.rfft(fast[::2][core] * np.hanning(y[core].shape[0])))
    attenuation_db = 20 * np.log10(spectrum.max() / in_spectrum.max())
    assert attenuation_db < -40, attenuation_db


def test_edges_do_not_ring_on_the_emotiv_offset() -> None:
    x = np.full((512, 1), 4200.0)
    y = _feed(Resampler(256, 128, 1), x, [512])
    np.testing.assert_allclose(y, 4200.0, atol=1e-9)


def test_passthrough_and_bad_shapes() -> None:
    rs = Resampler(128, 128, 2)
    x = _signal(10, 2)
    assert rs.passthrough
    assert np.array_equal(rs.process(x), x)
    assert rs.flush().shape == (0, 2)
    with pytest.raises(ValueError, match=r"chunk must be \(n, 2\), got \(10, 3\)"):
        rs.process(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="must be > 0"):
        Resampler(0, 128, 2)


def test_rate_policy() -> None:
    assert check_rate(128, 128, "x") == (1, 1)
    assert check_rate(256, 128, "x") == (1, 2)
    assert check_rate(256.0, 128.0, "x") == (1, 2)
    with pytest.raises(
        EegstreamError, match=r"stream 'S' is sampled at 500 Hz.*only resamples 256 Hz"
    ):
        check_rate(500, 128, "stream 'S'")
    with pytest.raises(EegstreamError, match=r"sampled at 512 Hz"):
        check_rate(512, 128, "recording r.csv")
