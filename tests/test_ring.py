"""RingBuffer: absolute indexing across wrap-around, gather == naive slicing of everything written."""

from __future__ import annotations

import numpy as np
import pytest

from eegstream.stream.ring import RingBuffer


def _write_random_chunks(
    ring: RingBuffer, total: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Write ``total`` samples in random chunk sizes (some larger than the ring); return all."""
    data = rng.normal(size=(total, ring.n_channels))
    times = 100.0 + np.arange(total) / 128.0
    pos = 0
    while pos < total:
        n = int(rng.integers(0, ring.capacity + 40))  # 0, small, and larger than capacity
        ring.write(data[pos : pos + n], times[pos : pos + n])
        pos += min(n, total - pos)
    return data, times


def test_wraparound_keeps_the_newest_samples_in_order() -> None:
    rng = np.random.default_rng(1)
    ring = RingBuffer(3, 100)
    data, times = _write_random_chunks(ring, 1234, rng)
    assert ring.total == 1234
    assert ring.oldest == 1134
    latest, t = ring.latest(100)
    np.testing.assert_array_equal(latest, data[-100:])
    np.testing.assert_array_equal(t, times[-100:])
    few, t_few = ring.latest(7)
    np.testing.assert_array_equal(few, data[-7:])
    np.testing.assert_array_equal(t_few, times[-7:])


def test_gather_equals_naive_slicing_at_every_valid_end() -> None:
    rng = np.random.default_rng(2)
    ring = RingBuffer(14, 200)
    data, times = _write_random_chunks(ring, 1000, rng)
    length = 64
    ends = np.arange(ring.oldest + length, ring.total + 1, dtype=np.int64)  # all valid windows
    windows, wtimes = ring.gather(ends, length)
    naive = np.stack([data[e - length : e].T for e in ends])
    naive_t = np.stack([times[e - length : e] for e in ends])
    np.testing.assert_array_equal(windows, naive)
    np.testing.assert_array_equal(wtimes, naive_t)
    assert windows.shape == (ends.size, 14, length)


def test_chunk_larger_than_capacity_keeps_its_tail() -> None:
    ring = RingBuffer(2, 10)
    ring.write(np.zeros((3, 2)), np.zeros(3))
    big = np.arange(50, dtype=float).reshape(25, 2)
    ring.write(big, np.arange(25, dtype=float))
    assert ring.total == 28
    latest, t = ring.latest(10)
    np.testing.assert_array_equal(latest, big[-10:])
    np.testing.assert_array_equal(t, np.arange(15, 25, dtype=float))


def test_gather_outside_the_buffer_raises() -> None:
    ring = RingBuffer(1, 50)
    ring.write(np.ones((120, 1)), np.arange(120, dtype=float))
    with pytest.raises(IndexError, match=r"outside the buffer's samples 70\.\.120"):
        ring.gather(np.array([100]), 64)  # starts at 36 < oldest 70
    with pytest.raises(IndexError, match="outside the buffer"):
        ring.gather(np.array([121]), 10)  # not written yet


def test_reset_restarts_absolute_indices() -> None:
    ring = RingBuffer(1, 8)
    ring.write(np.ones((20, 1)), np.arange(20, dtype=float))
    ring.reset()
    assert ring.total == 0
    assert ring.oldest == 0
    ring.write(np.full((3, 1), 7.0), np.array([1.0, 2.0, 3.0]))
    data, t = ring.latest(8)
    np.testing.assert_array_equal(data, np.full((3, 1), 7.0))
    np.testing.assert_array_equal(t, [1.0, 2.0, 3.0])


def test_invalid_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="capacity and n_channels must be >= 1"):
        RingBuffer(14, 0)
