"""Receive a live EEG stream over LSL: resolve it, map its channels by label, pull chunks, notice gaps.

One :class:`EEGInlet` per headset. liblsl writes straight into buffers allocated once per
connection, the 14 electrodes are selected with one ``np.take`` into another (and, when the stream
is not in microvolts or lacks optional electrodes, scaled by one multiply), and the checks are
whole-chunk numpy (no per-sample Python; about 40 us per 8-sample chunk of a 19-channel Emotiv
stream, measured). It resamples other rates to 128 Hz, counts non-finite samples, reports gaps (a
timestamp jump, a counter jump, or a reconnection), and when the outlet vanishes it searches for it
again in the background (by source id, else by name and type) and carries on with a fresh
connection.

LSL conventions: a stream type matches in any case (``EEG``, ``eeg``: MNE-LSL's ``PlayerLSL``
declares ``eeg``). Units come from ``desc/channels/channel/unit`` (:data:`UNITS`; none means
microvolts, as Emotiv sends). Only the model's electrodes (``MODEL_ELECTRODES``) are required;
the other EPOC electrodes, when absent, are NaN columns, as in a recording without them.

Timestamps: by default liblsl synchronises clocks, dejitters and monotonises (``proc_clocksync |
proc_dejitter | proc_monotonize``). liblsl's dejitter is a slow regression of time on sample
count, which would smear a pause of the sender over the following minutes; so after
``stall_reset`` seconds without data the inlet resets it, and the first sample after the pause
carries its true time and the gap shows.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
import string
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pylsl
from pylsl.lib import lib as _lsl
from pylsl.util import LostError, handle_error
from pylsl.util import TimeoutError as LslTimeoutError

from eegstream.errors import EegstreamError, MissingChannelsError, StreamGoneError
from eegstream.resample import Resampler, check_rate
from eegstream.settings import ELECTRODES, FS, MODEL_ELECTRODES
from eegstream.stream.ring import RingBuffer

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

#: What liblsl does to timestamps unless told otherwise.
DEFAULT_PROCESSING = pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize
#: The channel layout of EmotivPRO's own LSL EEG outlet, used only when a stream has no labels.
EMOTIV_LSL_LAYOUT: tuple[str, ...] = (
    "TIMESTAMP", "COUNTER", "INTERPOLATE", *ELECTRODES, "HARDWAREMARKER", "MARKERS",
)  # fmt: skip
_COUNTER_LABELS = frozenset({"COUNTER"})
#: EmotivPRO's flag of samples it filled in after a lost packet (``Interpolate`` on its outlet).
_INTERPOLATED_LABELS = frozenset({"INTERPOLATE", "INTERPOLATED"})
_GAP_FACTOR = 1.5  #: a step longer than 1.5 sample periods is a gap
_FORGET_S = 2.0  #: seconds the background search remembers an outlet that stopped answering
_SEARCH_POLL_S = 0.25  #: seconds between looks at the background search's results
_OPEN_TIMEOUT_S = 5.0  #: seconds a resolved outlet has to send its metadata and start streaming
#: Sample periods a chunk's stamps may move against the arrival of its samples before it counts
#: as a clock jump (liblsl's dejitter smears a jump into steps of ~7 periods per chunk)
CLOCK_STEP = 4
#: Seconds per chunk the lag reference follows a slower or faster delivery: slow, so that a
#: backlog caught up or a clock move smeared by liblsl's dejitter stands out against it
_LAG_RISE_S, _LAG_FALL_S = 0.001, 0.002

State = Literal["disconnected", "connected", "lost"]
GapReason = Literal["timestamps", "counter", "reconnect"]


#: Units accepted in ``desc/channels/channel/unit``, as the factor that turns them into microvolts.
#: Words match in any case; symbols exactly (``mV`` is not ``MV``). A channel without a unit is in
#: microvolts (Emotiv's outlets give none). MNE-LSL writes MNE's unit multiplier instead: the power
#: of ten of volts (``0`` volts, ``-3`` millivolts, ``-6`` microvolts), accepted too.
UNITS: dict[str, float] = {
    "microvolts": 1.0, "microvolt": 1.0, "uV": 1.0,
    "\u00b5V": 1.0, "\u03bcV": 1.0,  # micro sign and Greek mu: both are written
    "millivolts": 1e3, "millivolt": 1e3, "mV": 1e3,
    "volts": 1e6, "volt": 1e6, "V": 1e6,
}  # fmt: skip
_UNIT_WORDS = frozenset(("microvolts", "microvolt", "millivolts", "millivolt", "volts", "volt"))
_MNE_EXPONENTS = range(-12, 4)  #: MNE unit multipliers accepted (pico- to kilovolts)


# --- stream descriptions ----------------------------------------------------------------------


def _channel_values(info: pylsl.StreamInfo, key: str) -> list[str | None]:
    """``desc/channels/channel/<key>`` of every channel (None where absent or no metadata)."""
    values: list[str | None] = []
    channels = info.desc().child("channels")
    if not channels.empty():
        ch = channels.child("channel")
        while not ch.empty():
            values.append(ch.child_value(key) or None)
            ch = ch.next_sibling("channel")
    n = info.channel_count()
    return (values + [None] * n)[:n]


def channel_labels(info: pylsl.StreamInfo) -> list[str | None]:
    """Channel labels from ``desc/channels/channel/label`` (None where absent or no metadata)."""
    return _channel_values(info, "label")


def channel_units(info: pylsl.StreamInfo) -> list[str | None]:
    """Channel units from ``desc/channels/channel/unit`` (None where absent or no metadata)."""
    return _channel_values(info, "unit")


def unit_scale(unit: str | None, where: str) -> float:
    """The factor to microvolts of ``unit`` (:data:`UNITS`; None or empty: microvolts).

    Raises :class:`EegstreamError` naming the unit and the accepted ones: a stream in an unknown
    unit would otherwise be detected on numbers a million times off (volts read as microvolts
    looked like a dead headset: one ``dead_electrode`` status and no events).
    """
    if unit is None or not unit.strip():
        return 1.0
    text = unit.strip()
    if text in UNITS:
        return UNITS[text]
    if text.lower() in _UNIT_WORDS:  # words in any case ("Microvolts"); never symbols ("MV")
        return UNITS[text.lower()]
    try:
        exponent = int(text)
    except ValueError:
        exponent = None
    if exponent is not None and exponent in _MNE_EXPONENTS:
        return float(10.0 ** (exponent + 6))
    raise EegstreamError(
        f"{where} has unit {unit!r}, which eegstream does not know; accepted units: "
        f"{', '.join(UNITS)} (any case for the words), MNE-LSL's power of ten of volts "
        f"(0 = volts, -3, -6 = microvolts), or none (microvolts); set the sender's "
        f"desc/channels/channel/unit to one of them"
    )


@dataclass(frozen=True)
class StreamDescription:
    """What identifies and describes a stream, as plain data (for status pages and errors)."""

    name: str
    type: str
    source_id: str
    uid: str
    hostname: str
    nominal_srate: float
    channel_count: int
    channel_format: int
    labels: tuple[str | None, ...] = ()
    created_at: float = 0.0
    units: tuple[str | None, ...] = ()  #: ``desc/channels/channel/unit`` of every channel

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo) -> StreamDescription:
        """Read a ``pylsl.StreamInfo`` (labels only if it carries the full description)."""
        return cls(
            name=info.name(),
            type=info.type(),
            source_id=info.source_id(),
            uid=info.uid(),
            hostname=info.hostname(),
            nominal_srate=float(info.nominal_srate()),
            channel_count=int(info.channel_count()),
            channel_format=int(info.channel_format()),
            labels=tuple(channel_labels(info)),
            created_at=float(info.created_at()),
            units=tuple(channel_units(info)),
        )

    def __str__(self) -> str:
        rate = f"{self.nominal_srate:g} Hz" if self.nominal_srate else "irregular rate"
        sid = f", source_id {self.source_id!r}" if self.source_id else ""
        return f"{self.name!r} (type {self.type!r}, {self.channel_count} ch @ {rate}{sid}, host {self.hostname})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


# --- channel mapping ----------------------------------------------------------------------------


def normalise_label(label: str) -> str:
    """``" eeg.af3 "`` -> ``"AF3"``: case, spaces and an ``EEG.`` prefix do not matter."""
    name = label.strip().upper()
    return name[4:] if name.startswith("EEG.") else name


@dataclass(frozen=True)
class ChannelMap:
    """Where each of the 14 electrodes (``ELECTRODES`` order) sits among a stream's channels."""

    electrodes: npt.NDArray[np.intp]  #: stream column of each electrode (absent ones: column 0)
    counter: int | None  #: stream column of a sample counter, if any
    ignored: tuple[str, ...]  #: labels of the other channels
    interpolated: int | None = None  #: stream column of EmotivPRO's interpolation flag, if any
    #: per electrode, the factor to microvolts; NaN for an absent electrode, so that the one
    #: multiply that converts units also blanks what the stream does not carry
    scale: npt.NDArray[np.float64] = field(default_factory=lambda: np.ones(len(ELECTRODES)))
    absent: tuple[str, ...] = ()  #: optional electrodes the stream lacks (NaN columns)

    @property
    def unity(self) -> bool:
        """True when the selected columns are already microvolts of every electrode."""
        return bool(np.all(self.scale == 1.0))

    @property
    def present(self) -> npt.NDArray[np.bool_]:
        """``(14,)`` which electrodes the stream carries."""
        return np.asarray(np.isfinite(self.scale), dtype=bool)


def map_channels(
    labels: Sequence[str | None], source: str, units: Sequence[str | None] | None = None
) -> ChannelMap:
    """Map a stream's channels to the 14 electrodes by label (``AF3``, ``EEG.AF3``; any case/order).

    Only ``MODEL_ELECTRODES`` are required: another EPOC electrode the stream lacks is listed in
    ``absent`` and becomes a NaN column. ``units`` (one per channel, see :func:`unit_scale`) give
    each electrode's factor to microvolts. A stream without any labels is accepted only in
    Emotiv's own layouts (14 electrodes, or the 19 channels of EmotivPRO's outlet), with a
    warning. Raises :class:`MissingChannelsError` naming the missing model electrodes, and
    :class:`EegstreamError` for an unknown unit.
    """
    if all(label is None for label in labels):
        if len(labels) in (len(ELECTRODES), len(EMOTIV_LSL_LAYOUT)):
            layout = ELECTRODES if len(labels) == len(ELECTRODES) else EMOTIV_LSL_LAYOUT
            log.warning(
                "%s has no channel labels; assuming Emotiv's %d-channel order %s",
                source,
                len(labels),
                ", ".join(layout),
            )
            labels = list(layout)
        else:
            raise MissingChannelsError(
                source, list(MODEL_ELECTRODES), [f"{len(labels)} unlabelled channels"]
            )
    names = [normalise_label(label) if label else "" for label in labels]
    column: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in column and name in ELECTRODES:
            log.warning(
                "%s has channel %s twice; using the first (column %d)", source, name, column[name]
            )
        column.setdefault(name, i)
    missing = [e for e in MODEL_ELECTRODES if e not in column]
    if missing:
        raise MissingChannelsError(
            source, missing, [str(label) for label in labels if label is not None]
        )
    absent = tuple(e for e in ELECTRODES if e not in column)
    electrodes = np.array([column.get(e, 0) for e in ELECTRODES], dtype=np.intp)
    unit_of = list(units) if units is not None else []
    scale = np.full(len(ELECTRODES), np.nan)
    for k, e in enumerate(ELECTRODES):
        if e in column:
            col = column[e]
            unit = unit_of[col] if col < len(unit_of) else None
            scale[k] = unit_scale(unit, f"{source} channel {labels[col]}")
    counter = next((i for i, n in enumerate(names) if n in _COUNTER_LABELS), None)
    interpolated = next((i for i, n in enumerate(names) if n in _INTERPOLATED_LABELS), None)
    used = {column[e] for e in ELECTRODES if e in column}
    ignored = tuple(str(labels[i]) for i in range(len(labels)) if i not in used)
    return ChannelMap(
        electrodes=electrodes,
        counter=counter,
        ignored=ignored,
        interpolated=interpolated,
        scale=scale,
        absent=absent,
    )


# --- resolving ----------------------------------------------------------------------------------


def _xpath_literal(value: str) -> str:
    """Quote ``value`` for an XPath 1.0 predicate (which has no escape character)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = value.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def types_match(a: str, b: str) -> bool:
    """Whether two LSL stream types are the same type: ``EEG`` is ``eeg`` (ASCII case only).

    MNE-LSL's ``PlayerLSL`` declares ``eeg``, Emotiv and most senders ``EEG``; the XDF spec
    names the type but no case. Only ASCII letters fold, as in :func:`stream_predicate`.
    """
    return a.translate(_ASCII_LOWER) == b.translate(_ASCII_LOWER)


def stream_predicate(name: str | None, stype: str | None, source_id: str | None) -> str:
    """The XPath 1.0 query liblsl resolves: name and source id exact, the type in any case."""
    terms = [f"name={_xpath_literal(name)}"] if name else []
    if stype:  # XPath 1.0 has no lower-case(); translate() folds the ASCII letters
        upper, lower = string.ascii_uppercase, string.ascii_lowercase
        folded = _xpath_literal(stype.translate(_ASCII_LOWER))
        terms.append(f"translate(type,'{upper}','{lower}')={folded}")
    if source_id:
        terms.append(f"source_id={_xpath_literal(source_id)}")
    return " and ".join(terms) or "name"  # "name": every stream has one


def _describe_query(name: str | None, stype: str | None, source_id: str | None) -> str:
    parts = [
        f"{key} {value!r}"
        for key, value in (("name", name), ("type", stype), ("source_id", source_id))
        if value
    ]
    return ", ".join(parts) or "any name or type"


def list_streams(wait: float = 1.0) -> list[StreamDescription]:
    """Every stream visible within ``wait`` seconds (used to explain a failed resolve)."""
    return [StreamDescription.from_info(i) for i in pylsl.resolve_streams(wait_time=wait)]


def _newest(infos: Sequence[pylsl.StreamInfo]) -> pylsl.StreamInfo:
    return max(infos, key=lambda i: float(i.created_at()))


def resolve_stream(
    name: str | None = None,
    stype: str | None = "EEG",
    source_id: str | None = None,
    timeout: float = 10.0,
) -> pylsl.StreamInfo:
    """Find one stream matching every given property, waiting up to ``timeout`` seconds.

    Several matches: the most recently created one is taken (and the choice logged). None:
    :class:`EegstreamError` listing the streams that were visible, so the user can pick one.
    """
    if timeout <= 0:
        raise EegstreamError(f"resolve timeout must be > 0 seconds; got {timeout}")
    infos = pylsl.resolve_bypred(stream_predicate(name, stype, source_id), 1, timeout)
    if not infos:
        seen = list_streams(1.0)
        listing = "; ".join(str(s) for s in seen) or "none"
        raise EegstreamError(
            f"no LSL stream with {_describe_query(name, stype, source_id)} appeared within "
            f"{timeout:g} s; streams seen: {listing}. Start the headset's LSL outlet (EmotivPRO: "
            f"Settings > LSL) or `eegstream replay`, or pass --stream-name / --stream-type / "
            f"--source-id matching one of the streams seen"
        )
    chosen = _newest(infos)
    if len(infos) > 1:
        log.info(
            "%d streams match %s; using the newest, %s",
            len(infos),
            _describe_query(name, stype, source_id),
            StreamDescription.from_info(chosen),
        )
    return chosen


# --- what a pull returns ------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """Samples missing between two consecutive received samples."""

    index: int  #: position in the chunk of the first sample after the gap
    start_lsl: float  #: timestamp of the last sample before the gap
    end_lsl: float  #: timestamp of the first sample after the gap
    missing: int  #: estimated number of missing samples (at the output rate)
    reason: GapReason


class _Cut(NamedTuple):
    """Where a gap was found in a pulled chunk (stream rate) and what showed it."""

    pos: int
    reason: GapReason
    lost: int | None  #: samples a counter says were lost (stream rate), else None


@dataclass(frozen=True)
class InletEvent:
    """A change of connection state, for the pipeline to turn into a status message."""

    kind: Literal["connected", "lost", "recovered", "clock_jump"]
    time_lsl: float  #: last sample time before a loss, else the local LSL time
    stream: StreamDescription | None
    detail: str = ""
    jump_s: float = 0.0  #: ``clock_jump``: how far the source's clock moved (< 0: backwards)


@dataclass(frozen=True)
class Chunk:
    """Samples from one pull. Arrays are views of the inlet's buffers, valid until the next pull."""

    #: ``(n, 14)`` microvolts in ``ELECTRODES`` order at 128 Hz (NaN: an absent optional electrode)
    data: F64
    timestamps: F64  #: ``(n,)`` LSL clock (local), seconds
    gaps: tuple[Gap, ...] = ()
    nonfinite: int = 0  #: samples of ``data`` with a NaN or infinite value on any electrode
    raw: F64 = field(default_factory=lambda: np.empty((0, 0)))  #: all stream channels, as pulled
    #: LSL times of the samples the source marked as interpolated (EmotivPRO's ``Interpolate``
    #: channel; at the source rate), usually none
    interpolated: F64 = field(default_factory=lambda: np.empty(0))

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.data.shape[0])


@dataclass
class InletStats:
    """Running counters (read by the pipeline's status)."""

    samples: int = 0
    chunks: int = 0
    gaps: int = 0
    missing_samples: int = 0
    nonfinite_samples: int = 0
    lost: int = 0
    reconnects: int = 0
    clock_jumps: int = 0


# --- the inlet ----------------------------------------------------------------------------------


class EEGInlet:
    """One LSL EEG stream, pulled as 128 Hz chunks of the 14 electrodes.

    Parameters
    ----------
    name, stype, source_id
        Which stream (any of them may be None; ``stype`` defaults to ``EEG``).
    info
        A stream already resolved: the first :meth:`connect` opens it instead of resolving.
    resolve_timeout
        Seconds to wait for the stream in :meth:`connect`.
    lost_after
        Seconds without data after which the stream counts as lost and is searched for again.
    stall_reset
        Seconds without data after which liblsl's dejitter state is reset (see module doc).
    max_buflen
        Seconds liblsl buffers when this process falls behind (older data is dropped, as a gap).
    max_chunk
        Samples pulled at most per call (buffers are sized once for this).
    processing_flags
        liblsl ``proc_*`` flags, applied as given.
    fs
        Output rate; other stream rates are resampled (``eegstream.resample.Resampler``).

    Call :meth:`pull` from one thread only.
    """

    def __init__(
        self,
        name: str | None = None,
        stype: str | None = "EEG",
        source_id: str | None = None,
        *,
        info: pylsl.StreamInfo | None = None,
        resolve_timeout: float = 10.0,
        lost_after: float = 2.0,
        stall_reset: float = 0.5,
        max_buflen: int = 60,
        max_chunk: int = 1024,
        processing_flags: int = DEFAULT_PROCESSING,
        fs: float = FS,
    ) -> None:
        if max_chunk < 2:
            raise EegstreamError(f"max_chunk must be >= 2 samples; got {max_chunk}")
        if lost_after <= 0 or stall_reset <= 0:
            raise EegstreamError(
                f"lost_after and stall_reset must be > 0 seconds; got {lost_after}, {stall_reset}"
            )
        self.query = (name, stype, source_id)
        self.resolve_timeout = resolve_timeout
        self.lost_after = lost_after
        self.stall_reset = stall_reset
        self.max_buflen = int(max_buflen)
        self.max_chunk = int(max_chunk)
        self.processing_flags = int(processing_flags)
        self.fs = float(fs)
        self.stats = InletStats()
        self.description: StreamDescription | None = None
        self.channels: ChannelMap | None = None
        self._given_info = info
        self._inlet: pylsl.StreamInlet | None = None
        self._state: State = "disconnected"
        self._events: deque[InletEvent] = deque(maxlen=1000)
        self._last_ts: float | None = None  # last timestamp delivered (output rate)
        self._last_counter: float | None = None
        self._last_arrival = 0.0
        self._dejitter_reset_done = False
        self._switched = False  # the next chunk comes from a new connection
        self._ts_offset = 0.0  # added to the source's stamps since its clock jumped
        self._lag_ref: float | None = None  # arrival minus newest stamp, slowly relaxed minimum
        self._resync = False  # a jump was seen: re-anchor on the next chunk's stamps
        self._last_ts_src: float | None = None  # last timestamp pulled (stream rate)
        self._carry: list[tuple[_Cut, float | None]] = []  # gaps awaiting resampled output
        self._source_fs = self.fs
        self._resampler: Resampler | None = None
        self._present_idx: npt.NDArray[np.intp] | None = None  # None: every electrode present
        # background search for a lost stream
        self._lock = threading.Lock()
        self._found: tuple[pylsl.StreamInlet, pylsl.StreamInfo] | None = None
        self._search_thread: threading.Thread | None = None
        self._search_stop = threading.Event()
        self._idle = threading.Event()  # never set: a timed wait that a stop could interrupt
        self._empty = Chunk(np.empty((0, len(ELECTRODES))), np.empty(0))

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``disconnected``, ``connected`` or ``lost`` (searching for the stream again)."""
        return self._state

    @property
    def running(self) -> bool:
        """True between :meth:`connect` and :meth:`disconnect`."""
        return self._state != "disconnected"

    @property
    def source_fs(self) -> float:
        """The stream's nominal rate (before resampling)."""
        return self._source_fs

    def connect(self) -> EEGInlet:
        """Resolve and open the stream, check its channels; safe to call twice."""
        if self.running:
            return self
        info = self._given_info or resolve_stream(*self.query, timeout=self.resolve_timeout)
        self._given_info = None  # a later connect() resolves again: that outlet may be gone
        inlet, full = self._open(info)
        self._adopt(inlet, full)  # raises MissingChannelsError (inlet closed) on a bad layout
        self._last_ts = self._last_ts_src = self._last_counter = None
        self._carry = []
        self._reset_clock()
        self._state = "connected"
        self._last_arrival = pylsl.local_clock()
        self._events.append(InletEvent("connected", self._last_arrival, self.description))
        log.info("connected to %s", self.description)
        return self

    def disconnect(self) -> None:
        """Close the stream and stop any background search; safe to call twice."""
        self._stop_search()
        with self._lock:
            found, self._found = self._found, None
        if found is not None:
            found[0].close_stream()
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
        self._state = "disconnected"

    def __enter__(self) -> EEGInlet:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def events(self) -> list[InletEvent]:
        """Connection changes since the last call (connected, lost, recovered)."""
        out = list(self._events)
        self._events.clear()
        return out

    def backlog(self) -> int:
        """Samples waiting in liblsl's buffer (how far this process is behind)."""
        return int(_lsl.lsl_samples_available(self._inlet.obj)) if self._inlet is not None else 0

    # --- pulling --------------------------------------------------------------------------------

    def pull(self, timeout: float = 0.0) -> Chunk:
        """Samples received since the last call, waiting up to ``timeout`` s for the first one.

        Never raises for a lost stream (that is an event and a background search); raises
        :class:`MissingChannelsError` if the stream that came back lacks electrodes.
        """
        if self._state == "disconnected":
            raise EegstreamError("the inlet is not connected; call connect() before pull()")
        self._take_found()
        if self._inlet is None:  # lost and not found yet
            if timeout > 0:
                self._idle.wait(timeout)
            return self._empty
        try:
            n = self._pull_raw(timeout)
        except LostError:
            self._lose("the outlet closed or the connection broke", dead=True)
            return self._empty
        now = pylsl.local_clock()
        if n == 0:
            self._check_stall(now)
            return self._empty
        self._last_arrival = now
        self._dejitter_reset_done = False
        if self._state == "lost":  # the same outlet delivers again
            self._stop_search()
            self._state = "connected"
            self._events.append(InletEvent("recovered", now, self.description, "data resumed"))
            log.info("%s delivers data again", self.description)
        return self._process(n, now)

    def pull_into(self, ring: RingBuffer, timeout: float = 0.0) -> Chunk:
        """:meth:`pull` and append the samples to ``ring`` (14 channels)."""
        chunk = self.pull(timeout)
        ring.write(chunk.data, chunk.timestamps)
        return chunk

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

    def _process(self, n: int, now: float) -> Chunk:
        raw, ts = self._raw[:n], self._ts[:n]
        channels = self.channels
        if channels is None:  # pragma: no cover - set by _adopt
            return self._empty
        self._check_clock(ts, now, raw)
        cuts = self._find_gaps(raw, ts, 1.0 / self._source_fs)
        if self._resampler is None:
            data = self._mapped[:n]
            np.take(raw, channels.electrodes, axis=1, out=data)  # one column selection
            if not channels.unity:  # units and absent electrodes: one multiply
                np.multiply(data, channels.scale, out=data)
            times = ts
            gaps = tuple(
                self._gap(c, c.pos, self._last_ts if c.pos == 0 else float(ts[c.pos - 1]), ts)
                for c in cuts
            )
        else:
            data, times, gaps = self._resample(raw, ts, cuts)
        nonfinite = self._count_nonfinite(data)
        if gaps:
            self.stats.gaps += len(gaps)
            self.stats.missing_samples += sum(g.missing for g in gaps)
            for g in gaps:
                log.warning(
                    "gap of %.3f s (%d samples missing, %s) in %s",
                    g.end_lsl - g.start_lsl, g.missing, g.reason,
                    self.description.name if self.description else "?",
                )  # fmt: skip
        if data.shape[0]:
            self._last_ts = float(times[-1])
        self.stats.samples += int(data.shape[0])
        self.stats.chunks += 1
        self.stats.nonfinite_samples += nonfinite
        interpolated = self._empty.interpolated  # none: shared, never written
        if channels.interpolated is not None:
            flagged = raw[:, channels.interpolated] > 0
            if flagged.any():  # rare: a copy, so it outlives the buffers
                interpolated = ts[flagged].copy()
        return Chunk(data, times, gaps, nonfinite, raw, interpolated)

    def _find_gaps(self, raw: F64, ts: F64, period: float) -> list[_Cut]:
        """Positions (in the pulled chunk) where samples are missing, with the evidence."""
        cuts: dict[int, _Cut] = {}
        last = self._last_ts_src
        if last is not None:
            step = float(ts[0]) - last
            if self._switched and not (0.5 * period < step < _GAP_FACTOR * period):
                cuts[0] = _Cut(0, "reconnect", None)
            elif step > _GAP_FACTOR * period:
                cuts[0] = _Cut(0, "timestamps", None)
        self._switched = False
        n = ts.shape[0]
        if n > 1:
            steps = self._steps[: n - 1]
            np.subtract(ts[1:], ts[:-1], out=steps)
            if steps.max() > _GAP_FACTOR * period:  # rare: only then find where
                for i in np.flatnonzero(steps > _GAP_FACTOR * period).tolist():
                    cuts.setdefault(i + 1, _Cut(i + 1, "timestamps", None))
        col = self.channels.counter if self.channels is not None else None
        if col is not None:  # e.g. EmotivPRO's COUNTER: lost packets even when stamps are smooth
            counter = raw[:, col]
            if self._last_counter is not None and counter[0] - self._last_counter > 1:
                cuts[0] = _Cut(0, "counter", int(counter[0] - self._last_counter) - 1)
            if n > 1:
                step_c = self._steps[: n - 1]
                np.subtract(counter[1:], counter[:-1], out=step_c)
                if step_c.max() > 1:
                    for i in np.flatnonzero(step_c > 1).tolist():
                        cuts[i + 1] = _Cut(i + 1, "counter", int(step_c[i]) - 1)
            self._last_counter = float(counter[-1])
        self._last_ts_src = float(ts[-1])
        return [cuts[i] for i in sorted(cuts)]

    # --- source clock jumps -----------------------------------------------------------------

    def _reset_clock(self) -> None:
        """A new connection: its stamps are taken as they come."""
        self._ts_offset = 0.0
        self._lag_ref = None
        self._resync = False

    def _check_clock(self, ts: F64, now: float, raw: F64) -> None:
        """Keep the timeline continuous when the source's clock jumps (``ts`` edited in place).

        Why: a clock set back by 5 s made liblsl's monotonize hold every stamp at the last one
        (detection fell 6 s behind, the ring got equal stamps); a clock set forward stamps
        samples in the future. Either way the samples keep arriving at their rate, so arrival
        time is the judge: a stamp not after the one before it (backwards), or a chunk whose
        stamps moved ``CLOCK_STEP`` periods or more beyond its samples' count while arrival did
        not move with them (a real gap does), is a jump. The rest of the chunk continues at the
        nominal rate, liblsl's dejitter and
        monotonize restart, and the next chunk's stamps are re-anchored to continue the
        timeline; a ``clock_jump`` event says by how much the source's clock moved.
        """
        if self._ts_offset:
            ts += self._ts_offset
        prev, period = self._last_ts_src, 1.0 / self._source_fs
        if prev is None or self._switched:  # the first chunk of a connection
            self._lag_ref = now - float(ts[-1])
            return
        if self._resync:  # the first stamps after liblsl's post-processing restarted
            delta = prev + period - float(ts[0])
            ts += delta
            self._ts_offset += delta
            self._resync = False
            self.stats.clock_jumps += 1
            self._events.append(
                InletEvent(
                    "clock_jump", prev, self.description,
                    f"the source's clock moved {-delta:+.3f} s; stamps re-anchored",
                    -delta,
                )
            )  # fmt: skip
            log.warning(
                "%s: the source's clock jumped by %+.3f s; its stamps now continue the timeline",
                self.description, -delta,
            )  # fmt: skip
            self._lag_ref = now - float(ts[-1])
            return
        n = ts.shape[0]
        steps = self._steps[:n]
        steps[0] = float(ts[0]) - prev
        np.subtract(ts[1:], ts[:-1], out=steps[1:])
        lag = now - float(ts[-1])
        ref = lag if self._lag_ref is None else self._lag_ref
        moved = lag - ref  # > 0: the stamps fell behind arrival (or this process is behind)
        advance = float(ts[-1]) - prev - n * period  # stamp time beyond the samples' own
        jump = -1
        if steps.min() < 0.25 * period:  # backwards, held by liblsl's monotonize
            jump = int(np.flatnonzero(steps < 0.25 * period)[0])
        elif (
            abs(advance) >= CLOCK_STEP * period
            and abs(advance + moved) < 0.5 * abs(advance)
            and not self._counter_skips(raw)
        ):
            # the stamps moved ahead (or fell behind) by what arrival did not: a clock move
            # (lost samples leave the lag as it was; a fast replay's stamps advance by the
            # samples' own count, however far ahead of the clock they run)
            jump = int(np.argmax(steps)) if advance > 0 else 0
        if jump < 0:
            self._lag_ref = ref + float(np.clip(moved, -_LAG_FALL_S, _LAG_RISE_S))
            return
        before = prev if jump == 0 else float(ts[jump - 1])
        ts[jump:] = before + period * np.arange(1, n - jump + 1)
        self._resync = True
        if self._inlet is not None and self.processing_flags & (
            pylsl.proc_dejitter | pylsl.proc_monotonize
        ):  # toggling makes liblsl drop its regression and its last stamp
            obj, flags = self._inlet.obj, self.processing_flags
            handle_error(_lsl.lsl_set_postprocessing(obj, pylsl.proc_clocksync & flags))
            handle_error(_lsl.lsl_set_postprocessing(obj, flags))

    def _counter_skips(self, raw: F64) -> bool:
        """True when the source's sample counter says samples were lost in this chunk."""
        col = self.channels.counter if self.channels is not None else None
        if col is None or self._last_counter is None:
            return False
        counter = raw[:, col]
        return bool(counter[-1] - self._last_counter > raw.shape[0])

    def _gap(self, cut: _Cut, index: int, before: float | None, times: F64) -> Gap:
        """The gap ``cut`` as seen at output position ``index`` (``before``: last sample's time)."""
        after = float(times[index])
        start = after if before is None else before
        if cut.lost is not None:  # counted by the source, in its samples
            missing = round(cut.lost * self.fs / self._source_fs)
        else:
            missing = max(0, round((after - start) * self.fs) - 1)
        return Gap(index, start, after, missing, cut.reason)

    def _resample(self, raw: F64, ts: F64, cuts: list[_Cut]) -> tuple[F64, F64, tuple[Gap, ...]]:
        """Map and resample segment by segment; at a gap the resampler is flushed and restarted.

        ``Resampler.process_timed`` removes the filter's group delay and interpolates the output
        timestamps, so events keep their true times at 256 Hz too.
        """
        channels, rs = self.channels, self._resampler
        if channels is None or rs is None:  # pragma: no cover - set by _adopt
            raise RuntimeError("no channel map or resampler")
        at = {c.pos: c for c in cuts}
        bounds = [0, *[i for i in at if i > 0], raw.shape[0]]
        parts: list[F64] = []
        stamps: list[F64] = []
        # gaps found, with the output position after them and the time before them
        pending: list[tuple[_Cut, int, float | None]] = [(c, 0, t) for c, t in self._carry]
        self._carry = []
        produced = 0
        last_time = self._last_ts

        def add(out: F64, times: F64) -> None:
            nonlocal produced, last_time
            if out.shape[0]:
                parts.append(out)
                stamps.append(times)
                produced += out.shape[0]
                last_time = float(times[-1])

        for a, b in itertools.pairwise(bounds):
            if a in at:
                add(*rs.flush_timed())  # the samples before the gap, then a fresh start
                pending.append((at[a], produced, last_time))
            x = np.take(raw[a:b], channels.electrodes, axis=1)
            if not channels.unity:  # units and absent electrodes: one multiply
                np.multiply(x, channels.scale, out=x)
            add(*rs.process_timed(x, ts[a:b]))
        if not parts:
            self._carry = [(c, t) for c, _, t in pending]
            return self._empty.data, self._empty.timestamps, ()
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        times_all = np.concatenate(stamps) if len(stamps) > 1 else stamps[0]
        gaps = []
        for cut, index, before in pending:
            if index >= times_all.shape[0]:  # its first output sample is still to come
                self._carry.append((cut, before))
            else:
                gaps.append(self._gap(cut, index, before, times_all))
        return data, times_all, tuple(gaps)

    def _count_nonfinite(self, data: F64) -> int:
        """Samples with a NaN or inf on any electrode (one reduction when there are none).

        Absent optional electrodes are NaN by design and do not count.
        """
        if data.shape[0] == 0:
            return 0
        if self._present_idx is not None:  # rare: a stream without some optional electrodes
            data = data[:, self._present_idx]
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: still caught
            if np.isfinite(np.sum(data)):  # NaN/inf propagate into the sum
                return 0
        return int(data.shape[0] - np.count_nonzero(np.isfinite(data).all(axis=1)))

    # --- stalls, losses and recovery -----------------------------------------------------------

    def _check_stall(self, now: float) -> None:
        idle = now - self._last_arrival
        if (
            not self._dejitter_reset_done
            and idle > self.stall_reset
            and self.processing_flags & pylsl.proc_dejitter
            and self._inlet is not None
        ):
            # Toggling the flag makes liblsl start a fresh regression at the next sample.
            obj = self._inlet.obj
            handle_error(
                _lsl.lsl_set_postprocessing(obj, self.processing_flags & ~pylsl.proc_dejitter)
            )
            handle_error(_lsl.lsl_set_postprocessing(obj, self.processing_flags))
            self._dejitter_reset_done = True
        if self._state == "connected" and idle > self.lost_after:
            self._lose(f"no data for {idle:.1f} s", dead=False)

    def _lose(self, reason: str, *, dead: bool) -> None:
        if self._state == "lost" and not dead:
            return
        stream = self.description
        if dead:
            if self._inlet is not None:
                self._inlet.close_stream()
            self._inlet = None
            # The resolver may list the dead outlet until it forgets it; skip it until then.
            skip_until = time.monotonic() + _FORGET_S + 0.5
        else:
            skip_until = math.inf  # still connected: only a *new* outlet is worth switching to
        if self._state != "lost":
            self.stats.lost += 1
            when = self._last_ts if self._last_ts is not None else pylsl.local_clock()
            self._events.append(InletEvent("lost", when, stream, reason))
            log.warning("lost %s: %s; searching for it again", stream, reason)
        self._state = "lost"
        self._stop_search()
        self._start_search(stream.uid if stream is not None else None, skip_until)

    def _recovery_query(self) -> tuple[str | None, str | None, str | None]:
        stream = self.description
        if stream is not None and stream.source_id:
            return None, None, stream.source_id
        if stream is not None:
            return stream.name, stream.type, None
        return self.query

    def _start_search(self, skip_uid: str | None, skip_until: float) -> None:
        self._search_stop.clear()
        pred = stream_predicate(*self._recovery_query())
        self._search_thread = threading.Thread(
            target=self._search, args=(pred, skip_uid, skip_until), name="eegstream-inlet-search"
        )
        self._search_thread.daemon = True
        self._search_thread.start()

    def _stop_search(self) -> None:
        self._search_stop.set()
        if self._search_thread is not None:
            self._search_thread.join()
            self._search_thread = None

    def _search(self, pred: str, skip_uid: str | None, skip_until: float) -> None:
        """Background: watch for a matching outlet, open it and hand it over to :meth:`pull`.

        A continuous resolver notices the outlet within about a second of its return; repeated
        one-shot resolves would not (liblsl 1.18 overruns a failed resolve's timeout by up to
        ``UnicastMaxRTT``, 5 s by default).
        """
        resolver = pylsl.ContinuousResolver(pred=pred, forget_after=_FORGET_S)
        while not self._search_stop.wait(_SEARCH_POLL_S):
            skip = skip_uid if time.monotonic() < skip_until else None
            try:
                infos = [i for i in resolver.results() if i.uid() != skip]
                if infos:
                    inlet, full = self._open(_newest(infos))
                    with self._lock:
                        self._found = (inlet, full)
                    return
            except Exception:  # a failed attempt is retried; the log says why
                log.warning("could not reopen the stream (%s); retrying", pred, exc_info=True)

    def _take_found(self) -> None:
        with self._lock:
            found, self._found = self._found, None
        if found is None:
            return
        self._stop_search()
        if self._inlet is not None:
            self._inlet.close_stream()
        self._inlet = None
        self._adopt(*found)  # raises MissingChannelsError if the new stream lacks electrodes
        self._state = "connected"
        self._switched = True
        self._last_counter = None
        self._reset_clock()
        self._last_arrival = pylsl.local_clock()
        self.stats.reconnects += 1
        self._events.append(InletEvent("recovered", self._last_arrival, self.description))
        log.info("reconnected to %s", self.description)

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
