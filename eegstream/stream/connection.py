"""Open a resolved LSL stream and pull from it into buffers allocated once per connection.

The stream's channels and rate are checked when it is opened (:func:`map_channels`,
``check_rate``); liblsl then writes each pull straight into the buffers, called through ctypes.

:class:`_Connection` is mixed into :class:`~eegstream.stream.inlet.EEGInlet`: its methods read and
write the inlet's state (declared on the class; set by the inlet).
"""

from __future__ import annotations

import ctypes
import logging

import numpy as np
import numpy.typing as npt
import pylsl
from pylsl.lib import lib as _lsl
from pylsl.util import LostError, handle_error
from pylsl.util import TimeoutError as LslTimeoutError

from eegstream.errors import EegstreamError, StreamGoneError
from eegstream.resample import Resampler, check_rate
from eegstream.settings import ELECTRODES, MODEL_ELECTRODES
from eegstream.stream.channels import ChannelMap, map_channels
from eegstream.stream.chunks import F64
from eegstream.stream.resolve import StreamDescription

log = logging.getLogger(__name__)

_OPEN_TIMEOUT_S = 5.0  #: seconds a resolved outlet has to send its metadata and start streaming


class _Connection:
    """Opening a stream and pulling from it, for :class:`~eegstream.stream.inlet.EEGInlet` (a mixin)."""

    # the inlet's state that these methods use
    max_buflen: int
    max_chunk: int
    processing_flags: int
    fs: float
    description: StreamDescription | None
    channels: ChannelMap | None
    _inlet: pylsl.StreamInlet | None
    _source_fs: float
    _resampler: Resampler | None
    _present_idx: npt.NDArray[np.intp] | None
    # the buffers, made by _allocate
    _raw: F64
    _ts: F64
    _mapped: F64
    _steps: F64

    # --- opening a stream -----------------------------------------------------------------------

    def _open(self, info: pylsl.StreamInfo) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo]:
        """Create the liblsl inlet (recovery is ours, so liblsl's is off) and fetch its metadata."""
        inlet = pylsl.StreamInlet(
            info,
            max_buflen=self.max_buflen,
            recover=False,
            processing_flags=self.processing_flags,
        )
        try:
            full = inlet.info(timeout=_OPEN_TIMEOUT_S)
            inlet.open_stream(timeout=_OPEN_TIMEOUT_S)
            if self.processing_flags & pylsl.proc_clocksync:
                # liblsl measures the clock offset on the first synchronised pull (~0.6 s of
                # probes): here, in the caller's (connect pool's) time, not the scheduler's
                inlet.time_correction(timeout=_OPEN_TIMEOUT_S)
        except LostError as exc:
            inlet.close_stream()
            raise StreamGoneError(
                f"stream {StreamDescription.from_info(info)} closed before it could be opened "
                f"({exc}); start its program again"
            ) from exc
        except LslTimeoutError as exc:
            inlet.close_stream()
            raise EegstreamError(
                f"stream {StreamDescription.from_info(info)} was found but did not answer within "
                f"{_OPEN_TIMEOUT_S:g} s ({exc}); check that its program still runs and that no "
                f"firewall blocks TCP ports 16572-16604 between the two machines"
            ) from exc
        except BaseException:
            inlet.close_stream()
            raise
        return inlet, full

    def _adopt(self, inlet: pylsl.StreamInlet, info: pylsl.StreamInfo) -> None:
        """Make ``inlet`` the current connection: check channels and rate, size the buffers."""
        desc = StreamDescription.from_info(info)
        try:
            if info.channel_format() == pylsl.cf_string:
                raise EegstreamError(
                    f"stream {desc} carries strings (a marker stream?), not EEG samples; "
                    f"select the EEG stream with --stream-name or --stream-type EEG"
                )
            if desc.nominal_srate <= 0:
                raise EegstreamError(
                    f"stream {desc} has an irregular sampling rate; EEG detection needs a "
                    f"regular rate (128 or 256 Hz for Emotiv headsets)"
                )
            channels = map_channels(desc.labels, f"stream {desc.name!r}", desc.units)
            check_rate(desc.nominal_srate, self.fs, f"stream {desc.name!r}")
        except EegstreamError:
            inlet.close_stream()
            raise
        self._inlet, self.description, self.channels = inlet, desc, channels
        self._source_fs = desc.nominal_srate
        self._resampler = (
            None
            if self._source_fs == self.fs
            else Resampler(self._source_fs, self.fs, len(ELECTRODES))
        )
        self._allocate(desc.channel_count)
        self._present_idx = None if not channels.absent else np.flatnonzero(channels.present)
        if channels.ignored:
            log.info("%s: ignoring channels %s", desc.name, ", ".join(channels.ignored))
        if channels.absent:
            log.info(
                "%s: no optional electrode(s) %s; detection reads only %s",
                desc.name, ", ".join(channels.absent), ", ".join(MODEL_ELECTRODES),
            )  # fmt: skip
        if not channels.unity and not channels.absent:
            log.info("%s: samples scaled to microvolts (x%s)", desc.name, channels.scale.tolist())

    def _allocate(self, nch: int) -> None:
        """Buffers and ctypes arguments for one stream layout, made once per connection."""
        cap = self.max_chunk
        self._nch = nch
        self._raw = np.zeros((cap, nch), dtype=np.float64)
        self._ts = np.zeros(cap, dtype=np.float64)
        self._mapped = np.zeros((cap, len(ELECTRODES)), dtype=np.float64)
        self._steps = np.zeros(cap, dtype=np.float64)
        base, tbase = self._raw.ctypes.data, self._ts.ctypes.data
        self._p_data = (ctypes.c_void_p(base), ctypes.c_void_p(base + nch * 8))
        self._p_ts = (ctypes.c_void_p(tbase), ctypes.c_void_p(tbase + 8))
        self._one, self._one_values = ctypes.c_size_t(1), ctypes.c_size_t(nch)
        self._rest, self._rest_values = ctypes.c_size_t(cap - 1), ctypes.c_size_t((cap - 1) * nch)
        self._all, self._all_values = ctypes.c_size_t(cap), ctypes.c_size_t(cap * nch)
        self._err = ctypes.c_int(0)

    # --- pulling --------------------------------------------------------------------------------

    def _pull_raw(self, timeout: float) -> int:
        """Pull into the preallocated buffers; return the number of samples."""
        inlet = self._inlet
        if inlet is None:  # pragma: no cover - checked by pull()
            return 0
        err = self._err
        nch = self._nch
        if timeout > 0:
            # liblsl's fixed-size pull waits for a full buffer: wait for one sample, then drain.
            # Called directly (not pylsl's pull_chunk, which allocates the timestamp array).
            values = _lsl.lsl_pull_chunk_d(
                inlet.obj, self._p_data[0], self._p_ts[0], self._one_values, self._one,
                ctypes.c_double(timeout), ctypes.byref(err),
            )  # fmt: skip
            handle_error(err)
            if values == 0:
                return 0
            rest = _lsl.lsl_pull_chunk_d(
                inlet.obj, self._p_data[1], self._p_ts[1], self._rest_values, self._rest,
                ctypes.c_double(0.0), ctypes.byref(err),
            )  # fmt: skip
            handle_error(err)
            return int(values + rest) // nch
        values = _lsl.lsl_pull_chunk_d(
            inlet.obj, self._p_data[0], self._p_ts[0], self._all_values, self._all,
            ctypes.c_double(0.0), ctypes.byref(err),
        )  # fmt: skip
        handle_error(err)
        return int(values) // nch
