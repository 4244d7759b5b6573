"""Real-world robustness: eyebrow raises and headset shifts are not blinks or jaw clenches.

The genuine EPOC+ recording (one person raising the eyebrows, no blink or clench labelled) goes
through ``eegstream detect`` as a user would run it; a simulated subject who raises the eyebrows
8 times a minute and never blinks or clenches must not raise more than 1 false alarm a minute.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from eegstream.cli import main
from eegstream.events import ArtifactEvent, StatusMessage
from eegstream.settings import Settings

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "emotivpro-2.0-epocplus-256hz-eyebrows.csv"
)
#: Blink/jaw events ``models/default`` reports on the fixture (README, "Limits"), in all and
#: within a raise (from 0.5 s before its signal fault to 1.5 s after it: the onset swing and the
#: headset's slow recovery). The events away from the raises are isolated symmetric frontal
#: bumps of 100-250 uV with no EMG: most likely genuine, unlabelled blinks. A detector that holds
#: classification for 1.5 s after a sustained fault (proposed) gives 3 and 0.
FIXTURE_MAX_EVENTS = 3  # the probable real (unlabelled) blinks at 22.0, 33.8 and 35.4 s
FIXTURE_MAX_NEAR_RAISE = 0  # FAULT_HOLDOFF_S keeps the settling headset from looking like blinks
#: A raise's EMG and onset swing start up to this long before its fault span, and the headset's
#: slow recovery lasts this long after it (measured on the fixture).
RAISE_BEFORE_S = 0.5
RAISE_AFTER_S = 1.5
MODEL_DIR = Settings().model_dir
needs_model = pytest.mark.skipif(
    not (MODEL_DIR / "model.onnx").is_file(),
    reason=f"no trained model in {MODEL_DIR} yet (eegstream train ... --out eegstream/models/default)",
)


@needs_model
@pytest.mark.skipif(
    not FIXTURE.is_file(),
    reason=f"the genuine EPOC+ fixture is not beside the checkout ({FIXTURE}); CI provides shared/",
)
def test_real_eyebrow_raises_stay_within_the_documented_false_alarms(tmp_path: Path) -> None:
    from eegstream.bundle import ModelBundle
    from eegstream.engines import load_engine
    from eegstream.io.emotiv import read_recording
    from eegstream.offline import detect_messages

    out = tmp_path / "events.jsonl"
    assert main(["detect", str(FIXTURE), "--backend", "onnxruntime", "-o", str(out)]) == 0
    events = [ArtifactEvent.model_validate_json(line) for line in out.read_text().splitlines()]
    found = [(e.label, round(e.onset_lsl, 2), round(e.confidence, 3)) for e in events]
    assert len(events) <= FIXTURE_MAX_EVENTS, found
    # where the raises are: each moves F7/FC5/T7 by > 1,000 uV, a signal fault
    bundle = ModelBundle.load(MODEL_DIR)
    engine = load_engine("onnxruntime", bundle)
    try:
        msgs = detect_messages(read_recording(FIXTURE), engine, bundle.features, Settings())
    finally:
        engine.close()
    faults = [
        (m.start_lsl or 0.0, m.end_lsl or 0.0)
        for m in msgs
        if isinstance(m, StatusMessage) and m.status == "signal_fault"
    ]
    assert len(faults) >= 6, faults  # the recording still holds its raises
    near = [
        e
        for e in events
        if any(a - RAISE_BEFORE_S < e.onset_lsl < b + RAISE_AFTER_S for a, b in faults)
    ]
    assert len(near) <= FIXTURE_MAX_NEAR_RAISE, (found, faults)


@needs_model
def test_simulated_eyebrow_raises_and_movements_stay_under_one_false_alarm_per_minute() -> None:
    from eegstream.bundle import ModelBundle
    from eegstream.engines import load_engine
    from eegstream.evaluate import evaluate_messages
    from eegstream.offline import detect_messages
    from eegstream.simulate import RANGES, simulate_with_truth

    bundle = ModelBundle.load(MODEL_DIR)
    sim: dict[str, Any] = bundle.meta.get("training", {}).get("data", {}).get("simulated", {}) or {}
    lo, hi = (sim.get("seeds") or [0, -1])[:2]
    seed = next(s for s in range(96_000, 97_000) if not lo <= s <= hi)
    ranges = dataclasses.replace(RANGES, brow_rate_per_min=8.0, movement_rate_per_min=2.0)
    rec, truth = simulate_with_truth(300, seed, blink_rate=0, clench_rate=0, ranges=ranges)
    assert rec.markers == []
    assert len(truth.confounders["eyebrow"]) >= 25  # the test means something
    engine = load_engine("onnxruntime", bundle)
    try:
        msgs = detect_messages(rec, engine, bundle.features, Settings(), progress=False)
    finally:
        engine.close()
    report = evaluate_messages(msgs, rec.markers, rec.duration)
    assert report.false_alarms_per_min <= 1.0, report.table()
