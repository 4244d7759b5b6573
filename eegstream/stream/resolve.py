"""Find LSL streams: describe them as plain data, and resolve one by name, type or source id.

LSL conventions: a stream type matches in any case (``EEG``, ``eeg``: MNE-LSL's ``PlayerLSL``
declares ``eeg``); the name and the source id match exactly. Several matches: the newest stream.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pylsl

from eegstream.errors import EegstreamError

log = logging.getLogger(__name__)


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
