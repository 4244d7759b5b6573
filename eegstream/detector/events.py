"""Event builder: window probabilities -> onset/final events (see :class:`EventBuilder`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

from eegstream.detector.timing import Run, estimate_times
from eegstream.events import ArtifactEvent
from eegstream.settings import ARTIFACT_LABELS, FS, Settings

__all__ = [
    "BARRIER",
    "NOTHING",
    "PREFIX_S",
    "RELEASE",
    "Clock",
    "EventBuilder",
    "lsl_clock",
]

#: Codes the event builder sees per window (artifact windows carry their label index >= 0).
NOTHING = -1
BARRIER = -2

FloatArray = npt.NDArray[np.float64]
Clock = Callable[[], tuple[float, float]]


def lsl_clock() -> tuple[float, float]:
    """``(LSL time, unix time)`` now: when a message is emitted on a live stream."""
    import pylsl  # liblsl is loaded only by callers that emit live messages

    return float(pylsl.local_clock()), time.time()


#: A run continues on windows whose label probability is at least this (hysteresis), so a brief
#: dip inside a long jaw clench does not split it into several events. Runs only *start* on
#: windows above ``settings.threshold``.
RELEASE: float = 0.3
#: Longest rising edge (s) looked back over when a run starts: windows just before the first
#: strong window whose probability is already >= RELEASE belong to the onset estimate.
PREFIX_S: float = 0.5


class EventBuilder:
    """Turns per-window class probabilities into artifact events; a small state machine.

    Rules (the values are :class:`~eegstream.settings.Settings` fields unless noted):

    * a window is *strong* for label ``argmax`` when its probability is ``>= threshold``;
      a run of that label starts on a strong window and continues over windows whose
      probability for the label stays ``>= RELEASE`` (hysteresis), until a window falls below,
      another label is strong, or a barrier (gap, NaN, signal fault) comes;
    * the run is *confirmed* (``phase="onset"`` message) once it has ``min_windows`` windows and
      its provisional duration is ``>= min_duration``; runs never confirmed are dropped;
    * a confirmed run ends with a ``phase="final"`` message (same id) when the run ends, or at
      ``max_duration`` (then the next window starts a new run right away);
    * refractory: a run of a label cannot start on a window whose onset time is within
      ``refractory`` s after the previous event of that label ended.

    Window codes are computed with numpy (one window alone in plain Python, the live case); the
    loop runs over runs, not windows.
    """

    def __init__(
        self,
        settings: Settings,
        stream_id: str,
        clock: Clock | None = None,
        *,
        release: float = RELEASE,
        first_id: int = 1,
    ) -> None:
        self.settings = settings
        self.stream_id = stream_id
        self.labels: tuple[str, ...] = ARTIFACT_LABELS
        #: per label: where a run starts (``settings.threshold`` unless a user profile set one)
        own = {str(k): v for k, v in settings.class_thresholds.items()}
        self.thresholds = np.array([own.get(lab, settings.threshold) for lab in self.labels])
        self.release = min(release, float(self.thresholds.min()))
        self._start_at: list[float] = self.thresholds.tolist()  #: the same, for one window
        self._hysteresis = self.release < float(self.thresholds.max())
        self.hop_s = settings.hop / FS
        self._prefix_n = max(1, int(math.ceil(PREFIX_S / self.hop_s)))
        self._clock = clock
        self._next_id = first_id
        self.n_onset = 0
        self.n_final = 0
        self.n_dropped = 0
        self.reset()

    def reset(self) -> None:
        """Forget the open run and the refractory state (a new stream)."""
        self._run: Run | None = None
        self._last_end = np.full(len(self.labels), -np.inf)
        self._prev_code = BARRIER  #: code of the last window fed (hysteresis across calls)
        # the last windows fed (probabilities, onset times): rising edges reach back into them
        self._hist_p = np.zeros((0, len(self.labels) + 1))
        self._hist_on = np.zeros(0)
        self._last_end_time = 0.0  #: end time of the last window fed (detection time at close)

    @property
    def open(self) -> bool:
        """True while a run (confirmed or not) is in progress."""
        return self._run is not None

    def codes(self, probs: FloatArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Per-window label code (label index, ``NOTHING`` or ``BARRIER``) and *strong* mask.

        ``probs`` is ``(k, classes)`` with ``NaN`` rows for windows that were not classified.
        Hysteresis is applied per label: a weak window takes the label when the window before it
        (possibly from the previous call) carries that label.
        """
        k = probs.shape[0]
        if k == 1:  # live, the usual: plain Python is several times faster for one window
            code, strong1 = self._code_one(probs[0].tolist())
            return np.array([code], dtype=np.int64), np.array([strong1])
        na = len(self.labels)
        valid = np.asarray(~np.isnan(probs).any(axis=1))
        lab = np.where(valid[:, None], probs, -1.0).argmax(axis=1)
        top = probs[np.arange(k), lab]
        strong = valid & (lab < na) & (top >= self.thresholds[np.minimum(lab, na - 1)])
        codes = np.where(valid, NOTHING, BARRIER)
        codes[strong] = lab[strong]
        if self._hysteresis:
            with np.errstate(invalid="ignore"):
                weak_all = probs[:, :na] >= self.release  # NaN rows: False
            for L in range(na):
                weak = weak_all[:, L] & ~(strong & (lab != L))
                if not (weak & ~strong).any():  # nothing for hysteresis to extend
                    continue
                pos = np.arange(k)
                starts = weak & ~np.concatenate(([False], weak[:-1]))
                block = np.maximum.accumulate(np.where(starts, pos, -1))
                seen = np.maximum.accumulate(np.where(strong & (lab == L), pos, -1))
                carried = (block == 0) & (self._prev_code == L)
                is_l = weak & ((seen >= block) | carried)
                codes[is_l & (codes == NOTHING)] = L
        return codes, strong

    def _code_one(self, row: list[float]) -> tuple[int, bool]:
        """:meth:`codes` of a single window (``row``: its probabilities): code and strong."""
        if any(math.isnan(v) for v in row):
            return BARRIER, False  # not classified
        na = len(self.labels)
        lab = max(range(na + 1), key=row.__getitem__)  # the first maximum, as argmax
        if lab < na and row[lab] >= self._start_at[lab]:
            return lab, True
        prev = self._prev_code
        if self._hysteresis and 0 <= prev < na and row[prev] >= self.release:
            return prev, False  # a weak window carries the label of the window before it
        return NOTHING, False

    def feed(
        self,
        probs: FloatArray,
        onset_times: FloatArray,
        end_times: FloatArray,
        unix_offset: float,
    ) -> list[tuple[int, ArtifactEvent]]:
        """Advance over ``k`` windows; return ``(window position, event)`` in emission order.

        ``probs`` ``(k, classes)`` (NaN rows: not classified, a barrier); times are the
        windows' onset (sample ``PRE``) and last-sample timestamps. A message's detection time
        is the emitting window's end (data clock) unless the builder was given a wall clock.
        """
        out: list[tuple[int, ArtifactEvent]] = []
        k = int(probs.shape[0])
        if k == 0:
            return out
        if self.advance_idle(probs, onset_times, end_times):
            return out
        s = self.settings
        codes, strong = self.codes(probs)
        base = self._hist_p.shape[0]
        all_p = np.concatenate([self._hist_p, probs])  # with the history, for rising edges
        all_on = np.concatenate([self._hist_on, onset_times])
        change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        bounds = np.concatenate(([0], change, [k])).tolist()
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            c = int(codes[a])
            if self._run is not None and self._run.label != c:
                out += self._end(end_times, unix_offset, emit_at=a, split_at=None)
            if c < 0:
                continue
            i = a
            while i < b:
                if self._run is None:  # a new run: on a strong window past the refractory time
                    ok = strong[i:b] & (onset_times[i:b] >= self._last_end[c] + s.refractory)
                    nz = np.flatnonzero(ok)
                    if nz.size == 0:
                        break
                    i += int(nz[0])
                    self._run = self._start(c, base + i, all_p, all_on)
                run = self._run
                lim = i + int(
                    np.searchsorted(onset_times[i:b], run.first_on + s.max_duration, side="left")
                )
                if lim > i:
                    out += self._extend(i, lim, probs[:, c], onset_times, end_times, unix_offset)
                if lim < b:  # max_duration reached: close here, continue with a new run
                    out += self._end(end_times, unix_offset, emit_at=lim, split_at=onset_times[lim])
                    self._run = self._start(c, base + lim, all_p, all_on, edge=False)
                i = lim
        self._remember(all_p, all_on, float(end_times[-1]), int(codes[-1]))
        return out

    def advance_idle(
        self, probs: FloatArray, onset_times: FloatArray, end_times: FloatArray
    ) -> bool:
        """Advance over windows that cannot start a run (most of them); False if one might.

        No run is open and no window is strong enough to start one, so nothing is emitted and
        only the history and the last code move on, as :meth:`feed` moves them (the same
        :meth:`_remember`). Why: the scheduler feeds every stream every tick, one window each,
        and this spares it :meth:`codes`' dozen numpy calls per stream: one window is decided
        in plain Python (the same rules as :meth:`codes`), several when none even reaches the
        release level.
        """
        if self._run is not None:
            return False
        if probs.shape[0] != 1:
            return self._advance_quiet(probs, onset_times, end_times)
        code, strong = self._code_one(probs[0].tolist())
        if strong:
            return False  # a run may start
        all_p = np.concatenate([self._hist_p, probs])
        all_on = np.concatenate([self._hist_on, onset_times])
        self._remember(all_p, all_on, float(end_times[-1]), code)
        return True

    def _advance_quiet(
        self, probs: FloatArray, onset_times: FloatArray, end_times: FloatArray
    ) -> bool:
        """:meth:`advance_idle` for several windows: only when none reaches the release level."""
        with np.errstate(invalid="ignore"):
            if (probs[:, : len(self.labels)] >= self.release).any():
                return False
        if probs.shape[0] <= self._prefix_n:  # too few to fill the history alone
            probs = np.concatenate([self._hist_p, probs])
            onset_times = np.concatenate([self._hist_on, onset_times])
        code = BARRIER if np.isnan(probs[-1]).any() else NOTHING
        self._remember(probs, onset_times, float(end_times[-1]), code)
        return True

    def _remember(self, probs: FloatArray, onset_times: FloatArray, end: float, code: int) -> None:
        """The state the next call continues from: the newest windows, the last code, the end.

        ``probs`` and ``onset_times`` end with the windows just fed (preceded by the history
        where they alone are too few).
        """
        keep = self._prefix_n + 1
        self._hist_p = probs[-keep:].copy()
        self._hist_on = onset_times[-keep:].copy()
        self._prev_code = code
        self._last_end_time = end

    def close(self, unix_offset: float) -> list[ArtifactEvent]:
        """End the open run at a gap, a signal fault or the end of a file."""
        self._prev_code = BARRIER
        self._hist_p = self._hist_p[:0]
        self._hist_on = self._hist_on[:0]
        if self._run is None:
            return []
        t = np.array([self._last_end_time])
        return [e for _, e in self._end(t, unix_offset, emit_at=0, split_at=None)]

    # -- internals ----------------------------------------------------------------------------

    def _start(
        self, c: int, ci: int, all_p: FloatArray, all_on: FloatArray, *, edge: bool = True
    ) -> Run:
        """A run of label ``c`` from window ``ci`` (index into history + this call's windows).

        With ``edge`` the rising edge is taken along: up to ``PREFIX_S`` of windows right before
        ``ci`` whose probability for ``c`` is already >= RELEASE, after the refractory time.
        """
        start = ci
        if edge:
            lo = max(0, ci - self._prefix_n)
            with np.errstate(invalid="ignore"):
                ok = (all_p[lo:ci, c] >= self.release) & (
                    all_on[lo:ci] >= self._last_end[c] + self.settings.refractory
                )
            bad = np.flatnonzero(~ok)
            start = lo + (int(bad[-1]) + 1 if bad.size else 0)
        lead = float(all_p[start - 1, c]) if start > 0 else math.nan
        return Run(
            label=c,
            first_on=float(all_on[ci]),
            lead=lead,
            pre_p=all_p[start:ci, c].copy(),
            pre_on=all_on[start:ci].copy(),
            cut=not edge,
        )

    def _times(self, run: Run, label: str, upto: int | None = None) -> tuple[float, float]:
        p, on = run.arrays(upto)
        onset, offset = estimate_times(label, p, on, run.lead, self.hop_s)
        if run.cut:
            onset = run.first_on
            offset = max(offset, onset + 1.0 / FS)
        return onset, offset

    def _extend(
        self,
        i: int,
        lim: int,
        p: FloatArray,
        on: FloatArray,
        end: FloatArray,
        unix_offset: float,
    ) -> list[tuple[int, ArtifactEvent]]:
        run = self._run
        if run is None:  # pragma: no cover - callers guarantee a run
            return []
        n0 = run.n
        run.p.append(p[i:lim])
        run.on.append(on[i:lim])
        run.n += lim - i
        if run.id is not None:
            return []
        s = self.settings
        label = self.labels[run.label]
        for j in range(max(i, i + s.min_windows - n0 - 1), lim):  # usually one iteration
            onset, offset = self._times(run, label, n0 + (j - i) + 1)
            if offset - onset + 1e-9 < s.min_duration:
                continue
            run.id = f"{self.stream_id}-{self._next_id}"
            self._next_id += 1
            self.n_onset += 1
            n = n0 + (j - i) + 1
            ev = self._event(run, "onset", n, onset, offset, float(end[j]), unix_offset)
            return [(j, ev)]
        return []

    def _end(
        self,
        end: FloatArray,
        unix_offset: float,
        *,
        emit_at: int,
        split_at: float | None,
    ) -> list[tuple[int, ArtifactEvent]]:
        run, self._run = self._run, None
        if run is None or run.n == 0:
            return []
        if run.id is None:
            self.n_dropped += 1
            return []
        onset, offset = self._times(run, self.labels[run.label])
        if split_at is not None:  # cut by max_duration: the next piece starts where this ends
            offset = float(split_at)
        self._last_end[run.label] = offset
        self.n_final += 1
        lsl = float(end[min(emit_at, end.shape[0] - 1)])
        return [(emit_at, self._event(run, "final", run.n, onset, offset, lsl, unix_offset))]

    def _event(
        self,
        run: Run,
        phase: Literal["onset", "final"],
        n: int,
        onset: float,
        offset: float,
        lsl: float,
        unix_offset: float,
    ) -> ArtifactEvent:
        det_lsl, det_unix = (lsl, lsl + unix_offset) if self._clock is None else self._clock()
        peak = float(np.concatenate(run.p)[:n].max())  # the run's windows, not the rising edge
        return ArtifactEvent(
            id=run.id or "",
            seq=0,
            phase=phase,
            stream_id=self.stream_id,
            label=self.labels[run.label],  # type: ignore[arg-type]
            onset_lsl=onset,
            offset_lsl=offset,
            onset_unix=onset + unix_offset,
            offset_unix=offset + unix_offset,
            duration=offset - onset,
            confidence=min(1.0, max(0.0, peak)),
            n_windows=n,
            detected_lsl=det_lsl,
            detected_unix=det_unix,
        )
