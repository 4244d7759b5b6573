"""The live pipeline of one stream: MultiStreamPipeline with a single headset, over real LSL.

What a service with one headset relies on: status while running, connected / stopped messages,
NaN reports with electrodes and counts, lost / recovered / gap, a failing sink, a stream that
cannot be found, live detection matching offline detection and the markers, and a replay process
killed and restarted without an event in the gap. Several streams, batching, discovery and
runtime add / remove are tested in tests/test_multi.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Messages, replay_through_pipeline

from eegstream.bundle import ModelBundle
from eegstream.detector import Detector
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.recording import Recording
from eegstream.live.scheduler import MultiStreamPipeline, StreamSpec
from eegstream.settings import Settings
from eegstream.stream.replay import Player

MakeRecording = Callable[..., Recording]
WaitFor = Callable[..., bool]

pytestmark = pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: eegstream/models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)


class FailingSink(Messages):
    """Keeps every message, then raises on the first one ``fails_on`` picks (once)."""

    def __init__(self, fails_on: Callable[[Message], bool]) -> None:
        super().__init__()
        self.fails_on = fails_on
        self.failed = False

    def __call__(self, message: Message) -> None:
        super().__call__(message)
        if not self.failed and self.fails_on(message):
            self.failed = True
            raise RuntimeError("sink broke")


@pytest.fixture(scope="module")
def settings() -> Settings:
    """Default detector settings; a generous resolve timeout for a loaded test machine."""
    return Settings(resolve_timeout=20)  # type: ignore[call-arg]


def test_status_while_running_and_connected_stopped_messages(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    source_id: str,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    rec = make_recording(4.0)
    player = Player(rec, name=lsl_name, source_id=source_id, loop=True)
    sink = Messages()
    spec = StreamSpec(name=lsl_name, source_id=source_id, stream_id="s1")
    pipeline = MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[spec])

    def stream() -> dict[str, Any]:
        return dict(pipeline.status()["streams"]["s1"])

    with player:
        pipeline.start()
        pipeline.start()  # idempotent: still one thread, the stream attached once
        assert wait_for(
            lambda: (
                stream()["samples"] >= 300
                and stream()["measured_fs"] is not None
                and stream()["windows_per_s"] is not None
            ),
            timeout=20,
        )
        status = pipeline.status()
        latest, latest_t = pipeline.latest(1.0, "s1")
        pipeline.stop()
        pipeline.stop()  # idempotent
    assert status["running"] is True
    assert status["state"] == "running"
    assert status["attached"] == 1
    assert status["error"] is None
    assert status["scheduler"]["engine_calls"] > 0
    assert list(status["streams"]) == ["s1"]
    s = status["streams"]["s1"]
    assert s["running"] is True
    assert s["state"] == "connected"
    assert s["stream_id"] == "s1"
    assert s["stream"]["name"] == lsl_name
    assert s["stream"]["source_id"] == source_id
    assert s["nominal_fs"] == 128.0
    assert 100 < s["measured_fs"] < 160  # real time
    assert 0 < s["windows_per_s"] <= 128 / settings.hop + 2  # a window per hop, no more
    assert 0 < s["buffer_fill"] <= 1
    assert s["lag_s"] is not None
    assert -0.05 < s["lag_s"] < 0.5
    assert s["gaps"] == 0
    assert s["nan_samples"] == 0
    assert s["last_error"] is None
    # latest(): the newest second, a contiguous stretch of the (looping) recording
    assert latest.shape == (128, 14)
    np.testing.assert_allclose(np.diff(latest_t), 1 / 128, atol=1e-4)
    recording = np.vstack([rec.data, rec.data]).astype(np.float32).astype(np.float64)
    start = int(np.flatnonzero((recording == latest[0]).all(axis=1))[0])
    np.testing.assert_array_equal(latest, recording[start : start + 128])
    # an overload under a busy test machine is reported, and is not the point here
    kinds = [m.status for m in sink.statuses() if m.status != "overloaded"]
    assert kinds[0] == "connected"
    assert kinds[-1] == "stopped"
    assert kinds.count("connected") == 1
    assert kinds.count("stopped") == 1
    assert all(m.stream_id == "s1" for m in sink.items)
    after = pipeline.status()
    assert after["state"] == "stopped"
    assert after["streams"]["s1"]["state"] == "stopped"
    assert after["streams"]["s1"]["running"] is False
    assert after["streams"]["s1"]["lag_s"] is None
    assert not pipeline.running
    # stop() flushed: every window of every sample that arrived was classified, once
    done = after["streams"]["s1"]
    assert done["windows"] == (done["samples"] - 64) // settings.hop + 1
    assert done["messages"] == len(sink.items)


def test_nan_samples_are_reported_with_electrodes_and_counts(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    rec = make_recording(3.0)
    rec.data[128:148, 3] = np.nan  # FC5
    rec.data[140:150, 7] = np.inf  # O2
    offline = Detector(engine, bundle.features, settings, "offline", clock=None)
    offline.process(rec.data, rec.timestamps)
    sink = Messages()
    with (
        Player(rec, name=lsl_name, speed=4, wait_for_consumer=30),
        MultiStreamPipeline(
            engine, bundle.features, settings, sink, streams=[lsl_name]
        ) as pipeline,
    ):

        def stream() -> dict[str, Any]:
            return dict(pipeline.status()["streams"][lsl_name])

        assert wait_for(lambda: stream()["samples"] >= rec.n_samples, timeout=20)
        assert wait_for(lambda: sink.statuses("nan"), timeout=5)
        status = stream()
    (nan,) = sink.statuses("nan")
    assert nan.stream_id == lsl_name
    assert nan.electrodes == ["FC5", "O2"]
    assert nan.detail["samples"] == 22  # rows 128..149
    assert nan.detail["total"] == 22
    assert nan.start_lsl is not None
    assert nan.end_lsl is not None
    assert abs((nan.end_lsl - nan.start_lsl) - 21 / 128) < 0.002
    assert status["nan_samples"] == 22
    # FC5 is a model electrode: the windows over it were not classified, live as offline
    assert status["nan_windows"] == offline.stats["nan_windows"] > 0


def test_lost_recovered_and_gap_are_reported(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    source_id: str,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    rec = make_recording(4.0)
    sink = Messages()
    first = Player(rec, name=lsl_name, source_id=source_id, loop=True).start()
    second = Player(rec, name=lsl_name, source_id=source_id, loop=True)
    spec = StreamSpec(name=lsl_name, source_id=source_id, stream_id="s2")
    pipeline = MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[spec])

    def stream() -> dict[str, Any]:
        return dict(pipeline.status()["streams"]["s2"])

    try:
        with pipeline:
            assert wait_for(lambda: stream()["samples"] >= 128, timeout=20)
            first.stop()  # the outlet disappears
            assert wait_for(lambda: sink.statuses("lost"), timeout=10)
            second.start()  # ... and comes back under the same source id
            assert wait_for(lambda: sink.statuses("gap"), timeout=30)
            windows = stream()["windows"]
            assert wait_for(lambda: stream()["windows"] > windows, timeout=10)  # detects again
            status = stream()
    finally:
        first.stop()
        second.stop()
    # an overload under a busy test machine is reported, and is not the point here
    kinds = [m.status for m in sink.statuses() if m.status != "overloaded"]
    assert kinds[:4] == ["connected", "lost", "recovered", "gap"]
    assert all(m.stream_id == "s2" for m in sink.items)
    lost, gap = sink.statuses("lost")[0], sink.statuses("gap")[0]
    assert gap.start_lsl == lost.start_lsl  # the gap starts at the last sample before the loss
    assert gap.end_lsl is not None
    assert gap.start_lsl is not None
    assert gap.end_lsl > gap.start_lsl
    assert gap.detail["reason"] == "reconnect"
    assert status["state"] == "connected"
    assert status["lost"] == 1
    assert status["reconnects"] == 1
    assert status["gaps"] == 1
    assert status["last_gap"]["reason"] == "reconnect"
    assert pipeline.stream_ids == ["s2"]  # recovered in place: no second stream


def test_a_sink_failing_in_the_scheduler_is_stored_shown_and_raised(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    wait_for: WaitFor,
) -> None:
    from eegstream.simulate import simulate_recording

    # 30 s of baseline then a blink every 2 s: at 16x real time the first event comes in ~3 s
    rec = simulate_recording(45.0, 8105, blink_rate=30.0, clench_rate=0.0)
    sink = FailingSink(lambda m: isinstance(m, ArtifactEvent))
    with Player(rec, name=lsl_name, speed=16, wait_for_consumer=30, markers=False):
        pipeline = MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[lsl_name])
        pipeline.start()
        assert wait_for(lambda: not pipeline.running, timeout=30)
        status = pipeline.status()
        with pytest.raises(RuntimeError, match="sink broke"):
            pipeline.stop()
        pipeline.stop()  # raised once; now clean
    assert sink.failed
    assert status["running"] is False
    assert status["state"] == "failed"
    assert status["error"] == "RuntimeError: sink broke"
    # the stream was told why it stopped, once
    stopped = sink.statuses("stopped")
    assert len(stopped) == 1
    assert stopped[0].stream_id == lsl_name
    assert stopped[0].detail == {"error": "RuntimeError: sink broke"}
    assert pipeline.status()["state"] == "stopped"


def test_a_sink_failing_in_stop_is_raised_by_stop_once(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    sink = FailingSink(lambda m: isinstance(m, StatusMessage) and m.status == "stopped")
    with Player(make_recording(2.0), name=lsl_name, loop=True, markers=False):
        pipeline = MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[lsl_name])
        pipeline.start()
        assert wait_for(lambda: pipeline.status()["streams"][lsl_name]["samples"] > 0, timeout=20)
        with pytest.raises(RuntimeError, match="sink broke"):
            pipeline.stop()
        pipeline.stop()  # raised once; now clean
    assert not pipeline.running
    assert pipeline.status()["streams"][lsl_name]["state"] == "stopped"
    assert [m.status for m in sink.statuses()] == ["connected", "stopped"]


def test_a_sink_failing_on_a_stream_message_fails_that_stream_and_shows_it(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    sink = FailingSink(lambda m: isinstance(m, StatusMessage) and m.status == "connected")
    with Player(make_recording(2.0), name=lsl_name, loop=True, markers=False):
        pipeline = MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[lsl_name])

        def stream() -> dict[str, Any]:
            return dict(pipeline.status()["streams"][lsl_name])

        pipeline.start()
        try:
            assert wait_for(lambda: stream()["state"] == "failed", timeout=20)
            status = pipeline.status()
        finally:
            # A stream's failure is not the scheduler's: shown by status(), not raised by stop()
            pipeline.stop()
    assert sink.failed
    s = status["streams"][lsl_name]
    assert s["running"] is False
    assert s["last_error"] == "RuntimeError: sink broke"
    assert status["error"] == "RuntimeError: sink broke"  # what /health shows
    assert status["running"] is True  # the scheduler carries on (with other streams)
    assert status["attached"] == 0
    # an overload under a busy test machine is reported, and is not the point here
    kinds = [m.status for m in sink.statuses() if m.status != "overloaded"]
    assert kinds == ["connected", "stopped"]  # the failed stream reported once, then left
    assert sink.statuses("stopped")[0].detail == {"error": "RuntimeError: sink broke"}
    assert pipeline.status()["streams"][lsl_name]["state"] == "failed"  # kept after stop()


def test_start_raises_when_the_stream_cannot_be_found_and_works_once_it_appears(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    name = f"eegstream-test-absent-{uuid.uuid4().hex}"
    quick = settings.model_copy(update={"resolve_timeout": 2.0})
    sink = Messages()
    pipeline = MultiStreamPipeline(engine, bundle.features, quick, sink, streams=[name])
    with pytest.raises(EegstreamError, match="no LSL stream with name 'eegstream-test-absent-"):
        pipeline.start()
    assert not pipeline.running
    assert pipeline.status()["streams"] == {}
    assert pipeline.status()["state"] == "stopped"  # a stream not found is not a failure
    assert sink.items == []
    with Player(make_recording(2.0), name=name, loop=True, markers=False), pipeline:
        # the stream is still asked for: start() resolves it now
        assert wait_for(lambda: pipeline.status()["streams"][name]["samples"] > 0, timeout=20)
    assert [m.status for m in sink.statuses()] == ["connected", "stopped"]


def test_live_detection_matches_offline_and_the_markers(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    source_id: str,
) -> None:
    from eegstream.simulate import simulate_recording

    rec = simulate_recording(90.0, 7)
    offline = Detector(engine, bundle.features, settings, "offline", clock=None)
    expected = [
        m
        for m in offline.process(rec.data, rec.timestamps) + offline.flush()
        if isinstance(m, ArtifactEvent) and m.phase == "final"
    ]
    # 90 s of EEG in under 6 s
    got, status, t0 = replay_through_pipeline(
        rec, engine, bundle.features, settings, lsl_name, source_id
    )
    assert status["windows"] > 0
    assert status["gaps"] == 0
    assert status["dropped_windows"] == 0
    assert all(e.stream_id == lsl_name for e in got)
    # Streaming and offline detection give the same events (onsets within one hop).
    assert [e.label for e in got] == [e.label for e in expected]
    hop = settings.hop / 128
    for a, b in zip(got, expected, strict=True):
        assert abs((a.onset_lsl - t0) - (b.onset_lsl - rec.timestamps[0])) <= hop
    # And they are where the artifacts were.
    onsets = {
        lab: [e.onset_lsl - t0 for e in got if e.label == lab] for lab in ("blink", "jaw_clench")
    }
    hits = sum(
        any(abs(o - (m.time - rec.timestamps[0])) < 0.25 for o in onsets.get(m.label, []))
        for m in rec.markers
    )
    assert hits >= 0.9 * len(rec.markers)


_REPLAY_NPZ = """
import sys, threading
import numpy as np
from eegstream.io.recording import Recording
from eegstream.stream.replay import Player
z = np.load(sys.argv[3])
rec = Recording(data=z["data"], timestamps=z["timestamps"], fs=float(z["fs"]))
start = float(sys.argv[4]) if len(sys.argv) > 4 else None
Player(rec, name=sys.argv[1], source_id=sys.argv[2], speed=16, start_lsl=start).start()
threading.Event().wait()
"""


def test_killed_replay_detection_resumes_and_no_event_falls_in_the_gap(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    lsl_name: str,
    source_id: str,
    tmp_path: Path,
    wait_for: WaitFor,
) -> None:
    from eegstream.simulate import simulate_recording

    rec = simulate_recording(120.0, 11)
    npz = tmp_path / "rec.npz"
    np.savez(npz, data=rec.data, timestamps=rec.timestamps, fs=rec.fs)
    slow = settings.model_copy(update={"resolve_timeout": 30.0})  # a new process starts first

    def replay(*start: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", _REPLAY_NPZ, lsl_name, source_id, str(npz), *start],
            stdout=subprocess.DEVNULL,
            env=os.environ.copy(),
        )

    sink = Messages()
    first = replay()
    second: subprocess.Popen[bytes] | None = None
    spec = StreamSpec(name=lsl_name, source_id=source_id, stream_id="k")
    try:
        with MultiStreamPipeline(engine, bundle.features, slow, sink, streams=[spec]) as pipeline:
            # 30 s of baseline, then artifacts: wait for some events (16x real time)
            assert wait_for(lambda: len(sink.events()) >= 3, timeout=30)
            first.kill()
            first.wait(10)
            assert wait_for(lambda: sink.statuses("lost"), timeout=10)
            time.sleep(5.0)  # the outage itself (not an assertion on timing)
            before = len(sink.events())
            # At 16x the stamps run ahead of the clock, so a new process stamping from "now"
            # would go back in time; it continues the timeline 5 s after the last sample.
            last = sink.statuses("lost")[0].start_lsl
            assert last is not None
            second = replay(str(last + 5.0))
            assert wait_for(lambda: sink.statuses("gap"), timeout=30)
            assert wait_for(lambda: len(sink.events()) >= before + 3, timeout=30)
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait(10)
    assert pipeline.stream_ids == ["k"]  # resumed under its id
    # an overload under a busy test machine is reported, and is not the point here
    kinds = [m.status for m in sink.statuses() if m.status != "overloaded"]
    assert kinds[:4] == ["connected", "lost", "recovered", "gap"]
    gap = sink.statuses("gap")[0]
    assert gap.start_lsl is not None
    assert gap.end_lsl is not None
    assert gap.end_lsl - gap.start_lsl > 4.99
    events = sink.events()
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)  # the same detector goes on: ids never repeat
    assert all(e.stream_id == "k" for e in events)
    assert any(e.offset_lsl <= gap.start_lsl for e in events)  # detection before ...
    assert any(e.onset_lsl >= gap.end_lsl for e in events)  # ... and after the gap
    for e in events:  # none spans or falls inside the gap
        assert e.offset_lsl <= gap.start_lsl or e.onset_lsl >= gap.end_lsl, e
