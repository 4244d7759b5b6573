"""Windows to events: the sliding-window detector shared by live streams and offline files.

Data flows ``ingest`` -> :meth:`Detector.due_windows` -> :meth:`Detector.classify` (features +
ONE engine call for every due window) -> :meth:`Detector.apply` -> :class:`EventBuilder`.
:meth:`Detector.process` chains the four for one stream; a multi-stream scheduler calls them
itself and concatenates the features of several streams into one engine call::

    batches = [d.due_windows() for d in detectors]          # after each d.ingest(...)
    probs = engine.infer(np.concatenate([d.featurize(b) for d, b in zip(detectors, batches)]))
    for d, b, p in zip(detectors, batches, np.split(probs, np.cumsum([b.m for b in batches])[:-1])):
        messages += d.apply(b, p)

Events: a run of windows of one label (hysteresis: starts at ``settings.threshold``, continues
down to ``RELEASE``) becomes an ``onset`` message after ``settings.min_windows`` windows and a
``final`` message when it ends; see :class:`EventBuilder` for the rules and :class:`Timing` for
how onset and offset are estimated.

Window geometry: a window is the 64 samples ``[end - 64, end)``; the first ends at sample 64 of a
segment (a segment restarts after every gap) and the next ones every ``settings.hop`` samples.
A window's *onset time* is the timestamp of its sample ``PRE`` (26): the model is trained with the
artifact onset at 0.2 s into the window.

Person baseline: with a bundle that carries a baseline prior, each window's features are
log-power relative to this stream's :class:`~eegstream.baseline.PersonBaseline`, which
:meth:`Detector.apply` feeds with the classified windows (resting ones once warm). A batch never
spans more than two of its 1 s blocks, so the state a window meets does not depend on chunking;
:attr:`Detector.pending` says when windows are still due after a capped batch.

Modules, in data-flow order: :mod:`~eegstream.detector.checks` (the signal checks of the due
windows), :mod:`~eegstream.detector.classify` (features + one engine call),
:mod:`~eegstream.detector.timing` (onset and offset of a run of windows),
:mod:`~eegstream.detector.events` (the event builder), :mod:`~eegstream.detector.status`
(``signal_fault`` and ``dead_electrode`` statuses) and :mod:`~eegstream.detector.core` (the
:class:`Detector` that chains them for one stream).
"""

from __future__ import annotations

from eegstream.detector.checks import (
    ALIVE_UV,
    DEAD_S,
    FLAT_UV,
    GAP_S,
    WindowBatch,
    blink_shaped,
    due_batches,
    horizontal_eye_movement,
    veto_blinks,
)
from eegstream.detector.classify import classify_together, featurize_batches
from eegstream.detector.core import Detector
from eegstream.detector.events import (
    BARRIER,
    NOTHING,
    PREFIX_S,
    RELEASE,
    EventBuilder,
    lsl_clock,
)
from eegstream.detector.timing import CROSSING, TIMING, Timing, estimate_times

__all__ = [
    "ALIVE_UV",
    "BARRIER",
    "CROSSING",
    "DEAD_S",
    "FLAT_UV",
    "GAP_S",
    "NOTHING",
    "PREFIX_S",
    "RELEASE",
    "TIMING",
    "Detector",
    "EventBuilder",
    "Timing",
    "WindowBatch",
    "blink_shaped",
    "classify_together",
    "due_batches",
    "estimate_times",
    "featurize_batches",
    "horizontal_eye_movement",
    "lsl_clock",
    "veto_blinks",
]
