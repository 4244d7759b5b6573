"""The per-person feature baseline: adaptation, warm-up, freezing, and chunking independence."""

from __future__ import annotations

import numpy as np
import pytest

from eegstream.baseline import (
    BLOCK,
    CLIP,
    WARMUP_S,
    BaselinePrior,
    PersonBaseline,
    robust_location,
)
from eegstream.detector import Detector, blink_shaped
from eegstream.engines.base import Engine
from eegstream.events import ArtifactEvent
from eegstream.preprocess import FeaturePipeline, Scaler
from eegstream.settings import ELECTRODES, FS, MODEL_ELECTRODES, N_BINS, Settings

SHAPE = (len(MODEL_ELECTRODES), N_BINS)
HOP = 8
PER_S = FS // HOP  # windows per second


def _prior(level: float = 0.0) -> BaselinePrior:
    return BaselinePrior(np.full(SHAPE, level, np.float32), np.full(SHAPE, 0.4, np.float32))


def _feed(pb: PersonBaseline, x: np.ndarray, resting: np.ndarray, first_end: int = 64) -> None:
    """Windows every hop from ``first_end``: build refs, then observe, as the detector does."""
    ends = first_end + HOP * np.arange(x.shape[0], dtype=np.int64)
    i = 0
    while i < len(ends):
        j = i
        cap = pb.max_end(int(ends[i]))
        while j < len(ends) and ends[j] <= cap:
            j += 1
        pb.refs(ends[i:j])
        pb.observe(ends[i:j], x[i:j], resting[i:j])
        i = j


def test_location_moves_to_a_person_a_decade_above_the_prior() -> None:
    rng = np.random.default_rng(0)
    pb = PersonBaseline(_prior(0.0), HOP)
    n = int(2 * WARMUP_S * PER_S)
    x = (1.0 + 0.4 * rng.standard_normal((n, *SHAPE))).astype(np.float32)
    # the model judges nothing as resting (the wrong prior makes everything look like EMG):
    # the warm-up must learn anyway
    _feed(pb, x, np.zeros(n, bool))
    pb.commit_before(10**9)
    assert pb.warm
    assert np.abs(pb.loc - 1.0).max() < 0.15
    status = pb.status()
    assert status["warm"] is True
    assert all(9.0 < v < 11.0 for v in status["shift_db"].values())


def test_after_the_warm_up_only_resting_windows_move_it() -> None:
    rng = np.random.default_rng(1)
    pb = PersonBaseline(_prior(0.0), HOP)
    n = int((WARMUP_S + 2) * PER_S)
    _feed(pb, (0.4 * rng.standard_normal((n, *SHAPE))).astype(np.float32), np.ones(n, bool))
    pb.commit_before(10**9)
    assert pb.warm
    before = pb.loc.copy()
    # 10 s of artifact windows (+3 decades) judged not resting: frozen
    art = np.full((10 * PER_S, *SHAPE), 3.0, np.float32)
    _feed(pb, art, np.zeros(len(art), bool), first_end=64 + HOP * n)
    pb.commit_before(10**9)
    np.testing.assert_array_equal(pb.loc, before)
    # the same windows judged resting move it, but by clipped (Huber) steps: 10 s of +3
    # decades shift it by well under a quarter of that
    _feed(pb, art, np.ones(len(art), bool), first_end=64 + HOP * (n + len(art)))
    pb.commit_before(10**9)
    step = pb.loc - before
    assert np.all(step > 0)
    assert np.all(step < 0.25 * 3.0)
    n_seen = float(pb.n.max())
    assert np.all(step <= len(art) * CLIP * pb.spread.max() / (n_seen - len(art)))


def test_robust_location_ignores_a_minority_of_outliers_and_dead_channels() -> None:
    rng = np.random.default_rng(2)
    x = (2.0 + 0.3 * rng.standard_normal((400, *SHAPE))).astype(np.float32)
    x[:20] += 4.0  # 5 % blinks
    x[:, 3] = np.nan  # a dead electrode throughout
    loc, spread = robust_location(x)
    assert np.abs(np.delete(loc, 3, axis=0) - 2.0).max() < 0.1
    assert np.all(np.isfinite(loc))
    assert np.all(spread > 0)


def test_windows_of_one_block_share_the_state_two_blocks_back() -> None:
    pb = PersonBaseline(_prior(0.0), HOP)
    # block 0 resting at level 1 during warm-up
    ends = np.arange(64, BLOCK, HOP, dtype=np.int64)
    pb.refs(ends)
    pb.observe(ends, np.ones((len(ends), *SHAPE), np.float32), np.ones(len(ends), bool))
    # block 1: still the prior (state after block -1); block 2: after block 0
    r1 = pb.refs(np.arange(BLOCK, 2 * BLOCK, HOP, dtype=np.int64))
    np.testing.assert_array_equal(r1, 0.0)
    ends1 = np.arange(BLOCK, 2 * BLOCK, HOP)
    pb.observe(ends1, np.ones((16, *SHAPE), np.float32), np.ones(16, bool))
    r2 = pb.refs(np.arange(2 * BLOCK, 3 * BLOCK, HOP, dtype=np.int64))
    # block 0's 8 windows at level 1 against the prior's weight (PRIOR_S = 1 s = 16 windows)
    np.testing.assert_allclose(r2, 8 / (8 + pb.prior_n), rtol=1e-6)
    assert pb.max_end(2 * BLOCK) == 4 * BLOCK - 1


def test_offline_events_do_not_depend_on_chunking_with_a_person_baseline(engine: Engine) -> None:
    """The person baseline changes per block with a lag: any chunking gives the same events."""
    from eegstream.bundle import ModelBundle
    from eegstream.settings import Settings as S
    from eegstream.simulate import simulate_recording

    bundle = ModelBundle.load(S().model_dir)  # type: ignore[call-arg]
    if bundle.features.prior is None:
        pytest.skip("the default bundle has no person-baseline prior")
    rec = simulate_recording(60.0, 31)
    settings = Settings()  # type: ignore[call-arg]

    def run(step: int) -> list[tuple[str, float, float]]:
        det = Detector(engine, bundle.features, settings, "x", clock=None)
        out = []
        for a in range(0, rec.n_samples, step):
            out += det.process(rec.data[a : a + step], rec.timestamps[a : a + step])
        out += det.flush()
        return [
            (m.label, m.onset_lsl, m.confidence)
            for m in out
            if isinstance(m, ArtifactEvent) and m.phase == "final"
        ]

    whole, small, odd = run(rec.n_samples), run(8), run(333)
    assert whole  # a minute of simulated EEG has artifacts
    assert small == whole
    assert odd == whole


def test_blink_shaped_rule() -> None:
    names = tuple(MODEL_ELECTRODES)
    i = {e: names.index(e) for e in names}

    def window(**peaks: float) -> tuple[np.ndarray, np.ndarray]:
        p = np.zeros((1, len(names)))
        for e, v in peaks.items():
            p[0, i[e]] = v
        return p, np.abs(p) > 1000

    # a forced blink: F7/F8 saturated thousands of uV, AF3/AF4 hundreds, same sign
    assert blink_shaped(*window(F7=3000, F8=4600, AF3=600, AF4=300, FC5=700), names)[0]
    # AF4 flat (bad contact) does not matter: F8 carries the right side
    assert blink_shaped(*window(F7=2800, F8=4100, AF3=500), names)[0]
    # a headset shift on the left (F7/FC5/T7), the right side barely moves
    assert not blink_shaped(*window(F7=3000, FC5=2500, T7=1500, F8=200), names)[0]
    # temporal electrodes over the limit are never a blink
    assert not blink_shaped(*window(F7=3000, F8=3000, T7=1200), names)[0]
    # opposite polarity on the two sides (a horizontal eye movement / lateral shift)
    assert not blink_shaped(*window(F7=3000, F8=-3000), names)[0]
    # larger on FC5 than on any frontal electrode (an eyebrow raise's pattern)
    assert not blink_shaped(*window(AF3=1200, AF4=1000, FC5=1700), names)[0]
    # a model without frontal electrodes never exempts anything
    assert not blink_shaped(np.ones((1, 2)) * 3000, np.ones((1, 2), bool), ("T7", "T8"))[0]


def test_detector_classifies_a_saturated_blink_and_faults_a_lateral_shift(engine: Engine) -> None:
    """Raw signals through the detector's checks (no model judgement involved)."""
    shape = SHAPE
    features = FeaturePipeline(Scaler(np.zeros(shape), np.ones(shape)))
    det = Detector(engine, features, Settings(), "x", clock=None)  # type: ignore[call-arg]
    rng = np.random.default_rng(3)
    n = 40 * FS
    x = 4200.0 + 8.0 * rng.standard_normal((n, len(ELECTRODES)))
    ch = {e: k for k, e in enumerate(ELECTRODES)}
    t = np.arange(n) / FS
    bump = np.clip(np.sin(np.pi * (t - 32.0) / 0.4), 0, None) * ((t > 32.0) & (t < 32.4))
    for e, a in {"F7": 3200, "F8": 4600, "AF3": 600, "AF4": 250, "FC5": 700}.items():
        x[:, ch[e]] += a * bump
    x[:, ch["F8"]] = np.minimum(x[:, ch["F8"]], 4200.0 + 4000.0)  # the ADC rail: flat top
    step = (t > 36.0) & (t < 36.8)
    for e, a in {"F7": 3000, "FC5": 2500, "T7": 1500, "F8": 150}.items():
        x[step, ch[e]] += a
    det.ingest(x, t)
    batch = det.due_windows()
    blink_w = (batch.onset_times > 31.8) & (batch.onset_times < 32.2)
    shift_w = (batch.onset_times > 35.9) & (batch.onset_times < 36.5)
    assert blink_w.any()
    assert shift_w.any()
    assert not batch.fault[blink_w].any()
    assert batch.classify[blink_w].all()
    assert batch.fault[shift_w].all()


def test_horizontal_eye_movements_are_not_blinks() -> None:
    """F7 and F8 swinging in opposite directions (a look to the side) vetoes a blink call;
    the same swing on both sides (a blink) does not; small swings are left to the model."""
    from eegstream.detector import horizontal_eye_movement, veto_blinks

    rng = np.random.default_rng(7)
    t = np.arange(64) / FS
    step = 300.0 / (1.0 + np.exp(-(t - 0.25) / 0.02))  # a saccade-like step of 300 uV
    bump = 300.0 * np.exp(-(((t - 0.25) / 0.08) ** 2))  # a blink-like bump
    w = 4200.0 + 5.0 * rng.standard_normal((4, len(ELECTRODES), 64))
    f7, f8 = ELECTRODES.index("F7"), ELECTRODES.index("F8")
    w[0, f7] += step
    w[0, f8] -= step  # look left
    w[1, f7] += bump
    w[1, f8] += bump  # blink
    w[2, f7] += step / 20.0
    w[2, f8] -= step / 20.0  # a 15 uV twitch: too small to judge
    sideways = horizontal_eye_movement(w)
    assert sideways.tolist() == [True, False, False, False]
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.0, 0.1], [0.1, 0.1, 0.8]])
    out = veto_blinks(probs, sideways)
    np.testing.assert_allclose(out[0], [0.0, 0.05, 0.95])
    np.testing.assert_array_equal(out[1:], probs[1:])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
