"""Window planning and labelling, augmentation and splits, on hand-made and simulated recordings."""

from __future__ import annotations

import numpy as np
import pytest

from eegstream.dataset import (
    Augmentation,
    WindowConfig,
    class_weights,
    drop_electrodes,
    plan_windows,
    split_groups,
    split_units,
    window_psd,
)
from eegstream.errors import EegstreamError
from eegstream.io.recording import Marker, Recording
from eegstream.preprocess import FeaturePipeline, Scaler
from eegstream.settings import CLASSES, ELECTRODES, FS, MODEL_ELECTRODES, N_BINS, PRE, WINDOW
from eegstream.simulate import simulate_recording

BLINK, JAW, NOTHING = range(3)


def _recording(seconds: float, markers: list[tuple[int, str, float]], seed: int = 0) -> Recording:
    """Noise with markers at the given (sample, label, duration s); the signal itself is irrelevant."""
    n = int(seconds * FS)
    rng = np.random.default_rng(seed)
    data = rng.normal(4200.0, 10.0, (n, len(ELECTRODES)))
    ts = 1000.0 + np.arange(n) / FS
    value = {"blink": 22, "jaw_clench": 23}
    ms = [Marker(s, float(ts[s]), value.get(lab, 1), lab, d) for s, lab, d in markers]
    return Recording(data=data, timestamps=ts, fs=float(FS), markers=ms, source=f"hand{seed}")


def test_labels_follow_the_onset_and_duration_rules() -> None:
    cfg = WindowConfig(copies=200)
    blink_at, jaw_at = 1000, 2000
    jaw_len = int(1.5 * FS)
    rec = _recording(30.0, [(blink_at, "blink", 0.3), (jaw_at, "jaw_clench", 1.5)])
    plan = plan_windows([rec], seed=1, config=cfg)
    slot = plan.start + PRE

    d_blink = slot[plan.y == BLINK] - blink_at
    assert d_blink.min() == -cfg.onset_early
    assert d_blink.max() == cfg.onset_late
    assert len(np.unique(d_blink)) > 15  # really jittered, not one position

    d_jaw = slot[plan.y == JAW] - jaw_at
    assert d_jaw.min() >= -cfg.onset_early
    assert d_jaw.max() <= jaw_len - cfg.tail
    assert d_jaw.max() > jaw_len // 2  # windows deep inside a long clench are still the clench
    assert np.mean(d_jaw <= cfg.onset_late) >= 0.45  # half stay near the onset

    # "nothing" windows hold at most the first lead_in samples of an artifact, nothing after
    s = plan.start[plan.y == NOTHING]
    for onset, length in ((blink_at, int(0.3 * FS)), (jaw_at, jaw_len)):
        lo, hi = onset + cfg.lead_in, onset + length + cfg.margin
        assert not np.any((s < hi) & (s + WINDOW > lo))
        # ... and some end right around the onset, so the model learns where it starts
        d = s + PRE - onset
        assert (
            np.sum((d >= cfg.lead_in - WINDOW + PRE - 16) & (d <= cfg.lead_in - WINDOW + PRE)) >= 2
        )
    # nothing_ratio nothing windows per artifact window
    assert abs(np.sum(plan.y == NOTHING) - cfg.nothing_ratio * np.sum(plan.y != NOTHING)) <= 1


def test_midpoint_between_markers_is_a_nothing_window() -> None:
    rec = _recording(30.0, [(1000, "blink", 0.3), (3000, "blink", 0.3)])
    plan = plan_windows([rec], seed=0, config=WindowConfig(copies=1, nothing_ratio=3.0))
    assert 2000 - PRE in plan.start[plan.y == NOTHING].tolist()


def test_marker_without_duration_uses_onset_range_and_conservative_exclusion() -> None:
    cfg = WindowConfig(copies=100)
    rec = _recording(30.0, [(1500, "jaw_clench", 0.0)])
    plan = plan_windows([rec], seed=2, config=cfg)
    d = plan.start[plan.y == JAW] + PRE - 1500
    assert d.min() == -cfg.onset_early
    assert d.max() == cfg.onset_late
    s = plan.start[plan.y == NOTHING]
    end = 1500 + int(cfg.unknown_extent_s["jaw_clench"] * FS) + cfg.margin
    assert not np.any((s < end) & (s + WINDOW > 1500 + cfg.lead_in))


def test_confounder_windows_and_non_finite_samples() -> None:
    rec = _recording(30.0, [(1000, "blink", 0.3)])
    rec.data[2500:2510, MODEL_ELECTRODES.index("F7")] = np.nan
    conf = np.array([[3000, 40]], dtype=np.int64)
    plan = plan_windows(
        [rec], seed=3, config=WindowConfig(copies=50, confounder_copies=5), confounders=[conf]
    )
    s = plan.start[plan.y == NOTHING]
    assert np.sum((s < 3040 - 8) & (s + WINDOW > 3000 + 8)) >= 5  # windows over the confounder
    assert not np.any((s < 2510) & (s + WINDOW > 2500))  # no window holds a NaN sample
    rec.data[:, ELECTRODES.index("O1")] = np.nan  # a missing non-model electrode is fine
    assert len(plan_windows([rec], seed=3)) > 0


def test_confounder_weight_column_multiplies_its_windows() -> None:
    rec = _recording(30.0, [(1000, "blink", 0.3)])
    spans = np.array([[2000, 30, 1], [3000, 30, 3]], dtype=np.int64)
    plan = plan_windows(
        [rec], seed=4, config=WindowConfig(copies=200, confounder_copies=10), confounders=[spans]
    )
    s = plan.start[plan.y == NOTHING]
    over = [int(np.sum((s < a + 30 - 8) & (s + WINDOW > a + 8))) for a in (2000, 3000)]
    assert over[0] >= 10
    assert over[1] >= 30
    assert over[1] >= 2 * over[0]


def test_planning_errors() -> None:
    with pytest.raises(EegstreamError, match=r"no blink or jaw_clench markers in hand0"):
        plan_windows([_recording(10.0, [(200, "marker_5", 0.0)])])
    rec = _recording(10.0, [(200, "blink", 0.2)])
    rec.fs = 256.0
    with pytest.raises(EegstreamError, match=r"must be at 128 Hz .* hand0 are not"):
        plan_windows([rec])
    with pytest.raises(EegstreamError, match=r"no recordings given"):
        plan_windows([])


def test_window_psd_is_the_feature_pipeline_on_gathered_windows() -> None:
    recs = [simulate_recording(45.0, seed=s) for s in (11, 12)]
    plan = plan_windows(recs, seed=0)
    psd = window_psd(recs, plan)
    assert psd.shape == (len(plan), len(MODEL_ELECTRODES), N_BINS)
    pipe = FeaturePipeline(Scaler(np.zeros((10, N_BINS)), np.ones((10, N_BINS))))
    pick = np.flatnonzero(plan.rec == 1)[:20]
    raw = np.stack([recs[1].data[s : s + WINDOW].T for s in plan.start[pick]])
    np.testing.assert_array_equal(psd[pick], pipe.psd(raw))


def test_augmentation_changes_windows_reproducibly() -> None:
    rec = simulate_recording(45.0, seed=13)
    plan = plan_windows([rec], seed=0)
    plain = window_psd([rec], plan)
    wide = Augmentation(amplitude=(0.5, 2.0))
    aug1 = window_psd([rec], plan, augment=wide, seed=5)
    aug2 = window_psd([rec], plan, augment=wide, seed=5)
    np.testing.assert_array_equal(aug1, aug2)
    ratio = np.log10(aug1.sum(axis=(1, 2)) / plain.sum(axis=(1, 2)))
    assert ratio.min() < -0.3
    assert ratio.max() > 0.3


def test_rolloff_attenuates_only_above_the_corner() -> None:
    rec = simulate_recording(45.0, seed=14)
    plan = plan_windows([rec], seed=0)
    only = Augmentation(amplitude=(1.0, 1.0), channel_gain=(1.0, 1.0), noise_uv=0.0)
    db = 10 * np.log10(window_psd([rec], plan, augment=only, seed=1) / window_psd([rec], plan))
    assert np.abs(db[..., :23]).max() < 1e-4  # below 46 Hz: untouched
    top = db[:, 0, -1]
    assert top.max() <= 1e-4
    assert top.min() >= -only.rolloff_db - 1e-3
    assert top.min() < -0.8 * only.rolloff_db  # really reaches the full depth sometimes


def test_drop_electrodes_zeroes_one_electrode_in_a_fraction() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 10, N_BINS)).astype(np.float32)
    out = drop_electrodes(x, rng, p=0.2)
    zeroed = np.all(out == 0.0, axis=2)
    assert zeroed.sum(axis=1).max() == 1
    assert 0.17 < zeroed.any(axis=1).mean() < 0.23
    kept = ~zeroed
    np.testing.assert_array_equal(out[kept], x[kept])


def test_splits_keep_units_together_and_cover_everything() -> None:
    rng = np.random.default_rng(0)
    units = rng.integers(0, 50, 3000)
    masks = split_units(units, (0.8, 0.1, 0.1), rng)
    total = np.sum(masks, axis=0)
    assert np.all(total == 1)
    for m in masks:
        assert m.any()
        assert not set(units[m]) & set(units[~m])
    held = split_groups(10, 0.15, rng)
    assert len(held) == 2
    assert len(set(held.tolist())) == 2
    assert len(split_groups(1, 0.5, rng)) == 0
    assert len(split_groups(2, 0.9, rng)) == 1  # never all of them


def test_class_weights_balance_and_missing_class() -> None:
    y = np.array([0] * 10 + [1] * 30 + [2] * 60)
    w = class_weights(y)
    assert w[0] * 10 == pytest.approx(w[1] * 30) == pytest.approx(w[2] * 60)
    with pytest.raises(EegstreamError, match=r"no jaw_clench examples"):
        class_weights(np.array([0, 2, 2]))
    assert CLASSES[NOTHING] == "nothing"
