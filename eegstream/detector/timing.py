"""Onset and offset of an artifact, read off its run of windows (see :class:`Timing`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["CROSSING", "TIMING", "Run", "Timing", "estimate_times"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Timing:
    """How one label's onset and offset are read off its run of windows (seconds).

    ``onset = crossing + onset_shift`` where *crossing* is the time the label's probability
    crossed ``CROSSING`` on the run's rising edge, interpolated between the window before the run
    and its first window (sub-hop resolution; the first window's onset when the previous window
    is unknown). ``offset = last window's onset + offset_shift``, at least ``min_length`` after
    the onset (a run cut short by a fault or a gap says little about the artifact's length).
    The shifts are calibrated on simulated subjects the model never saw with
    :func:`eegstream.evaluate.suggest_timing`; ``tests/test_offline.py`` checks the result.
    """

    onset_shift: float
    offset_shift: float
    min_length: float = 0.1


#: Probability level whose rising-edge crossing marks an onset.
CROSSING: float = 0.5
#: Per-label timing (see :class:`Timing`), calibrated for ``eegstream/models/default`` (sha256 bd8e50f4...)
#: on 8 simulated subjects it never saw (seeds 1001-1008, 24 min): residual median |onset error|
#: 20 ms (blink) and 26 ms (jaw clench), bias ~0. Recalibrate after retraining the model.
TIMING: dict[str, Timing] = {
    "blink": Timing(onset_shift=0.117, offset_shift=-0.059),
    "jaw_clench": Timing(onset_shift=0.156, offset_shift=-0.041),
}


def estimate_times(
    label: str, p: FloatArray, on: FloatArray, lead: float, hop_s: float
) -> tuple[float, float]:
    """Onset and offset (source clock) of an artifact from its windows (rising edge + run).

    The onset is where the label's probability first crossed ``CROSSING`` and stayed above it
    for the next window too, interpolated between that window and the one before it; the offset
    follows the last window. Computed from all
    windows each time (never accumulated), so the result does not depend on how the stream was
    chunked. See :class:`Timing` and :data:`TIMING`.
    """
    tm = TIMING[label]
    above = p >= CROSSING
    # the first crossing that holds for two windows: one early window that fires and drops
    # again (a borderline fluctuation) does not drag the onset forward
    held = np.flatnonzero(above & np.append(above[1:], True))
    i = int(held[0]) if held.size else 0
    crossing = float(on[i])
    prev = float(p[i - 1]) if i > 0 else lead
    if math.isfinite(prev) and prev < CROSSING <= p[i]:
        crossing -= hop_s * (float(p[i]) - CROSSING) / (float(p[i]) - prev)
    onset = crossing + tm.onset_shift
    offset = max(float(on[-1]) + tm.offset_shift, onset + tm.min_length)
    return onset, offset


@dataclass
class Run:
    """Consecutive windows of one label (the candidate event) and the rising edge before it."""

    label: int
    first_on: float
    lead: float  #: the label's probability in the window before the prefix (NaN: unknown)
    pre_p: FloatArray  #: the rising edge: windows just before the run with p >= ``RELEASE``
    pre_on: FloatArray
    p: list[FloatArray] = field(default_factory=list)
    on: list[FloatArray] = field(default_factory=list)
    n: int = 0
    id: str | None = None  #: set once confirmed (onset message emitted)
    cut: bool = False  #: continues a run cut at max_duration: starts exactly at the cut

    def arrays(self, upto: int | None = None) -> tuple[FloatArray, FloatArray]:
        """Probability and onset time of the prefix and the run's (first ``upto``) windows."""
        p = np.concatenate([self.pre_p, *self.p])
        on = np.concatenate([self.pre_on, *self.on])
        if upto is None:
            return p, on
        k = self.pre_p.shape[0] + upto
        return p[:k], on[:k]
