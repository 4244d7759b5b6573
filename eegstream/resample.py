"""Stateful polyphase resampling, identical offline and live.

EPOC+ / EPOC X headsets can stream at 256 Hz; the model runs at 128 Hz. :class:`Resampler` applies
exactly the anti-aliasing FIR that :func:`scipy.signal.resample_poly` designs (``firwin`` with a
Kaiser window, beta 5, ``2 * 10 * max(up, down) + 1`` taps, cutoff at the lower Nyquist) and keeps
its state across chunks, so feeding a signal in any chunking and then calling :meth:`flush` gives
the same samples as ``resample_poly(x, up, down, axis=0, padtype="edge")`` on the whole signal.

Timing: output sample ``k`` is aligned with input position ``k * down / up`` (the filter is linear
phase and its group delay of ``half_len / up`` input samples is removed), and gets the timestamp of
that input sample (interpolated linearly when the position is fractional). The price of the
compensation is latency: output ``k`` can only be computed once the input ``half_len / up`` samples
after its position has arrived, i.e. ``latency_s`` (78 ms at 256 -> 128 Hz).
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError

log = logging.getLogger(__name__)

__all__ = ["Resampler", "check_rate"]

#: Kaiser window beta that ``scipy.signal.resample_poly`` uses by default.
KAISER_BETA = 5.0
#: Input rates resampled to half their rate (the model rate, 128 Hz); exact ratios only.
RESAMPLED_RATES: tuple[int, ...] = (256,)


def check_rate(in_fs: float, out_fs: float, source: str) -> tuple[int, int]:
    """Return ``(up, down)`` to bring ``in_fs`` to ``out_fs``, or explain why it cannot.

    The same rule serves recordings and live streams: the model rate passes through, 256 Hz
    (EPOC+ / EPOC X high-rate mode) is resampled 1:2, anything else is refused because an
    inexact ratio would silently shift every event in time.
    """
    if in_fs == out_fs:
        return 1, 1
    if float(in_fs) in RESAMPLED_RATES and in_fs == 2 * out_fs:
        return 1, 2
    raise EegstreamError(
        f"{source} is sampled at {in_fs:g} Hz, but eegstream works at {out_fs:g} Hz and only "
        f"resamples {', '.join(f'{r} Hz' for r in RESAMPLED_RATES)} recordings to it; export or "
        f"stream the data at {out_fs:g} or 256 Hz (EmotivPRO settings), or check the sampling rate "
        "given with --fs"
    )


def design_filter(up: int, down: int) -> tuple[npt.NDArray[np.float64], int]:
    """The FIR of ``scipy.signal.resample_poly`` for ``up/down``: ``(taps * up, half_len)``."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", KAISER_BETA))
    return np.asarray(taps, dtype=np.float64) * up, half_len


class Resampler:
    """Resample ``(n, n_channels)`` chunks from ``in_fs`` to ``out_fs`` keeping filter state.

    Parameters
    ----------
    in_fs, out_fs
        Rates in Hz; their ratio must be rational (``up / down`` with small integers).
    n_channels
        Columns of every chunk.

    Notes
    -----
    The signal is extended with its first sample before the start and its last sample at
    :meth:`flush` (like ``padtype="edge"``): Emotiv data sit on a ~4,200 uV offset, and zero
    padding would ring at both ends like a 4,000 uV step.
    """

    def __init__(self, in_fs: float, out_fs: float, n_channels: int) -> None:
        if in_fs <= 0 or out_fs <= 0 or n_channels < 1:
            raise ValueError(
                f"in_fs, out_fs and n_channels must be > 0, got {in_fs}, {out_fs}, {n_channels}"
            )
        ratio = Fraction(out_fs).limit_denominator(1000) / Fraction(in_fs).limit_denominator(1000)
        self.in_fs = float(in_fs)
        self.out_fs = float(out_fs)
        self.n_channels = n_channels
        self.up, self.down = ratio.numerator, ratio.denominator
        if self.up == self.down == 1:  # same rate: nothing to filter
            taps, self.half_len = np.ones(1), 0
        else:
            taps, self.half_len = design_filter(self.up, self.down)
        # Pad the filter as resample_poly does so output k sits at input position k*down/up.
        pre_pad = self.down - self.half_len % self.down
        self._n_pre_remove = (self.half_len + pre_pad) // self.down
        self._h = np.concatenate([np.zeros(pre_pad), taps, np.zeros(self.down)])
        self.taps = taps
        #: Group delay of the FIR in input samples (compensated by the output alignment).
        self.delay_samples = self.half_len / self.up
        #: Seconds between an input sample arriving and the output aligned with it being emitted.
        self.latency_s = self.delay_samples / self.in_fs
        # History: input samples from absolute index self._h0 (a multiple of down) onwards.
        self._keep = (len(self._h) // self.up + 2 * self.down) // self.down * self.down
        self._buf = np.zeros((self._keep + 256, n_channels), dtype=np.float64)
        self._tbuf = np.full(self._keep + 256, np.nan, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Start a new signal (the next chunk is sample 0)."""
        self._n_in = 0  # input samples received
        self._k = 0  # next output index
        self._h0 = -self._keep  # absolute index of self._buf[0]
        self._len = 0  # rows of self._buf in use (0 until the first sample sets the edge)

    @property
    def passthrough(self) -> bool:
        """True when ``in_fs == out_fs`` (chunks are returned unchanged)."""
        return self.up == self.down == 1

    def process(self, chunk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Feed ``chunk`` ``(n, n_channels)``; return the outputs that are now complete."""
        return self._process(chunk, None)[0]

    def process_timed(
        self, chunk: npt.ArrayLike, timestamps: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Like :meth:`process`, with the timestamps of the input and of the outputs."""
        return self._process(chunk, np.asarray(timestamps, dtype=np.float64))

    def flush(self) -> npt.NDArray[np.float64]:
        """Emit the last outputs (edge-padded) and reset; the signal is then complete."""
        return self._flush()[0]

    def flush_timed(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Like :meth:`flush`, with the outputs' timestamps."""
        return self._flush()

    # --- internals --------------------------------------------------------------------------

    def _append(self, x: npt.NDArray[np.float64], t: npt.NDArray[np.float64] | None) -> None:
        n = x.shape[0]
        if self._len == 0:  # first sample: the pre-start history repeats it (edge padding)
            self._buf[: self._keep] = x[0]
            self._tbuf[: self._keep] = np.nan
            self._len = self._keep
        need = self._len + n
        if need > self._buf.shape[0]:  # grow rarely (amortised), never per chunk
            size = max(need, 2 * self._buf.shape[0])
            buf = np.empty((size, self.n_channels), dtype=np.float64)
            buf[: self._len] = self._buf[: self._len]
            tbuf = np.full(size, np.nan, dtype=np.float64)
            tbuf[: self._len] = self._tbuf[: self._len]
            self._buf, self._tbuf = buf, tbuf
        self._buf[self._len : need] = x
        self._tbuf[self._len : need] = np.nan if t is None else t
        self._len = need

    def _compute(self, k_end: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Outputs ``[self._k, k_end)`` from the history (all their inputs are in it)."""
        from scipy.signal import upfirdn

        k0 = self._k
        if k_end <= k0:
            return np.empty((0, self.n_channels)), np.empty(0)
        # Only the history that outputs k0.. need, starting at a multiple of `down` so the
        # polyphase phase of upfirdn's output m matches global output m + offset.
        lo = ((k0 + self._n_pre_remove) * self.down - (len(self._h) - 1)) // self.up
        start = max(self._h0, lo // self.down * self.down)
        seg = self._buf[start - self._h0 : self._len]
        y = upfirdn(self._h, seg, self.up, self.down, axis=0)
        off = self._n_pre_remove - start * self.up // self.down
        out = np.ascontiguousarray(y[k0 + off : k_end + off])
        pos = np.arange(k0, k_end, dtype=np.float64) * self.down / self.up - self._h0
        i0 = np.floor(pos).astype(np.int64)
        frac = pos - i0
        i1 = np.minimum(i0 + 1, self._len - 1)
        times = (
            self._tbuf[i0] + frac * (self._tbuf[i1] - self._tbuf[i0])
            if self.up > 1
            else (self._tbuf[i0])
        )
        self._k = k_end
        return out, times

    def _trim(self) -> None:
        """Drop history no future output needs (a small copy of ``_keep`` rows at most)."""
        lo = ((self._k + self._n_pre_remove) * self.down - (len(self._h) - 1)) // self.up
        new_h0 = min(lo, self._n_in) // self.down * self.down
        drop = new_h0 - self._h0
        if drop > 0:
            rest = self._len - drop
            self._buf[:rest] = self._buf[drop : self._len]
            self._tbuf[:rest] = self._tbuf[drop : self._len]
            self._len = rest
            self._h0 = new_h0

    def _process(
        self, chunk: npt.ArrayLike, timestamps: npt.NDArray[np.float64] | None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"chunk must be (n, {self.n_channels}), got {x.shape}")
        if timestamps is not None and timestamps.shape != (x.shape[0],):
            raise ValueError(f"timestamps must be ({x.shape[0]},), got {timestamps.shape}")
        if self.passthrough:
            t = timestamps if timestamps is not None else np.full(x.shape[0], np.nan)
            self._n_in += x.shape[0]
            return x.copy(), t.copy()
        if x.shape[0] == 0:
            return np.empty((0, self.n_channels)), np.empty(0)
        self._append(x, timestamps)
        self._n_in += x.shape[0]
        # Output k is complete once input floor((k + pre) * down / up) has arrived.
        k_end = -(-self._n_in * self.up // self.down) - self._n_pre_remove
        out = self._compute(k_end)
        self._trim()
        return out

    def _flush(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if self.passthrough or self._len == 0:
            self.reset()
            return np.empty((0, self.n_channels)), np.empty(0)
        n_out = math.ceil(self._n_in * self.up / self.down)
        last_input = (n_out - 1 + self._n_pre_remove) * self.down // self.up
        pad = max(0, last_input - self._n_in + 1) + self.down
        last_t = self._tbuf[self._len - 1]
        pad_t = last_t + np.arange(1, pad + 1) / self.in_fs
        self._append(np.repeat(self._buf[self._len - 1 : self._len], pad, axis=0), pad_t)
        out = self._compute(n_out)
        log.debug("resampler flushed %s outputs after %s inputs", n_out, self._n_in)
        self.reset()
        return out
