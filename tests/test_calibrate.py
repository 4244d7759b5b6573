"""Calibration to the person (issue #16): protocol, onsets, profile, thresholds, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import EPOCHS_DIR, needs_epochs

from eegstream.bundle import ModelBundle
from eegstream.calibrate import (
    CUE_VALUES,
    Protocol,
    calibrate_recording,
    cues_from_markers,
    find_responses,
    simulate_protocol,
)
from eegstream.cli import main
from eegstream.detector import EventBuilder
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.evaluate import evaluate_messages
from eegstream.io.emotiv import write_recording
from eegstream.offline import detect_messages
from eegstream.profile import apply_profile, load_profile
from eegstream.settings import Settings
from eegstream.simulate import draw_subject, simulate_with_truth


def test_protocol_is_two_minutes_of_shuffled_cues_a_few_seconds_apart() -> None:
    p = Protocol(seed=3)
    cues = p.cues()
    assert [c.label for c in cues].count("blink") == 10
    assert [c.label for c in cues].count("jaw_clench") == 6
    gaps = np.diff([c.time for c in cues])
    assert cues[0].time == 30.0
    assert gaps.min() >= 3.5
    assert gaps.max() <= 5.0
    assert 100 <= p.duration <= 140
    assert [c.label for c in cues] != [c.label for c in Protocol(seed=4).cues()]
    assert cues == Protocol(seed=3).cues()


def test_onsets_come_from_the_signal_and_missed_cues_are_dropped() -> None:
    rec = simulate_protocol(3101, miss=0.3)
    truth = [m for m in rec.markers if m.value in (22, 23)]
    cues = cues_from_markers(rec)
    assert len(cues) == 16
    assert len(truth) < 16
    responses = find_responses(rec, cues)
    for r in responses:
        near = [m for m in truth if 0.0 < m.time - r.cue.time < 1.5 and m.label == r.cue.label]
        if near:  # a response: found within 150 ms of where the simulator put it (the match
            # tolerance of the scoring is 300 ms; a clench ramp makes its 20 % crossing late)
            assert r.onset is not None, r
            assert abs(r.onset - near[0].time) < 0.15
        else:  # the person ignored the cue: missed, never an example
            assert r.onset is None, r
    assert sum(r.kept for r in responses) == len(truth)


def test_per_class_thresholds_equal_to_the_global_one_change_nothing() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], size=400)
    on = np.arange(400) * 0.0625
    plain = EventBuilder(Settings(), "s", clock=None).feed(p, on, on + 0.3, 0.0)
    same = Settings(class_thresholds={"blink": 0.6, "jaw_clench": 0.6})
    assert EventBuilder(same, "s", clock=None).feed(p, on, on + 0.3, 0.0) == plain
    lower = Settings(class_thresholds={"jaw_clench": 0.35})
    assert len(EventBuilder(lower, "s", clock=None).feed(p, on, on + 0.3, 0.0)) > len(plain)


def _exaggerated(seed: int) -> object:
    base = draw_subject(seed)
    return replace(
        base, tonic_emg_uv=3 * base.tonic_emg_uv, blink_amplitude_uv=0.5 * base.blink_amplitude_uv
    )


def test_calibration_helps_an_unseen_tense_person(bundle: ModelBundle, engine: Engine) -> None:
    """Seed 7003 with 3x muscle tone and half-size blinks: jaw-clench F1 0.87 uncalibrated."""
    subject = _exaggerated(7003)
    settings = Settings()
    result = calibrate_recording(simulate_protocol(7003, subject=subject), bundle, engine, settings)
    assert result.profile.model_sha256 == bundle.sha256
    assert all(r.kept for r in result.responses if r.cue.label == "jaw_clench")
    test, _ = simulate_with_truth(180.0, 57003, subject=subject)  # never seen by calibration
    f1 = []
    for b, s in ((bundle, settings), apply_profile(result.profile, bundle, settings)):
        msgs = detect_messages(test, engine, b.features, s, progress=False)
        rep = evaluate_messages(msgs, test.markers, test.duration)
        f1.append((rep.classes["blink"].f1 + rep.classes["jaw_clench"].f1) / 2)
    assert f1[0] < 0.95, f1
    assert f1[1] > f1[0] + 0.02, f1


def test_profile_round_trips_and_starts_the_baseline_warm(
    bundle: ModelBundle, engine: Engine, tmp_path: Path
) -> None:
    result = calibrate_recording(simulate_protocol(3102), bundle, engine, Settings(), name="bob")
    path = tmp_path / "bob.profile"
    result.profile.save(path)
    prof = load_profile(path)
    assert prof.name == "bob"
    assert prof.thresholds == result.profile.thresholds
    np.testing.assert_allclose(prof.loc, result.profile.loc, atol=1e-5)
    doc = json.loads(path.read_text())
    assert doc["format"] == "eegstream-profile/1"
    assert doc["calibration"]["classes"]["blink"]["kept"] == 10
    b2, s2 = apply_profile(path, bundle, Settings())
    person = b2.features.person_baseline(8)
    assert person is not None
    assert person.warm
    np.testing.assert_allclose(person.loc, prof.loc, atol=1e-6)
    assert s2.class_thresholds == prof.thresholds
    plain = bundle.features.person_baseline(8)
    assert plain is not None
    assert not plain.warm


# --- bad input: one line, exit 2, nothing written ----------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_profile_of_another_model_is_refused(
    bundle: ModelBundle, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = calibrate_recording(simulate_protocol(3102), bundle, engine, Settings(), name="x")
    path = tmp_path / "x.profile"
    result.profile.save(path)
    doc = json.loads(path.read_text())
    doc["model"]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc))
    rec = tmp_path / "rec.csv"
    write_recording(simulate_protocol(3103, confounders=False), rec)
    out = tmp_path / "events.jsonl"
    code, err = _run(["detect", str(rec), "--profile", str(path), "-o", str(out)], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "calibrated with model" in err
    assert "calibrate again" in err
    assert not out.exists()
    with pytest.raises(EegstreamError, match="calibrated with model 'default'"):
        apply_profile(path, bundle, Settings())


def test_recording_without_cues_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = simulate_protocol(3104, confounders=False)
    rec.markers = [m for m in rec.markers if m.value not in CUE_VALUES.values()]
    path = tmp_path / "nocues.csv"
    write_recording(rec, path)
    out = tmp_path / "p.profile"
    code, err = _run(["calibrate", str(path), "--out", str(out)], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "no cue markers" in err
    assert not out.exists()
    assert not list(tmp_path.glob("*profile*"))


def test_person_who_never_blinked_on_cue_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "noblinks.csv"
    write_recording(simulate_protocol(3105, never=("blink",), confounders=False), path)
    out = tmp_path / "p.profile"
    code, err = _run(["calibrate", str(path), "--out", str(out)], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "no clear blink after any of the 10 cue_blink cues" in err
    assert not out.exists()
    assert not list(tmp_path.glob("*profile*"))


def test_calibrate_command_writes_a_profile_and_detect_uses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cal.csv"
    write_recording(simulate_protocol(3106), path)
    prof = tmp_path / "alice.profile"
    assert main(["calibrate", str(path), "--out", str(prof)]) == 0
    report = capsys.readouterr().out
    assert "profile alice" in report
    assert "missed" in report
    assert f"wrote {prof}" in report
    assert load_profile(prof).name == "alice"
    out = tmp_path / "ev.jsonl"
    assert main(["detect", str(path), "--profile", str(prof), "-o", str(out)]) == 0
    assert out.read_text().count('"label"') >= 10


# --- real EPOC+ epochs: calibrate on the training part, better on the held-out part ------------


@needs_epochs
def test_real_profile_from_training_part_does_not_hurt_held_out(
    bundle: ModelBundle, engine: Engine
) -> None:
    from eegstream.calibrate import assemble_calibration
    from eegstream.io.epochs import read_epochs, with_spontaneous_blinks
    from eegstream.offline import evaluate_epochs

    train = read_epochs(EPOCHS_DIR, part="train")
    result = calibrate_recording(assemble_calibration(train), bundle, engine, Settings())
    held = with_spontaneous_blinks(read_epochs(EPOCHS_DIR, part="held-out"))
    s = Settings()
    before = evaluate_epochs(held, engine, bundle.features, s, progress=False).gestures
    b2, s2 = apply_profile(result.profile, bundle, s)
    after = evaluate_epochs(held, engine, b2.features, s2, progress=False).gestures
    assert after.rate("hardblink", "blink") >= before.rate("hardblink", "blink")
    assert after.rate("bitelowerlip", "jaw_clench") >= before.rate("bitelowerlip", "jaw_clench")
    assert (
        after.rest_events_per_min <= 0.5
        or after.rest_events_per_min <= before.rest_events_per_min / 2
    )
    for g in ("eyebrows", "smile", "scrunch", "tongue", "lookleft", "lookright"):
        assert after.rate(g, "blink") <= before.rate(g, "blink"), g
