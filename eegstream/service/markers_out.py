"""Artifact events as an LSL marker stream, so LabRecorder stores them beside the EEG.

Two forms (setting ``marker_format``):

``text`` (default): plain strings that need no parsing, one marker per edge of each event,
stamped in the LSL clock where the edge lies in the EEG, whatever the detection delay was:

* ``blink/onset``, ``jaw_clench/onset``: at the artifact's onset, pushed as soon as it is
  confirmed (the onset phase);
* ``blink/offset``, ``jaw_clench/offset``: at its offset, pushed when it ends (the final phase);
  the duration is the offset stamp minus the onset stamp;
* ``signal_fault/onset`` and ``signal_fault/offset``: at the first and last faulty sample of a
  fault span, both pushed when the span closes.

``json``: each message's JSON (the websocket's), artifact phases and ``signal_fault`` statuses,
stamped at the onset (a fault: its start).

The outlet's ``source_id`` is derived from its name, the host and what the service watches, not
from the process: after a restart LabRecorder sees the same stream and records it again.
"""

from __future__ import annotations

import logging
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal

from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage

if TYPE_CHECKING:
    import pylsl

    from eegstream.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["MarkerFormat", "MarkerOutlet", "marker_source_id", "text_markers"]

MarkerFormat = Literal["text", "json"]
#: Artifact ids whose onset marker went out and whose offset has not (bounded: a stream that
#: vanished mid-event never sends its final phase).
_OPEN_KEPT = 1024


def marker_source_id(name: str, watches: str, host: str | None = None) -> str:
    """A source id that survives restarts: the outlet's name, the host and what it watches."""
    return f"eegstream:{name}@{host or socket.gethostname()}/{watches}"


def _watches(settings: Settings) -> str:
    """What a service with ``settings`` listens to, as it selects streams."""
    if settings.source_id:
        return f"source_id={settings.source_id}"
    if settings.stream_name and not settings.discover:
        return "name=" + ",".join(settings.stream_name)
    mode = "discover" if settings.discover else "type"
    names = ("+name=" + ",".join(settings.stream_name)) if settings.stream_name else ""
    return f"{mode}={settings.stream_type.lower()}{names}"


def text_markers(message: Message, onset_sent: bool) -> list[tuple[str, float]]:
    """The plain ``(marker, LSL stamp)`` pairs of one message (see the module docstring).

    ``onset_sent``: whether this artifact's onset marker already went out (a final phase whose
    onset phase was never seen still gets its onset marker first, so edges always pair).
    """
    if isinstance(message, ArtifactEvent):
        onset = (f"{message.label}/onset", message.onset_lsl)
        if message.phase == "onset":
            return [onset]
        offset = (f"{message.label}/offset", message.offset_lsl)
        return [offset] if onset_sent else [onset, offset]
    if message.status == "signal_fault" and message.start_lsl is not None:
        end = message.end_lsl if message.end_lsl is not None else message.start_lsl
        return [("signal_fault/onset", message.start_lsl), ("signal_fault/offset", end)]
    return []


class MarkerOutlet:
    """An irregular-rate LSL outlet (type ``Markers``, one string channel) of artifact events.

    Parameters
    ----------
    name
        LSL stream name (default setting: ``eegstream-artifacts``).
    source_id
        LSL source id; default :func:`marker_source_id` of ``name`` and ``watches``.
    marker_format
        ``text`` (plain edge markers) or ``json`` (each message's JSON); see the module docstring.
    watches
        What the service listens to (:meth:`from_settings` fills it), part of the source id.
    """

    def __init__(
        self,
        name: str,
        source_id: str | None = None,
        *,
        marker_format: MarkerFormat = "text",
        watches: str = "any",
    ) -> None:
        if marker_format not in ("text", "json"):
            raise EegstreamError(
                f"marker_format must be 'text' or 'json'; got {marker_format!r}; "
                "set EEGSTREAM_MARKER_FORMAT (or marker_format in the config file) to one of them"
            )
        self.name = name
        self.marker_format: MarkerFormat = marker_format
        self.source_id = source_id or marker_source_id(name, watches)
        self._outlet: pylsl.StreamOutlet | None = None
        self._open: OrderedDict[str, None] = OrderedDict()  # artifact ids with an onset marker

    @classmethod
    def from_settings(cls, settings: Settings) -> MarkerOutlet:
        """The service's outlet: name, form and a source id from what ``settings`` select."""
        return cls(
            settings.marker_outlet_name,
            marker_format=settings.marker_format,
            watches=_watches(settings),
        )

    def start(self) -> None:
        """Create the outlet (safe to call twice)."""
        if self._outlet is not None:
            return
        import pylsl  # imported here: liblsl is only loaded when an outlet is wanted

        info = pylsl.StreamInfo(
            self.name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, self.source_id
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "eegstream")
        desc.append_child_value("marker_format", self.marker_format)
        channel = desc.append_child("channels").append_child("channel")
        channel.append_child_value("label", "artifact")
        channel.append_child_value("type", "Marker")
        self._outlet = pylsl.StreamOutlet(info)
        self._open.clear()
        log.info("LSL marker outlet %r (source id %s) is up", self.name, self.source_id)

    @property
    def running(self) -> bool:
        """Whether the outlet exists."""
        return self._outlet is not None

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a recorder to connect (markers before that are not seen)."""
        return self._outlet is not None and bool(self._outlet.wait_for_consumers(timeout))

    def push(self, text: str, stamp_lsl: float) -> None:
        """Send one marker string as it is, stamped ``stamp_lsl`` (LSL clock)."""
        if self._outlet is not None:
            self._outlet.push_sample([text], stamp_lsl)

    def publish(self, message: Message, json_text: str | None = None) -> int:
        """Send the markers of one message in the outlet's form; returns how many went out.

        ``json_text`` is the message as the websocket sends it (with its ``seq``); without it the
        message is serialised here. Statuses other than ``signal_fault`` send nothing.
        """
        if self._outlet is None:
            return 0
        if self.marker_format == "json":
            if isinstance(message, ArtifactEvent):
                stamp = message.onset_lsl
            elif isinstance(message, StatusMessage) and message.status == "signal_fault":
                if message.start_lsl is None:
                    return 0
                stamp = message.start_lsl
            else:
                return 0
            self.push(json_text if json_text is not None else message.model_dump_json(), stamp)
            return 1
        key = message.id if isinstance(message, ArtifactEvent) else ""
        markers = text_markers(message, key in self._open)
        for text, stamp in markers:
            self.push(text, stamp)
        if isinstance(message, ArtifactEvent):
            if message.phase == "onset":
                self._open[key] = None
                while len(self._open) > _OPEN_KEPT:
                    self._open.popitem(last=False)
            else:
                self._open.pop(key, None)
        return len(markers)

    def stop(self) -> None:
        """Destroy the outlet (safe to call twice)."""
        self._outlet = None  # liblsl destroys the outlet with its last reference
        self._open.clear()

    def __enter__(self) -> MarkerOutlet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
