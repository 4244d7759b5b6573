"""The scheduler's state machine without threads or LSL: sessions, a fake clock, in-memory inlets.

Each test builds :class:`~eegstream.live.session.StreamSession` objects around an inlet that
hands out prepared :class:`~eegstream.stream.inlet.Chunk` objects and
:class:`~eegstream.stream.inlet.InletEvent` objects, with the real detector and the committed
model, and drives them through :class:`~eegstream.live.ticker.Ticker` (the tick across sessions)
by hand, reading the time from a clock that moves only when told (``live/memory.py``).
Discovery's bookkeeping (rejected, closed, retried) runs on resolver results made by hand.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pylsl
import pytest
from conftest import CountingEngine, Messages

from eegstream.bundle import ModelBundle
from eegstream.detector import Detector
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError, MissingChannelsError, StreamGoneError
from eegstream.events import ArtifactEvent, StatusMessage
from eegstream.io.recording import Recording
from eegstream.live.discovery import Discovery
from eegstream.live.memory import UNIX_OFFSET, MemoryInlet, StepClock
from eegstream.live.registry import StreamRegistry
from eegstream.live.scheduler import LiveArtifactEvent
from eegstream.live.session import StreamSession
from eegstream.live.ticker import Ticker
from eegstream.settings import ELECTRODES, Settings
from eegstream.stream.inlet import Chunk, Gap, InletEvent, StreamDescription

pytestmark = pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: eegstream/models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)

F64 = npt.NDArray[np.float64]
FakeClock = StepClock  #: time moves only when a test says so


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def blinker() -> Recording:
    """A subject who only blinks, on an LSL-like clock starting at 100 s."""
    from eegstream.simulate import simulate_recording

    rec = simulate_recording(70.0, 8101, blink_rate=24.0, clench_rate=0.0)
    return Recording(rec.data, rec.timestamps - rec.timestamps[0] + 100.0, rec.fs)


@pytest.fixture(scope="module")
def clencher() -> Recording:
    """A subject who only clenches the jaw, on the same clock."""
    from eegstream.simulate import simulate_recording

    rec = simulate_recording(70.0, 8102, blink_rate=0.0, clench_rate=15.0)
    return Recording(rec.data, rec.timestamps - rec.timestamps[0] + 100.0, rec.fs)


def make_session(
    name: str, engine: Engine, bundle: ModelBundle, settings: Settings, clock: FakeClock
) -> tuple[StreamSession, MemoryInlet, Messages]:
    inlet = MemoryInlet(name)
    sink = Messages()
    det = Detector(engine, bundle.features, settings, name, clock=None)  # the data clock
    return StreamSession(name, f"source:src-{name}", inlet, det, sink, clock=clock), inlet, sink


def chunk_of(rec: Recording, a: int, b: int, data: F64 | None = None) -> Chunk:
    x = rec.data[a:b] if data is None else data
    return Chunk(x, rec.timestamps[a:b], nonfinite=int((~np.isfinite(x)).any(axis=1).sum()))


def finals(messages: list[object]) -> list[tuple[str, str, float, float]]:
    return [
        (m.id, m.label, m.onset_lsl, m.offset_lsl)
        for m in messages
        if isinstance(m, ArtifactEvent) and m.phase == "final"
    ]


def test_two_sessions_give_the_offline_events_with_one_engine_call_per_tick(
    engine: Engine, bundle: ModelBundle, settings: Settings, blinker: Recording, clencher: Recording
) -> None:
    clock = FakeClock(100.0)
    counting = CountingEngine(engine)
    ticker = Ticker(counting, bundle.features, clock=clock)
    a, inlet_a, sink_a = make_session("a", counting, bundle, settings, clock)
    b, inlet_b, sink_b = make_session("b", counting, bundle, settings, clock)
    ticker.attach(a)
    ticker.attach(b)
    pulls: dict[float, float] = {}  # last timestamp of each chunk -> unix time of its pull
    for start in range(0, blinker.n_samples, 16):  # 16 samples per tick (8 ms of fake time each)
        inlet_a.feed(chunk_of(blinker, start, start + 16))
        inlet_b.feed(chunk_of(clencher, start, start + 16))
        clock.t = float(blinker.timestamps[min(start + 15, blinker.n_samples - 1)]) + 0.01
        pulls[float(blinker.timestamps[min(start + 15, blinker.n_samples - 1)])] = clock.unix()
        ticker.tick()
    ticker.stop_all(report=True)

    for sink, rec, sid in ((sink_a, blinker, "a"), (sink_b, clencher, "b")):
        det = Detector(engine, bundle.features, settings, sid, clock=None)
        expected = finals(det.process(rec.data, rec.timestamps) + det.flush())
        assert len(expected) >= 3
        assert finals(sink.items) == expected
        events = [m for m in sink.items if isinstance(m, ArtifactEvent)]
        assert all(isinstance(m, LiveArtifactEvent) for m in events)
        assert {m.pulled_unix for m in events} <= set(pulls.values())
        assert [m.status for m in sink.statuses()][-1] == "stopped"
    assert {m.label for m in sink_a.events()} == {"blink"}
    assert {m.label for m in sink_b.events()} == {"jaw_clench"}
    # one engine call per tick for both streams, and the counters agree with it
    assert ticker.ticks == len(pulls)
    assert counting.calls == ticker.engine_calls <= ticker.ticks
    windows = a.detector.stats["windows"] + b.detector.stats["windows"]
    assert ticker.windows == windows > ticker.engine_calls
    assert ticker.largest_batch == 4  # 16 samples per tick, hop 8: two windows per stream
    assert a.messages == len(sink_a.items)
    assert not a.active
    assert inlet_a.disconnects == 1


def test_lost_closes_the_open_event_then_the_stream_is_detached(
    engine: Engine, bundle: ModelBundle, settings: Settings, blinker: Recording
) -> None:
    clock = FakeClock(100.0)
    ticker = Ticker(engine, bundle.features, detach_after=30.0, clock=clock)
    s, inlet, sink = make_session("a", engine, bundle, settings, clock)
    ticker.attach(s)
    start = 0
    while len(sink.events("onset")) == len(sink.events()):  # until an onset awaits its final
        assert start < blinker.n_samples, "no event opened"
        inlet.feed(chunk_of(blinker, start, start + 8))
        ticker.tick()
        start += 8
    assert s.detector.builder.open
    n_finals = len(sink.events())
    last = float(blinker.timestamps[start - 1])
    clock.t = last + 2.0
    inlet.post(InletEvent("lost", last, inlet.description, "no data for 2.0 s"))
    ticker.tick()

    new = sink.items[-2:]
    assert isinstance(new[0], ArtifactEvent)
    assert new[0].phase == "final"
    assert new[0].offset_lsl <= last
    assert len(sink.events()) == n_finals + 1
    assert isinstance(new[1], StatusMessage)
    assert new[1].status == "lost"
    assert new[1].start_lsl == last
    assert new[1].detail == {"reason": "no data for 2.0 s", "stream": str(inlet.description)}
    assert new[1].unix_time == UNIX_OFFSET + last + 2.0
    assert not s.detector.builder.open
    assert s.lost_since == last + 2.0

    ticker.housekeeping(clock.monotonic())  # lost for 0 s
    clock.t += 30.5
    ticker.housekeeping(clock.monotonic())  # lost for 30.5 s > detach_after
    stopped = sink.items[-1]
    assert isinstance(stopped, StatusMessage)
    assert stopped.status == "stopped"
    assert stopped.detail == {"reason": "detached: lost for 30.5 s", "detached": True}
    assert s.state == "detached"
    assert s not in ticker.active
    assert inlet.disconnects == 1
    assert s.status()["state"] == "detached"
    assert s.status()["lag_s"] is None


def test_a_gap_inside_a_chunk_is_reported_as_a_gap_status(
    engine: Engine, bundle: ModelBundle, settings: Settings, blinker: Recording
) -> None:
    clock = FakeClock(200.0)
    ticker = Ticker(engine, bundle.features, clock=clock)
    s, inlet, sink = make_session("a", engine, bundle, settings, clock)
    ticker.attach(s)
    data = blinker.data[:256]
    ts = blinker.timestamps[:256].copy()
    ts[100:] += 0.5  # 64 samples missing before sample 100
    gap = Gap(100, float(ts[99]), float(ts[100]), 64, "timestamps")
    inlet.feed(Chunk(data, ts, gaps=(gap,)))
    ticker.tick()

    gaps = sink.statuses("gap")
    assert len(gaps) == 1
    detail = {"missing_samples": 64, "seconds": round(float(ts[100] - ts[99]), 6)}
    assert gaps[0].detail == {**detail, "reason": "timestamps"}
    assert (gaps[0].start_lsl, gaps[0].end_lsl) == (float(ts[99]), float(ts[100]))
    assert gaps[0].unix_time == UNIX_OFFSET + 200.0
    status = s.status()
    assert status["last_gap"] == {"start_lsl": ts[99], "end_lsl": ts[100], **gaps[0].detail}
    assert status["samples"] == 256
    assert status["gaps"] == 1
    assert s.detector.stats["samples"] == 256
    assert status["lag_s"] == pytest.approx(200.0 - float(ts[-1]))
    clock.t += 5.0
    assert s.status()["uptime_s"] == pytest.approx(5.0)


def test_overload_needs_a_backlog_that_does_not_shrink_at_two_checks(
    engine: Engine, bundle: ModelBundle, settings: Settings
) -> None:
    clock = FakeClock(0.0)
    ticker = Ticker(engine, bundle.features, clock=clock)
    s, inlet, sink = make_session("a", engine, bundle, settings, clock)
    ticker.attach(s)

    def check(backlog: int) -> list[str]:
        clock.t += 1.0
        inlet.waiting = backlog
        before = len(sink.items)
        ticker.housekeeping(clock.monotonic())
        return [m.status for m in sink.items[before:] if isinstance(m, StatusMessage)]

    assert check(300) == []  # a burst after connecting: one check only
    assert check(150) == []  # it shrinks: draining, not behind
    assert check(20) == []
    assert check(200) == []
    assert check(200) == ["overloaded"]  # 1 s or more at two checks, not shrinking
    assert sink.statuses("overloaded")[0].detail == {
        "backlog_samples": 200,
        "reason": "samples arrive faster than processed",
    }
    assert ticker.overloads == 1
    assert s.overloaded
    assert ticker.figures([s])["overloaded"] == 1
    assert check(400) == []  # once per episode
    clock.t += 0.5  # checks less than a second apart do nothing
    inlet.waiting = 0
    ticker.housekeeping(clock.monotonic())
    assert s.overloaded
    assert s.backlog == 400
    assert check(10) == []
    assert not s.overloaded
    assert check(200) == []
    assert check(300) == ["overloaded"]
    assert ticker.overloads == 2
    assert s.status()["backlog_samples"] == 300


def test_nan_reports_are_rate_limited_by_the_clock(
    engine: Engine, bundle: ModelBundle, settings: Settings, blinker: Recording
) -> None:
    clock = FakeClock(50.0)
    ticker = Ticker(engine, bundle.features, clock=clock)
    s, inlet, sink = make_session("a", engine, bundle, settings, clock)
    ticker.attach(s)
    af3, o2 = ELECTRODES.index("AF3"), ELECTRODES.index("O2")

    def feed_nan(a: int, b: int, column: int) -> None:
        x = blinker.data[a:b].copy()
        x[2:5, column] = np.nan  # 3 samples
        inlet.feed(chunk_of(blinker, a, b, x))
        ticker.tick()

    feed_nan(0, 16, af3)
    s.report_nan(clock.monotonic())
    nans = sink.statuses("nan")
    assert len(nans) == 1
    assert nans[0].detail == {"samples": 3, "total": 3}
    assert nans[0].electrodes == ["AF3"]
    assert (nans[0].start_lsl, nans[0].end_lsl) == (blinker.timestamps[2], blinker.timestamps[4])

    clock.t += 0.5
    feed_nan(16, 32, o2)
    s.report_nan(clock.monotonic())
    assert len(sink.statuses("nan")) == 1  # half a second after the last: held back
    clock.t += 0.25
    feed_nan(32, 48, af3)
    s.report_nan(clock.monotonic())
    assert len(sink.statuses("nan")) == 1
    clock.t += 0.25  # a second after the last report
    s.report_nan(clock.monotonic())
    nans = sink.statuses("nan")
    assert len(nans) == 2
    assert nans[1].detail == {"samples": 6, "total": 9}
    assert nans[1].electrodes == ["AF3", "O2"]
    assert (nans[1].start_lsl, nans[1].end_lsl) == (blinker.timestamps[18], blinker.timestamps[36])
    clock.t += 5.0
    s.report_nan(clock.monotonic())
    assert len(sink.statuses("nan")) == 2  # nothing new: nothing to say


def test_a_failing_stream_is_stopped_and_the_others_carry_on(
    engine: Engine, bundle: ModelBundle, settings: Settings, blinker: Recording
) -> None:
    clock = FakeClock(100.0)
    ticker = Ticker(engine, bundle.features, clock=clock)
    a, inlet_a, sink_a = make_session("a", engine, bundle, settings, clock)
    b, inlet_b, sink_b = make_session("b", engine, bundle, settings, clock)
    ticker.attach(a)
    ticker.attach(b)
    inlet_a.fail_with = EegstreamError("the stream came back without AF4")
    inlet_b.feed(chunk_of(blinker, 0, 128))
    ticker.tick()

    assert ticker.active == [b]
    assert a.state == "failed"
    assert inlet_a.disconnects == 1
    stopped = sink_a.statuses("stopped")
    assert [m.detail for m in stopped] == [
        {"error": "EegstreamError: the stream came back without AF4"}
    ]
    assert a.status()["last_error"] == "EegstreamError: the stream came back without AF4"
    assert b.state == "connected"
    assert b.detector.stats["samples"] == 128
    assert ticker.windows == b.detector.stats["windows"] == 1 + (128 - 64) // settings.hop
    assert not sink_b.statuses()


class OpeningInlet(MemoryInlet):
    """An in-memory inlet for a stream the resolver found; ``connect`` raises ``error`` if set."""

    def __init__(self, desc: StreamDescription, error: Exception | None) -> None:
        super().__init__(desc.name)
        self.description = desc
        self.error = error

    def connect(self) -> MemoryInlet:
        if self.error is not None:
            raise self.error
        return super().connect()


def test_discovery_lists_rejected_streams_skips_closed_ones_and_retries_both_later(
    engine: Engine, bundle: ModelBundle, settings: Settings
) -> None:
    clock = FakeClock(100.0)
    registry = StreamRegistry(
        lambda sid: Detector(engine, bundle.features, settings, sid, clock=None),
        Messages(),
        clock=clock,
    )
    attached: list[StreamSession] = []
    errors: dict[str, Exception | None] = {
        "bad": MissingChannelsError("stream bad", ["AF3"], ["F7"]),
        "gone": StreamGoneError("the outlet closed"),
        "good": None,
    }
    opened: list[str] = []

    def open_inlet(info: pylsl.StreamInfo, desc: StreamDescription) -> OpeningInlet:
        opened.append(desc.name)
        return OpeningInlet(desc, errors[desc.name])

    finder = Discovery(
        registry,
        attached.append,
        stream_type="EEG",
        interval=0.5,
        resolve_timeout=1.0,
        max_chunk=256,
        clock=clock,
        open_inlet=open_inlet,
    )
    infos = {n: pylsl.StreamInfo(n, "eeg", 14, 128.0, "float32", f"src-{n}") for n in errors}
    for info in infos.values():
        info.reset_uid()  # what an outlet does: each stream its own uid
    names = {n: str(StreamDescription.from_info(i)) for n, i in infos.items()}
    for info in infos.values():
        finder.consider(info)
    assert sorted(opened) == ["bad", "gone", "good"]
    assert [s.stream_id for s in attached] == ["good"]
    # rejected: listed with the reason; closed before it could be opened: not listed
    assert list(finder.rejected()) == [names["bad"]]
    assert "AF3" in finder.rejected()[names["bad"]]

    clock.t += 29.0  # within the retry period: nobody is opened again, the good one is claimed
    for info in infos.values():
        finder.consider(info)
    assert len(opened) == 3

    clock.t += 2.0  # past it: both are tried again; both open now
    errors["bad"] = errors["gone"] = None
    for info in infos.values():
        finder.consider(info)
    assert sorted(opened[3:]) == ["bad", "gone"]
    assert sorted(s.stream_id for s in attached) == ["bad", "gone", "good"]
    assert finder.rejected() == {}
