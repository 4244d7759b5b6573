"""Figures of an evaluation on labelled epochs (``eegstream evaluate --epochs DIR --plot PNG``).

matplotlib comes with the ``train`` extra and loads only here, so a serving install never needs
it; without it the error names the extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eegstream.errors import EegstreamError
from eegstream.evaluate import GestureReport, match_events
from eegstream.events import ArtifactEvent
from eegstream.io.epochs import EpochSpan
from eegstream.io.recording import Recording
from eegstream.settings import ARTIFACT_LABELS

__all__ = ["plot_epoch_evaluation"]

_CALLED = (*ARTIFACT_LABELS, "nothing")
_COLOURS = {"blink": "tab:blue", "jaw_clench": "tab:red", "nothing": "0.85"}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on servers and CI
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise EegstreamError(
            f"--plot needs matplotlib, which is not installed ({exc}); "
            "install it with: pip install 'eegstream[train]'"
        ) from exc
    return plt


def plot_epoch_evaluation(
    path: Path,
    gestures: GestureReport,
    events: Sequence[ArtifactEvent],
    rec: Recording,
    spans: Sequence[EpochSpan],
) -> None:
    """The per-gesture table as a heat map and the session's timeline of hits, misses, alarms.

    Timeline: one band per epoch coloured by the class it should be (grey = nothing), markers
    as ticks; detected events as bars at their span, green when they match a marker, orange
    for false alarms; missed markers as red crosses.
    """
    plt = _pyplot()
    names = list(gestures.gestures)
    rates = np.array([[gestures.rate(g, c) for c in _CALLED] for g in names])
    fig = plt.figure(figsize=(14, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=(1.2, 1))
    ax = fig.add_subplot(grid[0])
    ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(_CALLED)), [f"called {c}" for c in _CALLED])
    ax.set_yticks(
        range(len(names)),
        [f"{g} ({gestures.labels[g]}, n={gestures.gestures[g]['epochs']})" for g in names],
    )
    for i in range(len(names)):
        for j in range(len(_CALLED)):
            v = rates[i, j]
            ax.text(j, i, f"{100 * v:.0f}%", ha="center", va="center",
                    color="white" if v > 0.6 else "black")  # fmt: skip
    ax.set_title(
        f"epochs called each label after the {gestures.warmup_s:g} s warm-up; rest: "
        f"{gestures.rest_events_per_min:.2f} false events/min"
    )

    tl = fig.add_subplot(grid[1])
    t = rec.timestamps
    t0 = float(t[0])
    dt = 1.0 / rec.fs
    for s in spans:
        a, b = float(t[s.start]) - t0, float(t[s.stop - 1]) + dt - t0
        tl.axvspan(a, b, ymin=0.0, ymax=0.3, color=_COLOURS.get(s.label, "0.85"), lw=0)
    matches, _ = match_events(events, rec.markers)
    hit_on = {round(m.onset, 6) for m in matches}
    found = {round(m.marker_time, 6) for m in matches}
    for e in events:
        ok = round(e.onset_lsl, 6) in hit_on
        y = 0.55 if e.label == "blink" else 0.8
        tl.plot([e.onset_lsl - t0, e.offset_lsl - t0], [y, y], lw=6, solid_capstyle="butt",
                color="tab:green" if ok else "tab:orange")  # fmt: skip
    for m in rec.markers:
        if m.label in ARTIFACT_LABELS and round(m.time, 6) not in found:
            y = 0.55 if m.label == "blink" else 0.8
            tl.plot(m.time - t0, y, "x", color="tab:red", ms=8, mew=2)
    tl.axvline(gestures.warmup_s, color="k", ls=":", lw=1)
    tl.set_ylim(0, 1)
    tl.set_yticks([0.15, 0.55, 0.8], ["epoch class", "blink events", "jaw_clench events"])
    tl.set_xlim(0, rec.duration)
    tl.set_xlabel("session time (s); green = hit, orange = false alarm, red x = miss")
    fig.savefig(path, dpi=110)
    plt.close(fig)
