"""The detector: event state machine, window cursor, gaps, NaN and signal-fault handling.

The EventBuilder tests drive the state machine with synthetic per-window decisions. The Detector
tests run the real ring buffer, feature pipeline and checks; where they need a classifier before
the real model exists they use a tiny deterministic engine (``PowerEngine``) that reads the
features, so every window goes through the same code as in production.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from eegstream.detector import (
    BARRIER,
    CROSSING,
    NOTHING,
    TIMING,
    Detector,
    EventBuilder,
    estimate_times,
)
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.preprocess import FeaturePipeline, Scaler
from eegstream.settings import ELECTRODES, FS, MODEL_ELECTRODES, N_BINS, PRE, WINDOW, Settings

HOP = 8
BLINK, JAW = 0, 1
T0 = 1000.0


def window_times(k: int, first: int = 0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Onset and end times of windows ``first..first+k`` at the default hop."""
    start = (first + np.arange(k)) * HOP
    return T0 + (start + PRE) / FS, T0 + (start + WINDOW - 1) / FS


def probs_of(codes: list[int], conf: list[float] | None = None) -> npt.NDArray[np.float64]:
    """Class probabilities for decision codes: the label gets ``conf`` (default 0.9), "nothing"
    the rest; NOTHING windows are 0.9 "nothing"; BARRIER windows are NaN rows."""
    p = np.zeros((len(codes), 3))
    c = conf if conf is not None else [0.9] * len(codes)
    for i, (code, q) in enumerate(zip(codes, c, strict=True)):
        if code == BARRIER:
            p[i] = np.nan
        elif code == NOTHING:
            p[i] = (0.05, 0.05, 0.9)
        else:
            p[i, code] = q
            p[i, 2] = 1 - q
    return p


def feed_all(
    builder: EventBuilder,
    codes: list[int] | npt.NDArray[np.float64],
    conf: list[float] | None = None,
    chunks: int | None = None,
) -> list[tuple[int, ArtifactEvent]]:
    """Feed decision codes (or a probability array), optionally in pieces of ``chunks`` windows."""
    p = codes if isinstance(codes, np.ndarray) else probs_of(codes, conf)
    on, end = window_times(len(p))
    step = chunks or len(p)
    out: list[tuple[int, ArtifactEvent]] = []
    for a in range(0, len(p), step):
        sl = slice(a, a + step)
        out += [(a + j, e) for j, e in builder.feed(p[sl], on[sl], end[sl], 0.0)]
    return out


def settings(**kw: object) -> Settings:
    return Settings(**kw)  # type: ignore[arg-type]


# --- EventBuilder ---------------------------------------------------------------------------


def test_run_gives_onset_then_final_with_same_id() -> None:
    b = EventBuilder(settings(min_windows=2), "s")
    codes = [NOTHING] * 3 + [BLINK] * 4 + [NOTHING] * 3
    conf = [0.1] * 3 + [0.7, 0.9, 0.95, 0.8] + [0.1] * 3
    out = feed_all(b, codes, conf)
    assert [(i, e.phase) for i, e in out] == [(4, "onset"), (7, "final")]
    onset, final = out[0][1], out[1][1]
    assert onset.id == final.id == "s-1"
    assert final.label == "blink"
    assert final.n_windows == 4
    assert onset.n_windows == 2
    assert final.confidence == pytest.approx(0.95)
    assert onset.confidence == pytest.approx(0.9)
    on, end = window_times(10)
    # the 0.5 crossing, interpolated between the window before the run (blink 0.05) and its first
    crossing = on[3] - HOP / FS * (0.7 - CROSSING) / (0.7 - 0.05)
    assert final.onset_lsl == pytest.approx(crossing + TIMING["blink"].onset_shift)
    assert onset.onset_lsl == final.onset_lsl
    assert final.offset_lsl == pytest.approx(
        max(on[6] + TIMING["blink"].offset_shift, final.onset_lsl + TIMING["blink"].min_length)
    )
    assert final.duration == pytest.approx(final.offset_lsl - final.onset_lsl)
    # data clock: detected at the end of the deciding window
    assert onset.detected_lsl == pytest.approx(end[4])
    assert final.detected_lsl == pytest.approx(end[7])


def test_short_run_is_dropped_and_counted() -> None:
    b = EventBuilder(settings(min_windows=3), "s")
    out = feed_all(b, [NOTHING, BLINK, BLINK, NOTHING, JAW, NOTHING])
    assert out == []
    assert b.n_dropped == 2


def test_label_change_ends_one_event_and_starts_another() -> None:
    b = EventBuilder(settings(min_windows=2, refractory=0.0), "s")
    out = feed_all(b, [BLINK] * 3 + [JAW] * 3 + [NOTHING])
    assert [(e.phase, e.label) for _, e in out] == [
        ("onset", "blink"),
        ("final", "blink"),
        ("onset", "jaw_clench"),
        ("final", "jaw_clench"),
    ]
    assert out[1][0] == 3  # the blink ends at the first jaw window
    assert out[0][1].id != out[2][1].id


def test_barrier_closes_like_nothing() -> None:
    b = EventBuilder(settings(min_windows=2), "s")
    out = feed_all(b, [BLINK] * 3 + [BARRIER] + [NOTHING])
    assert [(i, e.phase) for i, e in out] == [(1, "onset"), (3, "final")]


@pytest.mark.parametrize("refractory", [0.0, 1.0])
def test_refractory_blocks_a_second_run_of_the_same_label(refractory: float) -> None:
    b = EventBuilder(settings(min_windows=2, refractory=refractory), "s")
    # two blink runs 2 windows (125 ms) apart: one event with a 1 s refractory, two without
    out = feed_all(b, [BLINK] * 3 + [NOTHING] * 2 + [BLINK] * 3 + [NOTHING])
    finals = [e for _, e in out if e.phase == "final"]
    assert len(finals) == (1 if refractory else 2)


def test_refractory_does_not_block_the_other_label() -> None:
    b = EventBuilder(settings(min_windows=2, refractory=5.0), "s")
    out = feed_all(b, [BLINK] * 3 + [NOTHING] + [JAW] * 3 + [NOTHING])
    assert [e.label for _, e in out if e.phase == "final"] == ["blink", "jaw_clench"]


def test_refractory_lets_a_later_part_of_the_segment_start() -> None:
    b = EventBuilder(settings(min_windows=2, refractory=0.5), "s")
    codes = [JAW] * 3 + [NOTHING] + [JAW] * 20 + [NOTHING]
    out = feed_all(b, codes)
    finals = [e for _, e in out if e.phase == "final"]
    assert len(finals) == 2
    assert finals[1].onset_lsl >= finals[0].offset_lsl + 0.5


def test_max_duration_splits_long_runs() -> None:
    s = settings(min_windows=2, max_duration=1.0, refractory=0.25)
    b = EventBuilder(s, "s")
    n = int(3.5 * FS / HOP)  # 3.5 s of jaw-clench windows
    out = feed_all(b, [JAW] * n + [NOTHING])
    finals = [e for _, e in out if e.phase == "final"]
    assert len(finals) == 4
    assert all(e.duration <= 1.0 + 1e-9 for e in finals)
    assert sum(e.n_windows for e in finals) == n  # no window lost at the splits
    # consecutive pieces: each starts where the previous one was cut
    for prev, nxt in zip(finals, finals[1:], strict=False):
        assert nxt.onset_lsl == pytest.approx(prev.offset_lsl)


def test_min_duration_drops_short_events_before_their_onset_message() -> None:
    b = EventBuilder(settings(min_windows=2, min_duration=0.5), "s")
    out = feed_all(b, [JAW] * 4 + [NOTHING] * 2 + [JAW] * 20 + [NOTHING])
    assert [e.phase for _, e in out] == ["onset", "final"]
    assert out[1][1].duration >= 0.5
    assert b.n_dropped == 1


def test_close_ends_the_open_event() -> None:
    b = EventBuilder(settings(min_windows=2), "s")
    out = feed_all(b, [BLINK] * 4)
    assert [e.phase for _, e in out] == ["onset"]
    closed = b.close(0.0)
    assert [e.phase for e in closed] == ["final"]
    assert closed[0].id == out[0][1].id
    assert b.close(0.0) == []


def test_unconfirmed_run_is_silently_dropped_at_close() -> None:
    b = EventBuilder(settings(min_windows=3), "s")
    feed_all(b, [BLINK] * 2)
    assert b.close(0.0) == []


def random_probs(n: int, seed: int) -> npt.NDArray[np.float64]:
    """Blocks of strong / weak / low probability for random labels, and some barriers."""
    rng = np.random.default_rng(seed)
    rows: list[npt.NDArray[np.float64]] = []
    while sum(r.shape[0] for r in rows) < n:
        length = int(rng.integers(1, 9))
        kind = rng.choice(
            ["strong", "weak", "low", "low", "barrier"], p=[0.3, 0.25, 0.2, 0.2, 0.05]
        )
        block = np.zeros((length, 3))
        if kind == "barrier":
            block[:] = np.nan
        else:
            lo, hi = {"strong": (0.6, 1.0), "weak": (0.3, 0.6), "low": (0.0, 0.3)}[str(kind)]
            level = rng.uniform(lo, hi, size=length)
            block[np.arange(length), int(rng.integers(0, 2))] = level
            block[:, 2] = 1 - level
        rows.append(block)
    return np.concatenate(rows)[:n]


@pytest.mark.parametrize("chunk", [1, 2, 7, 33])
def test_feeding_in_pieces_gives_identical_events(chunk: int) -> None:
    p = random_probs(1500, seed=chunk)
    s = settings(min_windows=2, max_duration=0.8, refractory=0.2)
    whole = feed_all(EventBuilder(s, "s"), p)
    pieces = feed_all(EventBuilder(s, "s"), p, chunks=chunk)
    assert len(whole) > 40
    assert pieces == whole


def test_rising_edge_moves_the_onset_back() -> None:
    on, _ = window_times(12)
    hop = HOP / FS
    p = probs_of([NOTHING] * 3 + [BLINK] * 4 + [NOTHING] * 5)
    ref = feed_all(EventBuilder(settings(min_windows=2), "s"), p)[-1][1]
    p[1] = (0.35, 0.0, 0.65)  # the rising edge: weak windows just before the first strong one
    p[2] = (0.55, 0.0, 0.45)
    out = feed_all(EventBuilder(settings(min_windows=2), "s"), p)
    ev = out[-1][1]
    assert [i for i, _ in out] == [4, 7]  # confirmation still counts the run's windows only
    assert ev.n_windows == 4
    # the 0.5 crossing now lies between windows 1 (0.35) and 2 (0.55)
    crossing = on[2] - hop * (0.55 - CROSSING) / (0.55 - 0.35)
    assert ev.onset_lsl == pytest.approx(crossing + TIMING["blink"].onset_shift)
    assert ev.onset_lsl < ref.onset_lsl


def test_rising_edge_stops_at_the_refractory_time() -> None:
    p = probs_of([BLINK] * 3 + [NOTHING] * 6 + [BLINK] * 5 + [NOTHING])
    p[4:9] = (0.55, 0.0, 0.45)  # weak blink evidence (over CROSSING, under threshold)

    def second(refractory: float) -> tuple[ArtifactEvent, ArtifactEvent]:
        out = feed_all(EventBuilder(settings(min_windows=2, refractory=refractory), "s"), p)
        a, b = (e for _, e in out if e.phase == "final")
        return a, b

    first, late = second(0.4)
    _, early = second(0.0)
    # without refractory the edge reaches back over the weak windows; with it, it stops at
    # the first window allowed (the interpolation may reach one hop before it)
    allowed = first.offset_lsl + 0.4
    assert late.onset_lsl >= allowed - HOP / FS + TIMING["blink"].onset_shift - 1e-9
    assert early.onset_lsl < late.onset_lsl - 0.2


def test_unix_times_follow_the_offset() -> None:
    b = EventBuilder(settings(min_windows=2), "s")
    on, end = window_times(4)
    out = b.feed(probs_of([BLINK] * 3 + [NOTHING]), on, end, 1.5e9)
    final = out[-1][1]
    assert final.onset_unix == pytest.approx(final.onset_lsl + 1.5e9)
    assert final.offset_unix == pytest.approx(final.offset_lsl + 1.5e9)
    assert final.detected_unix == pytest.approx(final.detected_lsl + 1.5e9)


def test_wall_clock_is_used_when_given() -> None:
    b = EventBuilder(settings(min_windows=2), "s", clock=lambda: (42.0, 43.0))
    out = feed_all(b, [BLINK] * 3 + [NOTHING])
    assert all((e.detected_lsl, e.detected_unix) == (42.0, 43.0) for _, e in out)


def test_estimate_times_interpolates_the_rising_edge() -> None:
    on = np.array([1.0, 1.1, 1.2])
    p = np.array([0.9, 1.0, 0.5])
    hop = 0.1
    shift = TIMING["blink"].onset_shift
    # previous window at 0.1: the 0.5 crossing lies half-way between it (0.1) and 0.9
    onset, offset = estimate_times("blink", p, on, 0.1, hop)
    assert onset == pytest.approx(1.0 - 0.05 + shift)
    assert offset >= onset + TIMING["blink"].min_length
    # unknown previous window (start of a stream, after a gap): the first window's onset
    assert estimate_times("blink", p, on, float("nan"), hop)[0] == pytest.approx(1.0 + shift)
    # a weak first window (a run continued by hysteresis from a cut): no extrapolation
    assert estimate_times("blink", np.array([0.4]), on[:1], 0.3, hop)[0] == pytest.approx(
        1.0 + shift
    )


def test_estimate_times_ignores_a_single_early_window() -> None:
    on = np.array([1.0, 1.1, 1.2, 1.3])
    shift = TIMING["blink"].onset_shift
    # fires, drops, then holds: the onset is the crossing that holds (between 0.2 and 1.0)
    onset, _ = estimate_times("blink", np.array([0.9, 0.2, 1.0, 1.0]), on, 0.0, 0.1)
    assert onset == pytest.approx(1.2 - 0.1 * 0.5 / 0.8 + shift)


def test_hysteresis_keeps_a_dipping_run_together() -> None:
    p = probs_of([NOTHING] + [JAW] * 4 + [NOTHING] * 2 + [JAW] * 4 + [NOTHING])
    p[5:7] = (0.02, 0.4, 0.58)  # a dip: jaw 0.4 is under the threshold but over RELEASE
    s = settings(min_windows=2, refractory=0.0)
    out = feed_all(EventBuilder(s, "s"), p)
    assert [e.phase for _, e in out] == ["onset", "final"]
    assert out[1][1].n_windows == 10
    out = feed_all(EventBuilder(s, "s", release=0.5), p)  # no hysteresis: two events
    assert [e.phase for _, e in out] == ["onset", "final", "onset", "final"]


def test_hysteresis_never_starts_a_run() -> None:
    p = probs_of([NOTHING] * 10)
    p[2:8] = (0.45, 0.05, 0.5)  # weak blink evidence, never over the threshold
    b = EventBuilder(settings(min_windows=2), "s")
    assert feed_all(b, p) == []
    assert b.n_dropped == 0


def test_hysteresis_is_carried_across_calls() -> None:
    p = probs_of([NOTHING] + [JAW] * 3 + [NOTHING] * 3 + [NOTHING])
    p[4:7] = (0.0, 0.35, 0.65)
    for chunk in (1, 2, 4, 8):
        out = feed_all(EventBuilder(settings(min_windows=2), "s"), p, chunks=chunk)
        assert [(i, e.phase, e.n_windows) for i, e in out] == [(2, "onset", 2), (7, "final", 6)]


# --- Detector with a deterministic engine --------------------------------------------------


class PowerEngine:
    """A transparent classifier for tests: log power at AF3/AF4 low bins -> blink,
    at T7/T8 high bins -> jaw clench. Row by row, so batching cannot change a window's result."""

    name = "power"
    max_batch = 1_000_000

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.seen: list[npt.NDArray[np.float32]] = []
        idx = {e: i for i, e in enumerate(MODEL_ELECTRODES)}
        self.front = [idx["AF3"], idx["AF4"]]
        self.temporal = [idx["T7"], idx["T8"]]

    def infer(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls.append(int(features.shape[0]))
        self.seen.append(features.copy())
        # one row at a time: a batched float reduction could round differently per batch size
        f = features.astype(np.float64)
        low = np.array([r[self.front, 1:4].mean(axis=1).max() for r in f])  # 2-6 Hz
        high = np.array([r[self.temporal, 10:26].mean() for r in f])  # 20-50 Hz
        logits = np.stack([4.0 * (low - 1.8), 4.0 * (high - 0.6), np.zeros_like(low)], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)

    def warmup(self) -> None:
        pass

    def close(self) -> None:
        pass


def identity_features() -> FeaturePipeline:
    """Features = log10 power (a scaler with mean 0, std 1)."""
    shape = (len(MODEL_ELECTRODES), N_BINS)
    return FeaturePipeline(Scaler(np.zeros(shape), np.ones(shape)))


def synthetic(
    seconds: float, seed: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[tuple[str, float]]]:
    """14 channels of noise on a 4,200 uV offset with blink bumps and jaw EMG bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    x = 4200.0 + 5.0 * rng.standard_normal((n, len(ELECTRODES)))
    truth: list[tuple[str, float]] = []
    ch = {e: i for i, e in enumerate(ELECTRODES)}
    t = 4.0
    k = 0
    while t < seconds - 3:
        s = int(t * FS)
        if k % 2 == 0:
            L = int(0.3 * FS)
            bump = 150.0 * np.sin(np.pi * np.arange(L) / L) ** 2
            for e, g in (("AF3", 1.0), ("AF4", 1.0), ("F7", 0.5), ("F8", 0.5)):
                x[s : s + L, ch[e]] += g * bump
            truth.append(("blink", t))
        else:
            L = int(1.0 * FS)
            for e in ("T7", "T8"):
                x[s : s + L, ch[e]] += 60.0 * rng.standard_normal(L)
            truth.append(("jaw_clench", t))
        k += 1
        t += 2.0
    return x, 1_700_000_000.0 + np.arange(n) / FS, truth


def make_detector(**kw: object) -> tuple[Detector, PowerEngine]:
    engine = PowerEngine()
    det = Detector(engine, identity_features(), settings(**kw), "test", clock=None)
    return det, engine


def run_chunks(
    det: Detector, x: npt.NDArray[np.float64], t: npt.NDArray[np.float64], chunk: int
) -> list[Message]:
    out: list[Message] = []
    for a in range(0, x.shape[0], chunk):
        out += det.process(x[a : a + chunk], t[a : a + chunk], 0.0)
    return out + det.flush()


def finals(msgs: list[Message]) -> list[ArtifactEvent]:
    return [m for m in msgs if isinstance(m, ArtifactEvent) and m.phase == "final"]


def statuses(msgs: list[Message], status: str) -> list[StatusMessage]:
    return [m for m in msgs if isinstance(m, StatusMessage) and m.status == status]


def test_power_engine_detects_the_synthetic_artifacts() -> None:
    x, t, truth = synthetic(40)
    det, engine = make_detector()
    ev = finals(run_chunks(det, x, t, 128))
    assert [e.label for e in ev] == [lab for lab, _ in truth]
    for e, (_, onset) in zip(ev, truth, strict=True):
        assert abs(e.onset_lsl - (t[0] + onset)) < 0.25  # a crude classifier, not the model
    assert det.stats["windows"] == (x.shape[0] - WINDOW) // HOP + 1
    assert det.stats["classified"] == det.stats["windows"]


@pytest.mark.parametrize("chunk", [1, 7, 64, 10**9])
def test_chunk_size_does_not_change_events(chunk: int) -> None:
    x, t, _ = synthetic(30, seed=1)
    ref = run_chunks(make_detector()[0], x, t, 128)
    det, engine = make_detector()
    got = run_chunks(det, x, t, chunk)
    assert len(finals(ref)) >= 10
    assert got == ref
    if chunk >= x.shape[0]:  # the whole recording at once: batched, not one call per window
        assert max(engine.calls) > 100


def test_all_due_windows_go_to_one_engine_call() -> None:
    x, t, _ = synthetic(10)
    det, engine = make_detector()
    det.process(x[:1000], t[:1000])
    assert engine.calls == [(1000 - WINDOW) // HOP + 1]
    det.process(x[1000:1004], t[1000:1004])  # no new window complete: no call
    assert len(engine.calls) == 1
    det.process(x[1004:1010], t[1004:1010])
    assert engine.calls[-1] == 1


def test_nan_windows_are_skipped_and_counted() -> None:
    x, t, truth = synthetic(30, seed=2)
    x[1000:1005, ELECTRODES.index("F3")] = np.nan  # one model electrode, 5 samples
    x[2000:2010, ELECTRODES.index("O1")] = np.nan  # not a model electrode: ignored
    det, engine = make_detector()
    msgs = run_chunks(det, x, t, 32)
    # windows [e-64, e) touching samples 1000..1004: ends 1008..1064 -> 8 windows
    assert det.stats["nan_windows"] == 8
    assert det.stats["classified"] == det.stats["windows"] - 8
    assert sum(engine.calls) == det.stats["classified"]
    assert len(finals(msgs)) == len(truth)


def test_spikes_are_signal_faults_not_artifacts() -> None:
    x, t, truth = synthetic(40, seed=3)
    spikes = [int(s * FS) for s in (5.2, 13.1, 21.3, 29.4)]  # away from every artifact
    for i, s in enumerate(spikes):
        x[s, ELECTRODES.index("AF3" if i % 2 else "T8")] += 700_000.0
    det, _ = make_detector()
    msgs = run_chunks(det, x, t, 16)
    faults = statuses(msgs, "signal_fault")
    assert len(faults) == 4
    for f, s, i in zip(faults, spikes, range(4), strict=True):
        assert f.start_lsl == pytest.approx(t[s])
        assert f.end_lsl == pytest.approx(t[s])
        assert f.electrodes == ["AF3" if i % 2 else "T8"]
        assert f.detail["windows"] == WINDOW // HOP
    ev = finals(msgs)
    for s in spikes:
        assert not [e for e in ev if e.onset_lsl - 0.5 < t[s] < e.offset_lsl + 0.5]
    assert [e.label for e in ev] == [lab for lab, _ in truth]
    assert det.stats["fault_windows"] == 4 * WINDOW // HOP
    assert det.stats["fault_spans"] == 4


def test_fault_closes_an_open_event_and_spans_merge() -> None:
    x, t, truth = synthetic(20, seed=4)
    jaw = next(on for lab, on in truth if lab == "jaw_clench")
    s = int((jaw + 0.5) * FS)
    x[s : s + 30, ELECTRODES.index("T7")] = 0.0  # at the rail for 30 samples, mid-clench
    det, _ = make_detector()
    msgs = run_chunks(det, x, t, 5)
    faults = statuses(msgs, "signal_fault")
    assert len(faults) == 1
    assert faults[0].start_lsl == pytest.approx(t[s])
    assert faults[0].end_lsl == pytest.approx(t[s + 29])
    clench = [
        e for e in finals(msgs) if e.label == "jaw_clench" and abs(e.onset_lsl - t[0] - jaw) < 0.2
    ]
    assert len(clench) == 1
    assert clench[0].offset_lsl <= t[s]  # closed by the fault, not carried across it
    # the fault message comes after the event it closed
    i_fault = msgs.index(faults[0])
    i_final = msgs.index(clench[0])
    assert i_final < i_fault


def test_flat_electrode_is_reported_once_and_zeroed() -> None:
    x, t, truth = synthetic(40, seed=5)
    af4 = ELECTRODES.index("AF4")
    # flat but not constant: below the scaler's dead-power rule, so the detector's own check counts
    x[:, af4] = 4321.0 + 0.05 * np.random.default_rng(0).standard_normal(x.shape[0])
    det, engine = make_detector()
    msgs = run_chunks(det, x, t, 64)
    feats = np.concatenate(engine.seen)
    assert np.all(feats[:, MODEL_ELECTRODES.index("AF4")] == 0.0)  # the training mean
    assert np.all(feats[:, MODEL_ELECTRODES.index("AF3")] != 0.0)
    dead = statuses(msgs, "dead_electrode")
    assert len(dead) == 1
    assert dead[0].electrodes == ["AF4"]
    assert dead[0].detail["new"] == ["AF4"]
    assert dead[0].start_lsl == pytest.approx(t[0])  # flat from the first sample, found at 2 s
    assert det.stats["dead_electrodes"] == 1
    assert [e.label for e in finals(msgs)] == [lab for lab, _ in truth]


def test_dead_electrode_at_the_rail_stops_being_a_fault() -> None:
    x, t, truth = synthetic(30, seed=6)
    x[int(10 * FS) :, ELECTRODES.index("F3")] = 0.0  # stuck at the rail from 10 s on
    det, _ = make_detector()
    msgs = run_chunks(det, x, t, 64)
    faults = statuses(msgs, "signal_fault")
    dead = statuses(msgs, "dead_electrode")
    assert len(faults) == 1
    assert faults[0].electrodes == ["F3"]
    assert faults[0].end_lsl <= t[0] + 12.1  # until it counts as dead (2 s)
    assert len(dead) == 1
    assert dead[0].electrodes == ["F3"]
    late = [e for e in finals(msgs) if e.onset_lsl > t[0] + 13]
    assert [e.label for e in late] == [lab for lab, on in truth if on > 13]


def test_dead_electrode_recovery_is_reported() -> None:
    x, t, _ = synthetic(20, seed=7)
    x[int(3 * FS) : int(8 * FS), ELECTRODES.index("FC5")] = 4200.0
    det, _ = make_detector()
    dead = statuses(run_chunks(det, x, t, 100), "dead_electrode")
    assert [(d.electrodes, d.detail["new"], d.detail["recovered"]) for d in dead] == [
        (["FC5"], ["FC5"], []),
        ([], [], ["FC5"]),
    ]


def test_gap_in_timestamps_splits_windows_and_closes_events() -> None:
    x, t, truth = synthetic(30, seed=8)
    jaw = next(on for lab, on in truth if lab == "jaw_clench")
    cut = int((jaw + 0.5) * FS)
    t = t.copy()
    t[cut:] += 5.0  # 5 s of samples missing mid-clench
    det, engine = make_detector()
    msgs = run_chunks(det, x, t, 40)
    ev = finals(msgs)
    assert not [e for e in ev if e.onset_lsl < t[cut - 1] < e.offset_lsl - 1e-9]
    assert not [e for e in ev if t[cut - 1] < e.onset_lsl < t[cut]]  # nothing inside the gap
    assert det.stats["gaps"] == 1
    # windows: (cut - 64)//8 + 1 before, (n - cut - 64)//8 + 1 after: none spans the gap
    n = x.shape[0]
    assert det.stats["windows"] == (cut - WINDOW) // HOP + 1 + (n - cut - WINDOW) // HOP + 1


def test_mark_gap_closes_immediately() -> None:
    x, t, truth = synthetic(20, seed=9)
    jaw = next(on for lab, on in truth if lab == "jaw_clench")
    cut = int((jaw + 0.5) * FS)
    det, _ = make_detector()
    before = det.process(x[:cut], t[:cut])
    assert [m.phase for m in before if isinstance(m, ArtifactEvent)][-1] == "onset"
    closed = det.mark_gap(t[cut - 1], t[cut - 1] + 5.0)
    assert [m.phase for m in closed if isinstance(m, ArtifactEvent)] == ["final"]
    after = det.process(x[cut:], t[cut:] + 5.0)
    assert det.stats["gaps"] == 1  # the jump in the timestamps is the same gap, not a second one
    assert all(m.onset_lsl > t[cut - 1] + 5.0 for m in finals(after))
    # a report after the fact changes nothing
    assert det.mark_gap(t[cut - 1], t[cut - 1] + 5.0) == []


def test_bad_input_shape_is_a_clear_error() -> None:
    det, _ = make_detector()
    with pytest.raises(EegstreamError, match=r"data must be \(n, 14\).*got data \(10, 13\)"):
        det.process(np.zeros((10, 13)), np.zeros(10))
    with pytest.raises(EegstreamError, match=r"timestamps \(9,\)"):
        det.process(np.zeros((10, 14)), np.zeros(9))


def test_apply_checks_the_probabilities_it_gets() -> None:
    x, t, _ = synthetic(5)
    det, _ = make_detector()
    det.ingest(x[:200], t[:200])
    batch = det.due_windows()
    with pytest.raises(EegstreamError, match=r"expected probabilities \(18, 3\).*got \(3, 3\)"):
        det.apply(batch, np.zeros((3, 3), np.float32))


def test_scheduler_path_equals_process() -> None:
    """ingest/due_windows/featurize/apply with two streams sharing one engine call."""
    xa, t, _ = synthetic(20, seed=10)
    xb, _, _ = synthetic(20, seed=11)
    ref_a = run_chunks(make_detector()[0], xa, t, 256)
    ref_b = run_chunks(make_detector()[0], xb, t, 256)
    engine = PowerEngine()
    da = Detector(engine, identity_features(), settings(), "test", clock=None)
    db = Detector(engine, identity_features(), settings(), "test", clock=None)
    got_a: list[Message] = []
    got_b: list[Message] = []
    for a in range(0, xa.shape[0], 256):
        da.ingest(xa[a : a + 256], t[a : a + 256])
        db.ingest(xb[a : a + 256], t[a : a + 256])
        ba, bb = da.due_windows(), db.due_windows()
        probs = engine.infer(np.concatenate([da.featurize(ba), db.featurize(bb)]))
        got_a += da.apply(ba, probs[: ba.m])
        got_b += db.apply(bb, probs[ba.m :])
    assert got_a + da.flush() == ref_a
    assert got_b + db.flush() == ref_b


def test_live_detector_stamps_messages_with_the_lsl_clock() -> None:
    import pylsl

    x, t, _ = synthetic(12, seed=12)
    det = Detector(PowerEngine(), identity_features(), settings(), "live")  # default: wall clocks
    before = pylsl.local_clock()
    msgs = run_chunks(det, x, t, 32)
    after = pylsl.local_clock()
    events = [m for m in msgs if isinstance(m, ArtifactEvent)]
    assert events
    assert all(before <= e.detected_lsl <= after for e in events)
    assert all(abs(e.detected_unix - time.time()) < 60 for e in events)
    # onsets stay in the stream's clock
    assert all(t[0] <= e.onset_lsl <= t[-1] for e in events)


def test_reset_forgets_the_stream() -> None:
    x, t, _ = synthetic(20, seed=13)
    det, _ = make_detector()
    first = run_chunks(det, x, t, 256)
    det.reset()
    assert det.stats["windows"] == 0
    again = run_chunks(det, x, t, 256)
    strip = [(e.label, e.onset_lsl, e.offset_lsl) for e in finals(first)]
    assert [(e.label, e.onset_lsl, e.offset_lsl) for e in finals(again)] == strip


@pytest.mark.parametrize("chunk", [3, 50, 10**9])
def test_faults_and_dead_electrodes_do_not_depend_on_chunking(chunk: int) -> None:
    x, t, _ = synthetic(40, seed=14)
    x[int(6 * FS), ELECTRODES.index("F4")] += 5_000.0  # a spike
    x[int(12 * FS) : int(20 * FS), ELECTRODES.index("F3")] = 0.0  # stuck at the rail, then back
    x[int(25 * FS) : int(25 * FS) + 3, ELECTRODES.index("FC6")] = np.nan
    noise = 0.6 * np.random.default_rng(1).standard_normal(int(8 * FS))  # between FLAT and ALIVE
    x[int(30 * FS) : int(38 * FS), ELECTRODES.index("T8")] = 4200.0 + noise
    ref = run_chunks(make_detector()[0], x, t, 128)
    # the spike; F3 at the rail until it counts as dead; the windows that hold its step back
    assert [f.electrodes for f in statuses(ref, "signal_fault")] == [["F4"], ["F3"], ["F3"]]
    assert len(statuses(ref, "dead_electrode")) == 2  # F3 dead, F3 back; T8 never flat enough
    got = run_chunks(make_detector()[0], x, t, chunk)

    def strip(msgs: list[Message]) -> list[Message]:
        # peak_uv is measured from the running baseline, which depends on what was ingested
        return [
            m.model_copy(update={"detail": {**m.detail, "peak_uv": None}})
            if isinstance(m, StatusMessage)
            else m
            for m in msgs
        ]

    assert strip(got) == strip(ref)


_LEVELS = [0.05, 0.25, 0.3, 0.35, 0.55, 0.6, 0.65, 0.9]  # around the release and the thresholds


@hyp_settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([BLINK, JAW, 2]),  # 2: "nothing" is the largest
            st.sampled_from(_LEVELS),
            st.sampled_from([0.0, 0.5, 1.0]),  # share of the rest that goes to the other label
            st.integers(0, 19),  # 0: an unclassified (NaN) window
        ),
        min_size=1,
        max_size=150,
    ),
    jaw_threshold=st.sampled_from([None, 0.8, 0.4]),
)
def test_one_window_at_a_time_gives_the_events_of_the_whole_batch(
    rows: list[tuple[int, float, float, int]], jaw_threshold: float | None
) -> None:
    """The builder's plain-Python path for one window (live) equals its numpy path (offline)."""
    p = np.zeros((len(rows), 3))
    for i, (lab, q, share, nan) in enumerate(rows):
        if nan == 0:
            p[i] = np.nan
            continue
        other = {BLINK: JAW, JAW: BLINK, 2: BLINK}[lab]
        p[i, lab] = q
        p[i, other] = (1 - q) * share
        p[i, 2 if lab != 2 else JAW] += (1 - q) * (1 - share)
    own = {} if jaw_threshold is None else {"class_thresholds": {"jaw_clench": jaw_threshold}}

    def events(chunks: int | None) -> list[tuple[int, dict[str, object]]]:
        b = EventBuilder(settings(min_windows=2, **own), "s")
        out = feed_all(b, p, chunks=chunks)
        closing = b.close(0.0)
        return [(i, e.model_dump()) for i, e in out] + [(-1, e.model_dump()) for e in closing]

    whole = events(None)
    assert events(1) == whole
    assert events(3) == whole
