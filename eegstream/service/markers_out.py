"""Artifact events as an LSL marker stream, so LabRecorder stores them beside the EEG.

Each artifact message (onset and final phase) becomes one string sample holding the event's JSON,
stamped with the artifact onset in the LSL clock: in the XDF file the marker sits exactly where
the artifact starts in the EEG, whatever the detection delay was.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pylsl

log = logging.getLogger(__name__)


class MarkerOutlet:
    """An irregular-rate LSL outlet (type ``Markers``, one string channel) of artifact events.

    Parameters
    ----------
    name
        LSL stream name (default setting: ``eegstream-artifacts``).
    source_id
        LSL source id; the default is unique per host and process so that two services on one
        network never look like one stream to LabRecorder.
    """

    def __init__(self, name: str, source_id: str | None = None) -> None:
        self.name = name
        self.source_id = source_id or f"eegstream-artifacts@{socket.gethostname()}:{os.getpid()}"
        self._outlet: pylsl.StreamOutlet | None = None

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
        channel = desc.append_child("channels").append_child("channel")
        channel.append_child_value("label", "artifact")
        channel.append_child_value("type", "Marker")
        self._outlet = pylsl.StreamOutlet(info)
        log.info("LSL marker outlet %r (source id %s) is up", self.name, self.source_id)

    @property
    def running(self) -> bool:
        """Whether the outlet exists."""
        return self._outlet is not None

    def push(self, text: str, onset_lsl: float) -> None:
        """Send one artifact message (its JSON ``text``), stamped with its onset (LSL clock)."""
        if self._outlet is not None:
            self._outlet.push_sample([text], onset_lsl)

    def stop(self) -> None:
        """Destroy the outlet (safe to call twice)."""
        self._outlet = None  # liblsl destroys the outlet with its last reference

    def __enter__(self) -> MarkerOutlet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
