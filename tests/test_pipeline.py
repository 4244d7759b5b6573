"""StreamPipeline: the live thread (real LSL on loopback) reports status, faults and events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.recording import Recording
from eegstream.settings import Settings
from eegstream.stream.inlet import EEGInlet
from eegstream.stream.pipeline import StreamPipeline
from eegstream.stream.replay import Player

MakeRecording = Callable[..., Recording]
WaitFor = Callable[..., bool]


class Messages:
    """A thread-safe sink that keeps every message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Message] = []

    def __call__(self, message: Message) -> None:
        with self._lock:
            self.items.append(message)

    def statuses(self, kind: str | None = None) -> list[StatusMessage]:
        with self._lock:
            return [
                m
                for m in self.items
                if isinstance(m, StatusMessage) and (kind is None or m.status == kind)
            ]

    def events(self, phase: str = "final") -> list[ArtifactEvent]:
        with self._lock:
            return [m for m in self.items if isinstance(m, ArtifactEvent) and m.phase == phase]


def test_status_while_running_and_connected_stopped_messages(
    lsl_name: str, source_id: str, make_recording: MakeRecording, wait_for: WaitFor
) -> None:
    rec = make_recording(4.0)
    player = Player(rec, name=lsl_name, source_id=source_id, loop=True)
    sink = Messages()
    with player:
        pipeline = StreamPipeline(
            EEGInlet(lsl_name, source_id=source_id, resolve_timeout=20), None, sink, stream_id="s1"
        )
        pipeline.start()
        pipeline.start()  # idempotent: still one thread
        assert wait_for(
            lambda: (
                pipeline.status()["samples"] >= 300 and pipeline.status()["measured_fs"] is not None
            ),
            timeout=20,
        )
        status = pipeline.status()
        latest, latest_t = pipeline.latest(1.0)
        pipeline.stop()
        pipeline.stop()  # idempotent
    assert status["running"] is True
    assert status["state"] == "connected"
    assert status["stream_id"] == "s1"
    assert status["stream"]["name"] == lsl_name
    assert status["stream"]["source_id"] == source_id
    assert status["nominal_fs"] == 128.0
    assert 100 < status["measured_fs"] < 160  # real time
    assert 0 < status["buffer_fill"] <= 1
    assert status["lag_s"] is not None
    assert -0.05 < status["lag_s"] < 0.5
    assert status["gaps"] == 0
    assert status["nan_samples"] == 0
    assert status["last_error"] is None
    assert status["windows_per_s"] is None  # no detector
    assert pipeline.ring.total >= status["samples"]
    # latest(): the newest second, a contiguous stretch of the (looping) recording
    assert latest.shape == (128, 14)
    np.testing.assert_allclose(np.diff(latest_t), 1 / 128, atol=1e-4)
    recording = np.vstack([rec.data, rec.data]).astype(np.float32).astype(np.float64)
    start = int(np.flatnonzero((recording == latest[0]).all(axis=1))[0])
    np.testing.assert_array_equal(latest, recording[start : start + 128])
    kinds = [m.status for m in sink.statuses()]
    assert kinds[0] == "connected"
    assert kinds[-1] == "stopped"
    assert kinds.count("stopped") == 1
    assert all(m.stream_id == "s1" for m in sink.statuses())
    assert pipeline.status()["state"] == "stopped"
    assert not pipeline.running


def test_nan_samples_are_reported_with_electrodes_and_counts(
    lsl_name: str, make_recording: MakeRecording, wait_for: WaitFor
) -> None:
    rec = make_recording(3.0)
    rec.data[128:148, 3] = np.nan  # FC5
    rec.data[140:150, 7] = np.inf  # O2
    sink = Messages()
    with Player(rec, name=lsl_name, speed=4, wait_for_consumer=30):
        pipeline = StreamPipeline(EEGInlet(lsl_name, resolve_timeout=20), None, sink)
        with pipeline:
            assert wait_for(lambda: pipeline.status()["samples"] >= rec.n_samples, timeout=20)
            assert wait_for(lambda: sink.statuses("nan"), timeout=5)
            status = pipeline.status()
    (nan,) = sink.statuses("nan")
    assert nan.electrodes == ["FC5", "O2"]
    assert nan.detail["samples"] == 22  # rows 128..149
    assert nan.start_lsl is not None
    assert nan.end_lsl is not None
    assert abs((nan.end_lsl - nan.start_lsl) - 21 / 128) < 0.002
    assert status["nan_samples"] == 22


def test_lost_recovered_and_gap_are_reported(
    lsl_name: str, source_id: str, make_recording: MakeRecording, wait_for: WaitFor
) -> None:
    rec = make_recording(4.0)
    sink = Messages()
    first = Player(rec, name=lsl_name, source_id=source_id, loop=True).start()
    second = Player(rec, name=lsl_name, source_id=source_id, loop=True)
    inlet = EEGInlet(lsl_name, source_id=source_id, resolve_timeout=20)
    try:
        with StreamPipeline(inlet, None, sink, stream_id="s2") as pipeline:
            assert wait_for(lambda: pipeline.status()["samples"] >= 128, timeout=20)
            first.stop()  # the outlet disappears
            assert wait_for(lambda: sink.statuses("lost"), timeout=10)
            second.start()  # ... and comes back under the same source id
            assert wait_for(lambda: sink.statuses("gap"), timeout=30)
            status = pipeline.status()
    finally:
        first.stop()
        second.stop()
    kinds = [m.status for m in sink.statuses()]
    assert kinds[:4] == ["connected", "lost", "recovered", "gap"]
    lost, gap = sink.statuses("lost")[0], sink.statuses("gap")[0]
    assert gap.start_lsl == lost.start_lsl  # the gap starts at the last sample before the loss
    assert gap.end_lsl is not None
    assert gap.start_lsl is not None
    assert gap.end_lsl > gap.start_lsl
    assert gap.detail["reason"] == "reconnect"
    assert status["lost"] == 1
    assert status["reconnects"] == 1
    assert status["gaps"] == 1
    assert status["last_gap"]["reason"] == "reconnect"


def test_a_failing_sink_is_stored_shown_and_raised(
    lsl_name: str, make_recording: MakeRecording, wait_for: WaitFor
) -> None:
    def sink(message: Message) -> None:
        if isinstance(message, StatusMessage) and message.status == "connected":
            raise RuntimeError("sink broke")

    with Player(make_recording(2.0), name=lsl_name, loop=True):
        pipeline = StreamPipeline(EEGInlet(lsl_name, resolve_timeout=20), None, sink)
        pipeline.start()
        assert wait_for(lambda: not pipeline.running, timeout=20)
        status = pipeline.status()
        assert status["state"] == "failed"
        assert status["last_error"] == "RuntimeError: sink broke"
        with pytest.raises(RuntimeError, match="sink broke"):
            pipeline.stop()
        pipeline.stop()  # raised once; now clean


def test_start_raises_when_the_stream_cannot_be_found() -> None:
    inlet = EEGInlet(f"absent-{uuid.uuid4().hex}", resolve_timeout=0.5)
    pipeline = StreamPipeline(inlet, None, Messages())
    with pytest.raises(EegstreamError, match="no LSL stream with name 'absent-"):
        pipeline.start()
    assert not pipeline.running


@pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)
def test_live_detection_matches_offline_and_the_markers(
    lsl_name: str, source_id: str, wait_for: WaitFor
) -> None:
    from eegstream.bundle import ModelBundle
    from eegstream.detector import Detector
    from eegstream.engines import load_engine
    from eegstream.simulate import simulate_recording

    rec = simulate_recording(90.0, 7)
    settings = Settings()  # type: ignore[call-arg]
    bundle = ModelBundle.load(settings.model_dir)
    engine = load_engine("onnxruntime", bundle)
    offline = Detector(engine, bundle.features, settings, "offline", clock=None)
    expected = [
        m
        for m in offline.process(rec.data, rec.timestamps) + offline.flush()
        if isinstance(m, ArtifactEvent) and m.phase == "final"
    ]
    sink = Messages()
    # 16x real time: 8-sample chunks as from a headset, 90 s of EEG in under 6 s
    player = Player(rec, name=lsl_name, source_id=source_id, speed=16, wait_for_consumer=30)
    inlet = EEGInlet(lsl_name, source_id=source_id, resolve_timeout=20)
    live = Detector(engine, bundle.features, settings, "live")
    with player, StreamPipeline(inlet, live, sink) as pipeline:
        assert wait_for(lambda: pipeline.status()["samples"] >= rec.n_samples, timeout=60)
        status = pipeline.status()
    t0 = player.start_time
    assert t0 is not None
    got = sink.events()
    assert status["windows"] > 0
    assert status["gaps"] == 0
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


@pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)
def test_killed_replay_detection_resumes_and_no_event_falls_in_the_gap(
    lsl_name: str, source_id: str, tmp_path: Path, wait_for: WaitFor
) -> None:
    from eegstream.bundle import ModelBundle
    from eegstream.detector import Detector
    from eegstream.engines import load_engine
    from eegstream.simulate import simulate_recording

    rec = simulate_recording(120.0, 11)
    npz = tmp_path / "rec.npz"
    np.savez(npz, data=rec.data, timestamps=rec.timestamps, fs=rec.fs)
    settings = Settings()  # type: ignore[call-arg]
    bundle = ModelBundle.load(settings.model_dir)
    detector = Detector(load_engine("onnxruntime", bundle), bundle.features, settings, "k")

    def replay(*start: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", _REPLAY_NPZ, lsl_name, source_id, str(npz), *start],
            stdout=subprocess.DEVNULL,
            env=os.environ.copy(),
        )

    sink = Messages()
    first = replay()
    second: subprocess.Popen[bytes] | None = None
    try:
        inlet = EEGInlet(lsl_name, source_id=source_id, resolve_timeout=30)
        with StreamPipeline(inlet, detector, sink):
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
    kinds = [m.status for m in sink.statuses()]
    assert kinds[:4] == ["connected", "lost", "recovered", "gap"]
    gap = sink.statuses("gap")[0]
    assert gap.start_lsl is not None
    assert gap.end_lsl is not None
    assert gap.end_lsl - gap.start_lsl > 4.99
    events = sink.events()
    assert any(e.offset_lsl <= gap.start_lsl for e in events)  # detection before ...
    assert any(e.onset_lsl >= gap.end_lsl for e in events)  # ... and after the gap
    for e in events:  # none spans or falls inside the gap
        assert e.offset_lsl <= gap.start_lsl or e.onset_lsl >= gap.end_lsl, e
