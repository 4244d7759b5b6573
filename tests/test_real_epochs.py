"""The detector on real EPOC+ epochs of one person (MusEEG trainbatch1), read where they lie.

The held-out part (every third epoch of each gesture, ``io.epochs.HOLDOUT_RULE``) is never a
training input; the acceptance figures below are measured on it, joined into a session the way
``eegstream evaluate --epochs`` does. Skips with a reason when ``../shared`` is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import EPOCHS_DIR, SHARED, needs_epochs, replay_through_pipeline

from eegstream.bundle import ModelBundle
from eegstream.cli import main
from eegstream.detector import Detector
from eegstream.engines.base import Engine
from eegstream.events import ArtifactEvent
from eegstream.io.epochs import (
    DEFAULT_LABEL_MAP,
    assemble_session,
    read_epochs,
    with_spontaneous_blinks,
)
from eegstream.offline import EpochEvaluation, detect_messages, evaluate_epochs
from eegstream.settings import Settings

pytestmark = needs_epochs
FIXTURE = SHARED / "fixtures" / "emotivpro-2.0-epocplus-256hz-eyebrows.csv"
CONFOUNDERS = ("eyebrows", "smile", "scrunch", "tongue", "lookleft", "lookright")


@pytest.fixture(scope="module")
def held_out() -> list:
    """The held-out part, rest epochs holding a spontaneous blink counted as blinks."""
    return with_spontaneous_blinks(read_epochs(EPOCHS_DIR, DEFAULT_LABEL_MAP, part="held-out"))


@pytest.fixture(scope="module")
def evaluation(held_out: list, engine: Engine, bundle: ModelBundle) -> EpochEvaluation:
    return evaluate_epochs(
        held_out,
        engine,
        bundle.features,
        Settings(),
        progress=False,  # type: ignore[call-arg]
    )


def test_default_model_on_the_held_out_real_epochs(evaluation: EpochEvaluation) -> None:
    """The issue's acceptance figures, on the held-out third (README: "Accuracy and limits").

    Met: forced blinks >= 95 %; lip-bite reported as jaw_clench; eyebrows and smile called blink
    <= 5 %; eyebrows, smile, scrunch, look left, look right and tongue called blink <= 5 % on
    their epochs without a blink-shaped deflection (people blink while moving tongue and eyes:
    every tongue epoch called blink holds one); rest <= 1 false event per minute after the
    warm-up (0.3 measured with the default three confirming windows).
    """
    g = evaluation.gestures
    table = g.table()
    assert g.gestures["hardblink"]["epochs"] == 29
    assert g.rate("hardblink", "blink") >= 0.95, table
    assert g.rate("bitelowerlip", "jaw_clench") >= 0.7, table
    for name in ("eyebrows", "smile", "scrunch", "lookleft", "lookright", "tongue"):
        assert g.unshaped_blink_rate(name) <= 0.05, table
    assert g.rate("eyebrows", "blink") <= 0.05, table
    assert g.rate("smile", "blink") <= 0.05, table
    assert g.rest_s > 5 * 60.0
    assert g.rest_events_per_min <= 1.0, table


def test_every_forced_blink_passes_the_fault_check_and_headset_shifts_do_not(
    held_out: list, engine: Engine, bundle: ModelBundle
) -> None:
    """The blink rule on real data: saturated forced blinks are classified, not faults; the
    eyebrow recording's one-sided headset shifts (F7/FC5/T7, 1,000-3,700 uV) stay faults."""
    session = assemble_session([e for e in held_out if e.gesture in ("neutral", "hardblink")])
    rec = session.recording
    det = Detector(engine, bundle.features, Settings(), "x", clock=None)  # type: ignore[call-arg]
    fault, onset = [np.zeros(0, bool)], [np.zeros(0)]
    step = 10 * 128  # within the ring buffer
    for a in range(0, rec.n_samples, step):
        det.ingest(rec.data[a : a + step], rec.timestamps[a : a + step])
        while True:
            batch = det.due_windows()
            fault.append(batch.fault)
            onset.append(batch.onset_times)
            det.apply(batch, det.classify(batch))
            if not det.pending:
                break
    fault_w, onset_w = np.concatenate(fault), np.concatenate(onset)
    t = rec.timestamps
    blinks = [s for s in session.spans if s.gesture == "hardblink"]
    big = 0
    for s in blinks:
        assert s.onset is not None
        # the windows that carry the blink: their onset slot within -0.2..+0.3 s of its onset
        # (later, the EPOC+'s AC-coupled undershoot can swing F7 and F8 apart: a fault)
        t_on = t[s.onset]
        inside = (onset_w >= t_on - 0.2) & (onset_w <= t_on + 0.3)
        assert inside.any()
        # an epoch cut at the very peak of its blink starts thousands of uV up: the rest
        # epoch before it ramps there, one-sided; the rule is for whole blinks
        if s.onset - s.start > 8:
            assert not fault_w[inside].any(), f"hardblink_{s.index} has fault windows"
        big += int(np.ptp(rec.data[s.start : s.stop, 12]) > 3000)  # F8 saturating
    assert big >= 10  # the rule was exercised on blinks of thousands of uV

    if not FIXTURE.is_file():
        pytest.skip(f"the eyebrow fixture is absent ({FIXTURE})")
    from eegstream.io import read_recording

    eyebrows = read_recording(FIXTURE, target_fs=128)
    msgs = detect_messages(eyebrows, engine, bundle.features, Settings(), progress=False)  # type: ignore[call-arg]
    faults = [m for m in msgs if m.type == "status" and m.status == "signal_fault"]
    assert len(faults) >= 6
    assert all({"F7", "FC5"} & set(m.electrodes) for m in faults)


def test_live_detection_of_a_real_session_matches_detect(
    held_out: list,
    engine: Engine,
    bundle: ModelBundle,
    lsl_name: str,
    source_id: str,
) -> None:
    """A real recording streamed through LSL gives detect's events, person baseline included."""
    keep = [e for e in held_out if e.gesture == "neutral" or e.index < 40]
    rec = assemble_session(keep, seed=3).recording
    settings = Settings(resolve_timeout=20)  # type: ignore[call-arg]
    expected = [
        m
        for m in detect_messages(rec, engine, bundle.features, settings, progress=False)
        if isinstance(m, ArtifactEvent) and m.phase == "final"
    ]
    assert len(expected) >= 10
    got, status, t0 = replay_through_pipeline(
        rec, engine, bundle.features, settings, lsl_name, source_id, timeout=90
    )
    assert status["dropped_windows"] == 0
    if bundle.features.prior is not None:
        baseline = status["person_baseline"]
        assert isinstance(baseline, dict)
        assert baseline["warm"] is True
    assert [e.label for e in got] == [e.label for e in expected]
    for a, b in zip(got, expected, strict=True):
        assert abs((a.onset_lsl - t0) - (b.onset_lsl - rec.timestamps[0])) < 1e-3
        # LSL carries float32 samples (~4,200 uV: 0.0005 uV steps) and ONNX Runtime's batch-1
        # and batch-N kernels differ in the last digits: the same decision, not the same bits
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)


def test_cli_evaluate_epochs_prints_the_gesture_table_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png, js = tmp_path / "real.png", tmp_path / "real.json"
    argv = ["evaluate", "--epochs", str(EPOCHS_DIR), "--plot", str(png), "--json", str(js)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "per gesture (epochs after the 20 s warm-up)" in out
    for name in ("hardblink", "bitelowerlip", "neutral", *CONFOUNDERS):
        assert f"\n{name} " in out
    assert "rest (neutral):" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    doc = json.loads(js.read_text())
    assert doc["epochs"]["part"] == "held-out"
    assert doc["epochs"]["gestures"]["gestures"]["hardblink"]["epochs"] == 29


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            [
                "--label-map",
                ",".join([*(f"{g}={c}" for g, c in DEFAULT_LABEL_MAP.items()), "wink=blink"]),
            ],
            "unknown gesture 'wink'",
        ),
        (["--epoch-fs", "64"], "64"),
        (["--label-map", "hardblink=sneeze"], "sneeze"),
    ],
)
def test_cli_bad_epoch_input_is_one_line_and_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--epochs", str(EPOCHS_DIR), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]
