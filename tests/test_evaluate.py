"""Event-level matching and the evaluation report (pure arithmetic, no model)."""

from __future__ import annotations

import json
import math

import pytest

from eegstream.evaluate import ClassReport, EvaluationReport, evaluate_messages, match_events
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.recording import Marker


def event(
    label: str, onset: float, *, id: str = "", phase: str = "final", det: float = 0.0
) -> ArtifactEvent:
    return ArtifactEvent(
        id=id or f"s-{label}-{onset}",
        seq=0,
        phase=phase,  # type: ignore[arg-type]
        stream_id="s",
        label=label,  # type: ignore[arg-type]
        onset_lsl=onset,
        offset_lsl=onset + 0.3,
        onset_unix=onset,
        offset_unix=onset + 0.3,
        duration=0.3,
        confidence=0.9,
        n_windows=3,
        detected_lsl=det,
        detected_unix=det,
    )


def marker(label: str, time: float, duration: float = 0.0) -> Marker:
    value = 22 if label == "blink" else 23
    return Marker(int(time * 128), time, value, label, duration)


def test_matching_is_one_to_one_within_tolerance() -> None:
    markers = [marker("blink", 10.0), marker("blink", 20.0), marker("jaw_clench", 30.0)]
    events = [
        event("blink", 10.05),  # TP, +50 ms
        event("blink", 10.2),  # second detection of the same blink: FP
        event("blink", 19.8),  # TP, -200 ms
        event("jaw_clench", 30.31),  # outside 0.3 s: FP, and the marker is missed
        event("blink", 30.0),  # right time, wrong label: FP
    ]
    matches, rep = match_events(events, markers)
    b, j = rep["blink"], rep["jaw_clench"]
    assert (b.tp, b.fp, b.fn) == (2, 2, 0)
    assert (j.tp, j.fp, j.fn) == (0, 1, 1)
    assert sorted(round(m.onset_error, 3) for m in matches) == [-0.2, 0.05]
    assert b.precision == pytest.approx(0.5)
    assert b.recall == pytest.approx(1.0)
    assert b.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 0))
    assert b.median_abs_onset_error == pytest.approx(0.125)
    assert b.median_onset_error == pytest.approx(-0.075)
    assert j.f1 == 0.0


def test_closest_pair_wins() -> None:
    markers = [marker("blink", 10.0), marker("blink", 10.5)]
    events = [event("blink", 10.25), event("blink", 10.45)]
    matches, rep = match_events(events, markers)
    assert rep["blink"].tp == 2
    assert sorted((m.marker_time, m.onset) for m in matches) == [(10.0, 10.25), (10.5, 10.45)]


def test_offset_error_where_markers_have_a_duration() -> None:
    markers = [marker("blink", 10.0, 0.25), marker("blink", 20.0)]
    events = [event("blink", 10.0), event("blink", 20.0)]  # offsets onset + 0.3
    matches, rep = match_events(events, markers)
    assert sorted(m.offset_error is None for m in matches) == [False, True]
    assert rep["blink"].offset_errors == [pytest.approx(0.05)]
    assert rep["blink"].median_offset_error == pytest.approx(0.05)


def test_tolerance_is_a_parameter() -> None:
    _, rep = match_events([event("blink", 10.25)], [marker("blink", 10.0)], tolerance=0.2)
    assert (rep["blink"].tp, rep["blink"].fp, rep["blink"].fn) == (0, 1, 1)


def test_other_markers_and_onset_messages_are_ignored() -> None:
    markers = [marker("blink", 10.0), Marker(sample=0, time=5.0, value=7, label="marker_7")]
    events = [event("blink", 10.0, phase="onset"), event("blink", 10.0)]
    _, rep = match_events(events, markers)
    assert (rep["blink"].tp, rep["blink"].fp, rep["blink"].fn) == (1, 0, 0)


def test_nan_when_undefined() -> None:
    c = ClassReport("blink")
    assert math.isnan(c.precision)
    assert math.isnan(c.recall)
    assert math.isnan(c.f1)
    assert math.isnan(c.median_abs_onset_error)
    assert math.isnan(c.latency(50))


def test_latency_from_the_onset_message() -> None:
    msgs: list[Message] = [
        event("blink", 10.02, id="s-1", phase="onset", det=10.35),
        event("blink", 10.02, id="s-1", det=10.6),
        event("jaw_clench", 20.0, id="s-2", phase="onset", det=20.4),
        event("jaw_clench", 20.0, id="s-2", det=21.0),
        StatusMessage(stream_id="s", status="signal_fault", unix_time=0.0),
    ]
    rep = evaluate_messages(msgs, [marker("blink", 10.0), marker("jaw_clench", 20.0)], 120.0)
    assert rep.classes["blink"].latencies == [pytest.approx(0.35)]
    assert rep.classes["jaw_clench"].latency(50) == pytest.approx(0.4)
    assert rep.signal_faults == 1
    assert rep.false_alarms == 0
    assert rep.false_alarms_per_min == 0.0


def test_false_alarms_per_minute_and_merge() -> None:
    a = evaluate_messages([event("blink", 5.0), event("blink", 50.0)], [], 60.0, name="a")
    b = evaluate_messages(
        [event("jaw_clench", 7.0)],
        [marker("jaw_clench", 7.1), marker("blink", 9.0)],
        120.0,
        name="b",
    )
    assert a.false_alarms_per_min == pytest.approx(2.0)
    total = EvaluationReport("all", 0.0, {})
    total.merge(a)
    total.merge(b)
    assert total.duration_s == 180.0
    assert total.false_alarms == 2
    assert total.false_alarms_per_min == pytest.approx(2 / 3)
    assert (total.classes["blink"].fp, total.classes["blink"].fn) == (2, 1)
    assert total.classes["jaw_clench"].tp == 1
    assert total.median_abs_onset_error == pytest.approx(0.1)


def test_summary_is_valid_json_and_table_names_every_class() -> None:
    rep = evaluate_messages([event("blink", 5.0)], [], 60.0, name="quiet")
    doc = json.dumps(rep.summary(), allow_nan=False)
    back = json.loads(doc)
    assert back["classes"]["jaw_clench"]["f1"] is None
    assert back["false_alarms_per_min"] == pytest.approx(1.0)
    table = rep.table()
    assert "blink" in table
    assert "jaw_clench" in table
    assert "n/a" in table
    assert "false alarms: 1 (1.00/min)" in table


def test_suggest_timing_cancels_the_median_bias() -> None:
    from eegstream.detector import TIMING
    from eegstream.evaluate import suggest_timing

    markers = [
        marker("blink", 10.0, 0.25),
        marker("blink", 20.0, 0.25),
        marker("blink", 30.0, 0.25),
    ]
    events = [event("blink", 10.1), event("blink", 20.12), event("blink", 30.08)]  # +100 ms late
    rep = evaluate_messages(events, markers, 60.0)
    on, off = suggest_timing(rep)["blink"]
    assert on == pytest.approx(TIMING["blink"].onset_shift - 0.1, abs=1e-3)
    assert off == pytest.approx(TIMING["blink"].offset_shift - 0.15, abs=1e-3)  # 0.4 - 0.25
    assert suggest_timing(rep)["jaw_clench"] == (
        TIMING["jaw_clench"].onset_shift,
        TIMING["jaw_clench"].offset_shift,
    )


def test_gesture_report_attributes_events_to_the_epoch_they_overlap_most() -> None:
    from eegstream.evaluate import gesture_report

    spans = [
        ("neutral", 0.0, 1.5),  # warm-up (before t0 + 3 s): left out
        ("neutral", 1.5, 3.0),
        ("hardblink", 3.0, 4.5),
        ("neutral", 4.5, 6.0),
        ("smile", 6.0, 7.5),
        ("neutral", 7.5, 9.0),
        ("hardblink", 9.0, 10.5),
    ]
    events = [
        event("blink", 0.5),  # in the warm-up
        event("blink", 2.9),  # 2.9-3.2: mostly inside the first hardblink
        event("jaw_clench", 5.0),  # a false event in rest
        event("blink", 6.2),  # a smile called blink
        event("blink", 6.3, phase="onset"),  # onset messages are not counted
    ]
    rep = gesture_report(
        events,
        spans,
        {"neutral": "nothing", "hardblink": "blink", "smile": "nothing"},
        warmup_s=3.0,
        t0=0.0,
        rest_gesture="neutral",
        shaped=[False, False, False, False, True, False, False],
    )
    assert rep.gestures["hardblink"] == {
        "epochs": 2,
        "blink": 1,
        "jaw_clench": 0,
        "nothing": 1,
        "shaped": 0,
        "blink_unshaped": 1,
    }
    assert rep.rate("smile", "blink") == 1.0
    assert rep.gestures["smile"]["shaped"] == 1
    assert math.isnan(rep.unshaped_blink_rate("smile"))  # its only epoch has a blink shape
    assert rep.gestures["neutral"]["epochs"] == 2
    assert rep.rest_events == 1
    assert rep.rest_events_per_min == pytest.approx(1 / (3.0 / 60.0))
    assert list(rep.gestures)[0] == "hardblink"  # targets first
    text = rep.table()
    assert "hardblink" in text
    assert "50.0%" in text
    assert json.loads(json.dumps(rep.summary()))["gestures"]["smile"]["blink_rate"] == 1.0
