"""The recording simulator: determinism, schedule, physiology of each component, CLI round trip."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import butter, sosfiltfilt, welch

from eegstream.cli import main
from eegstream.errors import EegstreamError
from eegstream.io.recording import Recording
from eegstream.settings import BASELINE_S, ELECTRODES
from eegstream.simulate import (
    DEMO_DURATION_S,
    DEMO_SEED,
    RANGES,
    demo_recording_path,
    draw_subject,
    simulate_recording,
    simulate_with_truth,
)

CH = {e: i for i, e in enumerate(ELECTRODES)}
F64 = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def long_rec() -> Recording:
    """Twenty minutes of a realistic subject: enough events for averages."""
    return simulate_recording(1200, 7)


def _onsets(rec: Recording, value: int) -> npt.NDArray[np.int64]:
    return np.array([m.sample for m in rec.markers if m.value == value], dtype=np.int64)


def _epochs(rec: Recording, onsets: npt.NDArray[np.int64], pre: int, post: int) -> F64:
    """(events, pre+post, channels) around each onset, each minus its pre-onset mean."""
    idx = onsets[:, None] + np.arange(-pre, post)[None, :]
    ep = rec.data[idx]
    return np.asarray(ep - ep[:, :pre].mean(axis=1, keepdims=True), dtype=np.float64)


# --- determinism and arguments -----------------------------------------------------------------


def test_same_seed_is_bit_identical_and_other_seed_differs() -> None:
    a = simulate_recording(90, 3)
    b = simulate_recording(90, 3)
    c = simulate_recording(90, 4)
    assert a.data.tobytes() == b.data.tobytes()
    assert a.timestamps.tobytes() == b.timestamps.tobytes()
    assert a.markers == b.markers
    assert a.interpolated is not None
    assert b.interpolated is not None
    assert np.array_equal(a.interpolated, b.interpolated)
    assert a.metadata == b.metadata
    assert not np.array_equal(a.data, c.data)
    assert a.markers != c.markers


def test_subject_depends_on_seed_only_and_variability_zero_is_average() -> None:
    a, b = simulate_with_truth(40, 5)[1].subject, draw_subject(5)
    for name in a.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    s1, s2 = draw_subject(1, 0.0), draw_subject(2, 0.0)
    assert s1.background_rms_uv == s2.background_rms_uv == pytest.approx(8.5)
    assert np.allclose(s1.dc_offset_uv, 4200.0)
    wide = [draw_subject(seed).background_exponent for seed in range(20)]
    assert min(wide) >= 1.0
    assert max(wide) <= 2.0
    assert max(wide) - min(wide) > 0.5


def test_shape_timestamps_and_fs_256_native() -> None:
    rec = simulate_recording(45.5, 9, fs=256)
    assert rec.data.shape == (int(45.5 * 256), 14)
    assert rec.fs == 256.0
    assert rec.timestamps[0] == 1.7e9 + 9 * 1000
    assert np.all(np.diff(rec.timestamps) == 1 / 256)
    assert rec.metadata["source_fs"] == 256
    assert rec.metadata["headset"] in ("EPOC X", "EPOC+")
    assert rec.metadata["start_time"] == rec.timestamps[0]
    # blinks keep their duration in seconds at 256 Hz
    blinks = [m for m in rec.markers if m.value == 22]
    assert blinks
    assert all(0.2 <= m.duration <= 1.2 for m in blinks)


def test_dc_offset_and_quantisation() -> None:
    rec = simulate_recording(60, 11)
    med = np.median(rec.data, axis=0)
    assert np.all(np.abs(med - 4200) < 200), med
    assert np.ptp(med) > 20  # electrodes differ from one another
    steps = rec.data / RANGES.quantum_uv
    assert np.allclose(steps, np.rint(steps), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"duration": 0}, r"--duration must be at least 1 second; got 0"),
        ({"duration": 0.5}, r"--duration must be at least 1 second; got 0.5"),
        ({"duration": float("nan")}, r"--duration must be at least 1 second"),
        ({"seed": -1}, r"--seed must be 0 or a positive integer; got -1"),
        ({"fs": 200}, r"--fs must be one of 128, 256 Hz \(Emotiv rates\); got 200"),
        ({"blink_rate": -2}, r"--blink-rate must be >= 0 events per minute; got -2"),
        ({"clench_rate": float("inf")}, r"--clench-rate must be >= 0"),
        ({"subject_variability": 3}, r"--subject-variability must be between 0 .* and 2; got 3"),
        ({"blink_rate": 60, "clench_rate": 20}, r"do not fit: .* at most ~\d+ per minute fit"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"duration": 60, "seed": 0} | kwargs
    duration, seed = args.pop("duration"), int(args.pop("seed"))
    with pytest.raises(EegstreamError, match=match):
        simulate_recording(duration, seed, **args)  # type: ignore[arg-type]


# --- schedule ----------------------------------------------------------------------------------


def test_marker_counts_follow_the_rates(long_rec: Recording) -> None:
    minutes = (1200 - BASELINE_S) / 60
    n_blink, n_clench = len(_onsets(long_rec, 22)), len(_onsets(long_rec, 23))
    assert 12 * 0.8 < n_blink / minutes < 12 * 1.2
    assert 6 * 0.75 < n_clench / minutes < 6 * 1.25
    custom = simulate_recording(600, 7, blink_rate=25, clench_rate=0)
    minutes = (600 - BASELINE_S) / 60
    assert 25 * 0.8 < len(_onsets(custom, 22)) / minutes < 25 * 1.2
    assert len(_onsets(custom, 23)) == 0
    assert simulate_recording(300, 7, blink_rate=0, clench_rate=0).markers == []


def test_markers_after_baseline_without_overlap(long_rec: Recording) -> None:
    fs = long_rec.fs
    samples = np.array([m.sample for m in long_rec.markers])
    assert samples.min() >= BASELINE_S * fs
    assert np.all(np.diff(samples) > 0)
    ends = samples + np.array([m.duration for m in long_rec.markers]) * fs
    gaps = (samples[1:] - ends[:-1]) / fs
    assert gaps.min() >= RANGES.min_gap_s - 1.5 / fs
    assert ends.max() <= long_rec.n_samples
    for m in long_rec.markers:
        assert m.time == long_rec.timestamps[m.sample]
        assert (m.value, m.label) in ((22, "blink"), (23, "jaw_clench"))
        lo, hi = (0.2, 1.2) if m.value == 22 else RANGES.clench_duration_s
        assert lo <= m.duration <= hi
    # baseline stays quiet: no marker, no confounder, no interpolation in the first 30 s
    assert long_rec.interpolated is not None
    assert not long_rec.interpolated[: int(BASELINE_S * fs)].any()
    assert simulate_recording(25, 1).markers == []


# --- physiology --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 21, 33])
def test_blink_topography(seed: int) -> None:
    rec = long_rec_for(seed)
    ep = _epochs(rec, _onsets(rec, 22), pre=13, post=58)
    avg = ep.mean(axis=0)  # averaging cancels the background and keeps the blink
    peak = avg[np.argmax(avg[:, CH["AF3"]])]  # every electrode at the AF3 peak latency
    pair = {e: (peak[CH[e]] + peak[CH[r]]) / 2 for e, r in _PAIRS}
    assert pair["AF3"] > pair["F7"] > pair["F3"] > pair["FC5"] > pair["T7"] > pair["O1"]
    assert 50 <= pair["AF3"] <= 250
    assert pair["O1"] < 0.05 * pair["AF3"]
    assert pair["P7"] < 0.05 * pair["AF3"]
    # per event: every blink is a deflection in the documented amplitude range
    single = ep[:, :, CH["AF3"]].max(axis=1)
    assert np.median(single) > 40
    assert np.percentile(single, 95) < 320


_PAIRS = [("AF3", "AF4"), ("F7", "F8"), ("F3", "F4"), ("FC5", "FC6"), ("T7", "T8"),
          ("P7", "P8"), ("O1", "O2")]  # fmt: skip
_CACHE: dict[int, Recording] = {}


def long_rec_for(seed: int) -> Recording:
    if seed not in _CACHE:
        _CACHE[seed] = simulate_recording(600, seed)
    return _CACHE[seed]


def _band_rms(rec: Recording, lo: float, hi: float) -> F64:
    sos = butter(4, (lo, hi), btype="band", fs=rec.fs, output="sos")
    return np.asarray(sosfiltfilt(sos, rec.data, axis=0), dtype=np.float64)


@pytest.mark.parametrize("seed", [7, 21, 33])
def test_jaw_clench_emg_is_temporal_and_broadband(seed: int) -> None:
    rec = long_rec_for(seed)
    hf = _band_rms(rec, 20, 60)
    inside = np.zeros(rec.n_samples, bool)
    clenches = [m for m in rec.markers if m.value == 23]
    assert len(clenches) > 20
    for m in clenches:  # plateau of each clench (ramps excluded)
        inside[m.sample + int(0.2 * rec.fs) : m.sample + int((m.duration - 0.2) * rec.fs)] = True
    quiet = np.ones(rec.n_samples, bool)
    for m in rec.markers:
        quiet[m.sample - 64 : m.sample + int((m.duration + 0.5) * rec.fs)] = False
    quiet[: int(BASELINE_S * rec.fs)] = False
    rms_in = np.sqrt((hf[inside] ** 2).mean(axis=0))
    rms_out = np.sqrt((hf[quiet] ** 2).mean(axis=0))
    temporal = rms_in[[CH["T7"], CH["T8"]]].mean()
    for e in ("AF3", "AF4", "F3", "F4", "O1", "O2"):
        assert temporal > 1.5 * rms_in[CH[e]], e
    assert rms_in[[CH["FC5"], CH["FC6"]]].mean() > rms_in[[CH["F3"], CH["F4"]]].mean()
    assert 15 < temporal < 160
    assert temporal > 4 * rms_out[[CH["T7"], CH["T8"]]].mean()
    # the burst is broadband: above 30 Hz carries a good share of it
    f, psd = welch(rec.data[inside, CH["T7"]], fs=rec.fs, nperseg=128)
    assert psd[(f >= 30) & (f <= 45)].mean() > 0.2 * psd[(f >= 20) & (f <= 30)].mean()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_background_has_1_over_f_slope_alpha_and_mains(seed: int) -> None:
    rec, truth = simulate_with_truth(30, seed)  # the artifact-free baseline only
    f, psd = welch(rec.data - rec.data.mean(axis=0), fs=rec.fs, nperseg=4 * 128, axis=0)
    fit = (f >= 2) & (f <= 30) & ((f < 6) | (f > 15))
    for e in ("AF3", "F3", "FC5", "T8"):
        slope = np.polyfit(np.log10(f[fit]), np.log10(psd[fit, CH[e]]), 1)[0]
        assert -2.6 < slope < -0.5, (e, slope)
    for e in ("O1", "O2"):
        p = psd[:, CH[e]]
        band = (f >= 4) & (f <= 30)
        peak_f = f[band][np.argmax(p[band])]
        assert 7.5 <= peak_f <= 12.5, (e, peak_f)
        flank = p[(f >= 4) & (f <= 5)].mean() * (5 / peak_f) ** 1.5
        assert p[band].max() > 3 * flank
    # posterior alpha beats frontal alpha
    alpha = (f >= 8) & (f <= 12)
    assert psd[alpha, CH["O1"]].sum() > 1.2 * psd[alpha, CH["AF3"]].sum()
    mains = truth.subject.mains_hz
    at = np.argmin(np.abs(f - mains))
    near = (np.abs(f - mains) > 2) & (np.abs(f - mains) < 5)
    assert psd[at].mean() > 3 * psd[near].mean()


def test_confounders_are_unlabelled_and_shaped() -> None:
    rec, truth = simulate_with_truth(1200, 7)
    conf = truth.confounders
    assert set(conf) == {"saccade", "talk", "pop", "dropout", "eyebrow", "movement"}
    assert len(conf["saccade"]) > 20
    assert len(conf["talk"]) > 5
    assert len(conf["dropout"]) > 0
    onsets = np.array([m.sample for m in rec.markers])
    ends = onsets + np.array([m.duration for m in rec.markers]) * rec.fs
    for kind, spans in conf.items():
        assert spans[:, 0].min() >= BASELINE_S * rec.fs, kind
        s, e = spans[:, 0][:, None], (spans[:, 0] + spans[:, 1])[:, None]
        assert not np.any((s < ends[None, :]) & (e > onsets[None, :])), kind
    # saccades: opposite-polarity steps at F7/F8 (horizontal EOG)
    mid = conf["saccade"][:, 0] + conf["saccade"][:, 1] // 2
    pre = rec.data[conf["saccade"][:, 0] - 5]
    step = rec.data[mid] - pre
    assert np.corrcoef(step[:, CH["F7"]], step[:, CH["F8"]])[0, 1] < -0.5
    assert np.median(np.abs(step[:, CH["F7"]])) > 10
    # dropouts are flagged and linear between their neighbours
    assert rec.interpolated is not None
    flagged = np.flatnonzero(rec.interpolated)
    expected = np.concatenate([np.arange(s, s + n) for s, n in conf["dropout"]])
    assert np.array_equal(flagged, np.sort(expected))
    s, n = conf["dropout"][0]
    seg = rec.data[s - 1 : s + n + 1, 0]
    assert np.allclose(np.diff(seg, 2), 0, atol=2 * RANGES.quantum_uv)
    # talking EMG is weaker and shorter than clenching
    assert conf["talk"][:, 1].max() / rec.fs <= RANGES.clench_duration_s[0]
    bare = simulate_with_truth(1200, 7, confounders=False)
    assert bare[1].confounders == {}
    assert bare[0].interpolated is not None
    assert not bare[0].interpolated.any()
    assert bare[0].markers == rec.markers


def _quiet_rms(rec: Recording, hf: F64, spans: npt.NDArray[np.int64]) -> F64:
    """20-60 Hz rms per electrode away from every marker and every span in ``spans``."""
    quiet = np.ones(rec.n_samples, bool)
    quiet[: int(BASELINE_S * rec.fs)] = False
    for m in rec.markers:
        quiet[max(m.sample - 64, 0) : m.sample + int((m.duration + 0.5) * rec.fs)] = False
    for s, n in spans:
        quiet[max(s - 64, 0) : s + n + 64] = False
    return np.asarray(np.sqrt((hf[quiet] ** 2).mean(axis=0)), dtype=np.float64)


def test_eyebrow_raises_are_frontal_emg_with_lateral_headset_shifts() -> None:
    """Raises as measured on the real EPOC+ recording: EMG led by AF3/AF4 (a clench's by T7/T8),
    plus slow shifts far larger than a blink at lateral sensors; none of it labelled."""
    ranges = dataclasses.replace(RANGES, brow_rate_per_min=8.0, movement_rate_per_min=3.0)
    rec, truth = simulate_with_truth(600, 11, blink_rate=0, clench_rate=0, ranges=ranges)
    assert rec.markers == []
    brows, moves = truth.confounders["eyebrow"], truth.confounders["movement"]
    assert len(brows) > 30
    assert len(moves) > 10
    fs = rec.fs
    hf = _band_rms(rec, 20, 60)
    sub = truth.subject
    # the EMG burst: the first 0.25 s of each raise (every burst lasts at least that long)
    idx = (brows[:, :1] + np.arange(int(0.25 * fs))[None, :]).ravel()
    rms_in = np.sqrt((hf[idx] ** 2).mean(axis=0))
    rest = _quiet_rms(rec, hf, np.concatenate([brows, moves]))
    excess = np.sqrt(np.maximum(rms_in**2 - rest**2, 0))
    front = excess[[CH["AF3"], CH["AF4"]]].mean()
    assert front > 1.5 * excess[[CH["T7"], CH["T8"]]].mean()
    assert front > 3 * excess[[CH["F3"], CH["F4"], CH["O1"], CH["O2"]]].max()
    assert RANGES.brow_emg_uv[0] * 0.5 < front < RANGES.brow_emg_uv[1] * 1.5
    assert front > 2 * rest[[CH["AF3"], CH["AF4"]]].mean()
    # the shift: one subject's pattern, strongest off the midline-frontal blink field
    g = np.abs(sub.brow_move_gain).sum(axis=0)
    assert g.max() == pytest.approx(1.0)
    assert int(np.argmax(g)) not in (CH["AF3"], CH["AF4"], CH["F3"], CH["F4"])
    # movements without EMG: big slow deflections, 20-60 Hz unchanged
    lo = _band_rms(rec, 0.5, 4)
    peak = np.array([np.abs(lo[s : s + n]).max() for s, n in moves])
    assert np.median(peak) > RANGES.blink_amplitude_uv[0]
    assert peak.max() > 500
    m_idx = np.concatenate([np.arange(s, s + n) for s, n in moves])
    assert np.sqrt((hf[m_idx] ** 2).mean(axis=0)).max() < 2 * rest.max() + 2


def test_one_hour_simulates_in_seconds() -> None:
    t0 = time.perf_counter()
    rec = simulate_recording(3600, 5)
    elapsed = time.perf_counter() - t0
    assert rec.data.shape == (460_800, 14)
    assert elapsed < 30, elapsed  # ~2.5 s measured on 2 cores; a per-sample loop takes minutes


# --- CLI, file round trip, demo ----------------------------------------------------------------


def test_cli_simulate_round_trips_through_the_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eegstream.io.emotiv import read_recording

    out = tmp_path / "x.csv"
    assert main(["simulate", str(out), "--duration", "300", "--seed", "1"]) == 0
    rec = simulate_recording(300, 1)
    n_blink = sum(m.value == 22 for m in rec.markers)
    said = capsys.readouterr().out.strip()
    assert said.startswith(f"wrote {out}: 300 s at 128 Hz, subject SIM00001, {n_blink} blinks")
    back = read_recording(out)
    assert back.fs == 128
    assert np.array_equal(back.data, rec.data)
    assert np.array_equal(back.timestamps, rec.timestamps)
    assert [(m.sample, m.value, m.label, m.duration) for m in back.markers] == [
        (m.sample, m.value, m.label, m.duration) for m in rec.markers
    ]
    assert [m.time for m in back.markers] == [m.time for m in rec.markers]
    assert back.metadata["subject"] == rec.metadata["subject"]
    assert back.metadata["headset"] == rec.metadata["headset"]
    assert back.interpolated is not None
    assert rec.interpolated is not None
    assert np.array_equal(back.interpolated, rec.interpolated)


def test_cli_simulate_options_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eegstream.io.emotiv import read_recording

    out = tmp_path / "y.csv"
    argv = ["simulate", str(out), "--duration", "60", "--seed", "2", "--fs", "256"]
    argv += ["--blink-rate", "30", "--clench-rate", "0", "--no-confounders"]
    assert main([*argv, "--subject-variability", "0"]) == 0
    back = read_recording(out, target_fs=256)
    assert back.fs == 256
    assert back.n_samples == 60 * 256
    assert {m.value for m in back.markers} == {22}
    assert back.interpolated is not None
    assert not back.interpolated.any()
    capsys.readouterr()
    assert main(["simulate", str(tmp_path / "z.csv"), "--duration", "-5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--duration must be at least 1 second; got -5" in err[0]
    assert main(["simulate", str(tmp_path / "nope" / "z.csv"), "--duration", "5"]) == 2
    assert "output folder" in capsys.readouterr().err
    assert not (tmp_path / "z.csv").exists()


def test_bundled_demo_matches_the_simulator() -> None:
    from eegstream.io.emotiv import read_recording

    path = demo_recording_path()
    assert path.name == "demo.csv.gz"
    assert path.stat().st_size < 2_000_000
    demo = read_recording(path)
    fresh = simulate_recording(DEMO_DURATION_S, DEMO_SEED)
    # one LSB of slack: FFT rounding may differ across numpy builds, flipping a rare rint
    assert np.allclose(demo.data, fresh.data, rtol=0, atol=RANGES.quantum_uv * 1.001), (
        "the simulator changed: regenerate the demo with 'eegstream simulate "
        f"{path} --duration {DEMO_DURATION_S:g} --seed {DEMO_SEED}'"
    )
    assert [(m.sample, m.value) for m in demo.markers] == [
        (m.sample, m.value) for m in fresh.markers
    ]
