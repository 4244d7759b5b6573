"""A preallocated multichannel ring buffer with a monotonically growing write index."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class RingBuffer:
    """Holds the last ``capacity`` samples of ``n_channels`` channels and their timestamps.

    Samples are addressed by their absolute index (0 = first sample ever written), so readers keep
    plain integer cursors and never see the wrap-around. Writing copies a chunk in at most two
    slices; nothing is allocated per write.
    """

    def __init__(self, n_channels: int, capacity: int) -> None:
        if capacity < 1 or n_channels < 1:
            raise ValueError(f"capacity and n_channels must be >= 1, got {capacity}, {n_channels}")
        self.capacity = capacity
        self.n_channels = n_channels
        self._data = np.zeros((capacity, n_channels), dtype=np.float64)
        self._times = np.zeros(capacity, dtype=np.float64)
        self.total = 0  #: number of samples ever written (absolute index of the next sample)

    def reset(self) -> None:
        """Forget everything (the absolute index restarts at 0)."""
        self.total = 0

    def write(self, chunk: npt.NDArray[np.floating], timestamps: npt.NDArray[np.floating]) -> None:
        """Append ``chunk`` ``(n, n_channels)`` with its ``n`` timestamps."""
        n = int(chunk.shape[0])
        if n == 0:
            return
        if n > self.capacity:  # only the newest samples can be kept
            skip = n - self.capacity
            self.total += skip
            chunk, timestamps, n = chunk[skip:], timestamps[skip:], self.capacity
        start = self.total % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = chunk[:first]
        self._times[start : start + first] = timestamps[:first]
        if first < n:
            self._data[: n - first] = chunk[first:]
            self._times[: n - first] = timestamps[first:]
        self.total += n

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.total - self.capacity)

    def gather(
        self, ends: npt.NDArray[np.int64], length: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Windows ``[end - length, end)`` for each absolute ``end``, vectorised.

        Returns ``(windows (k, n_channels, length), times (k, length))``. Raises ``IndexError``
        when a window is no longer (or not yet) in the buffer.
        """
        ends = np.asarray(ends, dtype=np.int64)
        if ends.size:
            one = ends.shape == (1,)  # live, the usual: one window
            lo, hi = (int(ends[0]),) * 2 if one else (int(ends.min()), int(ends.max()))
            if lo - length < self.oldest or hi > self.total:
                raise IndexError(
                    f"windows ending at {lo}..{hi} (length {length}) are outside the buffer's "
                    f"samples {self.oldest}..{self.total}"
                )
            stop = (hi - 1) % self.capacity + 1
            if one and stop >= length:  # it does not wrap: a slice (copied), not an index
                a = stop - length
                return self._data[a:stop].T[None].copy(), self._times[None, a:stop].copy()
        idx = (ends[:, None] - length + np.arange(length)[None, :]) % self.capacity
        return self._data[idx].transpose(0, 2, 1), self._times[idx]

    def latest(self, length: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The newest ``length`` samples (fewer if fewer were written) as ``(length, ch)``."""
        length = min(length, self.total - self.oldest)
        w, t = self.gather(np.array([self.total]), length)
        return w[0].T, t[0]
