"""The in-memory form of a recording that every stage (reader, simulator, training, replay) shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from eegstream.settings import ELECTRODES


@dataclass(frozen=True)
class Marker:
    """One marker: an artifact onset (or any other event) at a sample of the recording."""

    sample: int  #: index of the onset sample in the recording
    time: float  #: timestamp of that sample (the recording's clock, seconds)
    value: int  #: EmotivPRO MarkerValueInt (22 blink, 23 jaw clench by default)
    label: str  #: label after mapping ("blink", "jaw_clench", or "marker_<value>")
    duration: float = 0.0  #: seconds, 0 when unknown


@dataclass
class Recording:
    """EEG samples of the 14 Emotiv electrodes with their timestamps and markers.

    ``data`` is ``(n_samples, 14)`` float64 in microvolts, columns in ``ELECTRODES`` order
    (electrodes absent from the source are NaN columns and listed in ``missing``).
    """

    data: npt.NDArray[np.float64]
    timestamps: npt.NDArray[np.float64]
    fs: float
    markers: list[Marker] = field(default_factory=list)
    channels: tuple[str, ...] = ELECTRODES
    missing: tuple[str, ...] = ()
    #: True where EmotivPRO interpolated a lost sample (``EEG.Interpolated``); None if unknown.
    interpolated: npt.NDArray[np.bool_] | None = None
    #: Contact quality per electrode (``CQ.<electrode>``) as ``(n_samples, 14)``; None if absent.
    quality: npt.NDArray[np.float32] | None = None
    #: Parsed metadata line (headset, serial, sampling rate, start time, ...) and extra columns.
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.data.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs if self.fs else 0.0
