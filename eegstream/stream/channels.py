"""Map a stream's channels to the 14 electrodes by label, and their units to microvolts.

LSL conventions: units come from ``desc/channels/channel/unit`` (:data:`UNITS`; none means
microvolts, as Emotiv sends). Only the model's electrodes (``MODEL_ELECTRODES``) are required;
the other EPOC electrodes, when absent, are NaN columns, as in a recording without them. The
labels and units are read from the stream's description by :mod:`eegstream.stream.resolve`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.settings import ELECTRODES, MODEL_ELECTRODES

log = logging.getLogger(__name__)

#: The channel layout of EmotivPRO's own LSL EEG outlet, used only when a stream has no labels.
EMOTIV_LSL_LAYOUT: tuple[str, ...] = (
    "TIMESTAMP", "COUNTER", "INTERPOLATE", *ELECTRODES, "HARDWAREMARKER", "MARKERS",
)  # fmt: skip
_COUNTER_LABELS = frozenset({"COUNTER"})
#: EmotivPRO's flag of samples it filled in after a lost packet (``Interpolate`` on its outlet).
_INTERPOLATED_LABELS = frozenset({"INTERPOLATE", "INTERPOLATED"})


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

    @cached_property
    def unity(self) -> bool:
        """True when the selected columns are already microvolts of every electrode.

        Cached: the inlet asks on every pull, and ``scale`` never changes (frozen).
        """
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
