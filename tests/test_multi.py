"""MultiStreamPipeline: several headsets in one thread, one engine call per tick (issue #8).

Batching is checked without threads first (:func:`~eegstream.detector.classify_together` against each stream's own
detector), then live through real LSL on loopback: two streams with independent events, a stream
that leaves and comes back, discovery, and the service with a websocket filtered by stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pylsl
import pytest
from conftest import CountingEngine, Messages

from eegstream.bundle import ModelBundle
from eegstream.detector import Detector, classify_together
from eegstream.engines import load_engine
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.recording import Recording
from eegstream.live.scheduler import (
    LiveArtifactEvent,
    MultiStreamPipeline,
    StreamSpec,
)
from eegstream.settings import ELECTRODES, MODEL_INDEX, Settings
from eegstream.stream.replay import Player

WaitFor = Callable[..., bool]
MakeRecording = Callable[..., Recording]

pytestmark = pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: eegstream/models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def blinker() -> Recording:
    """A subject who only blinks."""
    from eegstream.simulate import simulate_recording

    return simulate_recording(70.0, 8101, blink_rate=24.0, clench_rate=0.0)


@pytest.fixture(scope="module")
def clencher() -> Recording:
    """A subject who only clenches the jaw."""
    from eegstream.simulate import simulate_recording

    return simulate_recording(70.0, 8102, blink_rate=0.0, clench_rate=15.0)


def offline_finals(
    engine: Engine, bundle: ModelBundle, settings: Settings, rec: Recording
) -> list[ArtifactEvent]:
    det = Detector(engine, bundle.features, settings, "offline", clock=None)
    return [
        m
        for m in det.process(rec.data, rec.timestamps) + det.flush()
        if isinstance(m, ArtifactEvent) and m.phase == "final"
    ]


def assert_same_events(
    got: list[ArtifactEvent], expected: list[ArtifactEvent], t0_got: float, t0_exp: float
) -> None:
    """Same labels in the same order, onsets within one hop (8 samples) of each other."""
    assert [e.label for e in got] == [e.label for e in expected]
    for a, b in zip(got, expected, strict=True):
        assert abs((a.onset_lsl - t0_got) - (b.onset_lsl - t0_exp)) <= 8 / 128 + 1e-9, (a, b)


# --- batching, no threads ---------------------------------------------------------------------------


def test_batching_across_streams_gives_the_same_messages_as_per_stream_inference(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    blinker: Recording,
    clencher: Recording,
) -> None:
    # a third stream with a nearly flat model electrode for 4 s (std 0.05 uV < FLAT_UV): its
    # features have real power, which must be zeroed as the detector's own featurize does
    flat = Recording(blinker.data.copy(), blinker.timestamps + 1000.0, blinker.fs)
    noise = np.random.default_rng(0).normal(0.0, 0.05, 4 * 128)
    flat.data[40 * 128 : 44 * 128, MODEL_INDEX[2]] = 4200.0 + noise
    recs = [blinker, clencher, flat]
    sizes = [8, 5, 21]  # each stream arrives in chunks of its own size
    single = CountingEngine(engine)
    expected = []
    for k, rec in enumerate(recs):
        det = Detector(single, bundle.features, settings, f"s{k}", clock=None)
        msgs: list[Message] = []
        for a in range(0, rec.n_samples, sizes[k]):
            msgs += det.process(rec.data[a : a + sizes[k]], rec.timestamps[a : a + sizes[k]])
        expected.append(msgs + det.flush())

    batched = CountingEngine(engine)
    dets = [Detector(batched, bundle.features, settings, f"s{k}", clock=None) for k in range(3)]
    got: list[list[Message]] = [[], [], []]
    pos = [0, 0, 0]
    rounds = flat_rounds = 0
    while any(p < r.n_samples for p, r in zip(pos, recs, strict=True)):
        for k, rec in enumerate(recs):
            sl = slice(pos[k], pos[k] + sizes[k])
            dets[k].ingest(rec.data[sl], rec.timestamps[sl])
            pos[k] += sizes[k]
        batches = [d.due_windows() for d in dets]
        probs = classify_together(batched, bundle.features, batches)
        for d, b, p in zip(dets, batches, probs, strict=True):
            alone = d.classify(b)  # this stream's own features and engine call
            if alone is None:
                assert p is None
            else:
                assert p is not None
                np.testing.assert_allclose(p, alone, atol=1e-5)
        flat_rounds += bool(batches[2].flat.any())
        for k, (d, b, p) in enumerate(zip(dets, batches, probs, strict=True)):
            got[k] += d.apply(b, p)
        rounds += 1
    for k in range(3):
        got[k] += dets[k].flush()

    assert flat_rounds > 0  # the flat electrode reached the features (and was zeroed alike)
    # every window classified once by classify_together (and once more alone, for comparison)
    assert batched.windows == 2 * single.windows
    assert batched.calls - single.calls <= rounds < single.calls  # one call per round
    assert dets[2].stats["classified"] > 0
    for k in range(3):
        assert [type(m) for m in got[k]] == [type(m) for m in expected[k]]
        assert len([m for m in got[k] if isinstance(m, ArtifactEvent)]) >= 10
        for mine, theirs in zip(got[k], expected[k], strict=True):
            da, db = mine.model_dump(), theirs.model_dump()
            for key, value in db.items():  # batch size may change the last float bits
                if isinstance(value, float):
                    assert da[key] == pytest.approx(value, abs=1e-5), (key, mine, theirs)
                else:
                    assert da[key] == value, (key, mine, theirs)


# --- live, over LSL ----------------------------------------------------------------------------------


def test_two_streams_have_independent_events_matching_per_stream_detection(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    blinker: Recording,
    clencher: Recording,
    wait_for: WaitFor,
) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"eegstream-test-multi-a-{tag}", f"eegstream-test-multi-b-{tag}"]
    recs = [blinker, clencher]
    players = [
        Player(r, name=n, source_id=n, speed=16, wait_for_consumer=30, markers=False)
        for r, n in zip(recs, names, strict=True)
    ]
    sink = Messages()
    counting = CountingEngine(engine)
    pipeline = MultiStreamPipeline(counting, bundle.features, settings, sink, streams=names)
    for p in players:
        p.start()
    try:
        with pipeline:
            assert wait_for(
                lambda: all(
                    s["samples"] >= r.n_samples
                    for s, r in zip(pipeline.status()["streams"].values(), recs, strict=True)
                ),
                timeout=60,
            )
            status = pipeline.status()
            calls = counting.calls  # before stop(), whose final flush may call the engine again
    finally:
        for p in players:
            p.stop()
    assert status["error"] is None
    assert set(status["streams"]) == set(names)
    for name in names:
        assert status["streams"][name]["gaps"] == 0
        assert status["streams"][name]["dropped_windows"] == 0
    sched = status["scheduler"]
    assert sched["windows"] == sum(s["windows"] for s in status["streams"].values())
    # batched across streams; status() may be read while one engine call is in flight (the
    # scheduler counts a call once it returned), so the engine may be one call ahead
    assert sched["engine_calls"] < sched["windows"]
    assert sched["engine_calls"] <= calls <= sched["engine_calls"] + 1
    for name, rec, p, label in zip(names, recs, players, ("blink", "jaw_clench"), strict=True):
        got = sink.events(stream=name)
        assert {e.label for e in got} == {label}  # the other stream's artifacts never leak in
        assert all(e.stream_id == name and e.id.startswith(f"{name}-") for e in got)
        assert p.start_time is not None
        assert_same_events(
            got, offline_finals(engine, bundle, settings, rec), p.start_time, rec.timestamps[0]
        )
        onsets = sink.events("onset", stream=name)
        assert {e.id for e in got} <= {e.id for e in onsets}
        for e in onsets + got:
            assert isinstance(e, LiveArtifactEvent)
            assert e.pulled_unix <= e.detected_unix < e.pulled_unix + 5.0
        # an overload under a busy test machine is reported, and is not the point here
        kinds = [m.status for m in sink.statuses(stream=name) if m.status != "overloaded"]
        assert kinds[0] == "connected"
        assert kinds[-1] == "stopped"
        assert "gap" not in kinds


def test_a_stream_that_leaves_and_returns_resumes_under_its_id_the_other_undisturbed(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    wait_for: WaitFor,
) -> None:
    from eegstream.simulate import simulate_recording

    steady = simulate_recording(100.0, 8103, blink_rate=20.0, clench_rate=10.0)
    leaving = simulate_recording(70.0, 8104, blink_rate=24.0, clench_rate=12.0)
    tag = uuid.uuid4().hex[:8]
    a, b = f"eegstream-test-steady-{tag}", f"eegstream-test-leaving-{tag}"
    pa = Player(steady, name=a, source_id=a, speed=8, wait_for_consumer=30, markers=False)
    pb = Player(leaving, name=b, source_id=b, speed=8, wait_for_consumer=30, markers=False)
    pb2: Player | None = None
    sink = Messages()
    pipeline = MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[a, b])
    pa.start()
    pb.start()
    try:
        with pipeline:
            assert wait_for(lambda: len(sink.events(stream=b)) >= 2, timeout=30)
            pb.stop()  # the outlet vanishes
            assert wait_for(lambda: sink.statuses("lost", stream=b), timeout=15)
            samples_a = pipeline.status()["streams"][a]["samples"]
            before = len(sink.events(stream=b))
            last = sink.statuses("lost", stream=b)[0].start_lsl
            assert last is not None
            # 8x real time stamps run ahead of the clock: continue the timeline 3 s later
            pb2 = Player(leaving, name=b, source_id=b, speed=8, markers=False, start_lsl=last + 3.0)
            pb2.start()
            assert wait_for(lambda: sink.statuses("gap", stream=b), timeout=30)
            assert wait_for(lambda: len(sink.events(stream=b)) >= before + 2, timeout=30)
            assert pipeline.status()["streams"][a]["samples"] > samples_a  # a kept flowing
            assert wait_for(
                lambda: pipeline.status()["streams"][a]["samples"] >= steady.n_samples,
                timeout=60,
            )
            status = pipeline.status()
    finally:
        for p in (pa, pb, pb2):
            if p is not None:
                p.stop()
    assert pipeline.stream_ids == [a, b]  # it came back under its id: no third stream
    assert status["streams"][b]["reconnects"] == 1
    # the steady stream saw nothing of it: no gap, no reconnection, the same events as offline
    kinds_a = [m.status for m in sink.statuses(stream=a)]
    assert kinds_a[0] == "connected"
    assert "gap" not in kinds_a
    assert "recovered" not in kinds_a
    assert status["streams"][a]["gaps"] == 0
    assert status["streams"][a]["reconnects"] == 0
    assert pa.start_time is not None
    assert_same_events(
        sink.events(stream=a),
        offline_finals(engine, bundle, settings, steady),
        pa.start_time,
        steady.timestamps[0],
    )
    # the leaving stream: reported, resumed under its id, ids never repeat, nothing in the gap
    # an overload under a busy test machine is reported, and is not the point here
    kinds = [m.status for m in sink.statuses(stream=b) if m.status != "overloaded"]
    assert kinds[:4] == ["connected", "lost", "recovered", "gap"]
    gap = sink.statuses("gap", stream=b)[0]
    assert gap.start_lsl is not None
    assert gap.end_lsl is not None
    assert gap.end_lsl - gap.start_lsl > 2.9
    events = sink.events(stream=b)
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)
    assert sorted(ids, key=lambda i: int(i.rsplit("-", 1)[1])) == ids
    assert all(e.stream_id == b for e in events)
    assert any(e.onset_lsl >= gap.end_lsl for e in events)
    for e in events:
        assert e.offset_lsl <= gap.start_lsl or e.onset_lsl >= gap.end_lsl, e


def _outlet_without_af4(name: str, stype: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, stype, 13, 128.0, pylsl.cf_float32, name)
    channels = info.desc().append_child("channels")
    for label in ELECTRODES[:-1]:
        channels.append_child("channel").append_child_value("label", label)
    return pylsl.StreamOutlet(info)


def test_discovery_attaches_streams_that_appear_detaches_and_reattaches_them(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    tag = uuid.uuid4().hex[:8]
    stype = f"EEG-test-{tag}"  # only this test's streams match
    one, two, bad = (f"eegstream-test-disc-{k}-{tag}" for k in ("one", "two", "bad"))
    rec = make_recording(20.0)
    sink = Messages()
    pipeline = MultiStreamPipeline(
        engine,
        bundle.features,
        settings,
        sink,
        discover=True,
        stream_type=stype,
        detach_after=1.0,
        discover_interval=0.1,
    )

    def samples(sid: str) -> int:
        s = pipeline.status()["streams"].get(sid)
        return int(s["samples"]) if s is not None else 0

    p1 = Player(rec, name=one, stype=stype, source_id=one, loop=True, markers=False)
    p2 = Player(rec, name=two, stype=stype, source_id=two, loop=True, markers=False)
    p1b: Player | None = None
    outlet = _outlet_without_af4(bad, stype)
    try:
        with pipeline:
            assert pipeline.status()["attached"] == 0
            p1.start()
            assert wait_for(lambda: samples(one) > 0, timeout=20)
            p2.start()
            assert wait_for(lambda: samples(two) > 0, timeout=20)
            assert wait_for(lambda: pipeline.status()["rejected"], timeout=10)
            p1.stop()
            assert wait_for(
                lambda: pipeline.status()["streams"][one]["state"] == "detached", timeout=15
            )
            n_two = samples(two)
            p1b = Player(rec, name=one, stype=stype, source_id=one, loop=True, markers=False)
            p1b.start()
            assert wait_for(
                lambda: pipeline.status()["streams"][one]["state"] == "connected", timeout=20
            )
            n_one = samples(one)
            assert wait_for(lambda: samples(one) > n_one + 64, timeout=20)
            assert samples(two) > n_two  # undisturbed meanwhile
            status = pipeline.status()
    finally:
        for p in (p1, p2, p1b):
            if p is not None:
                p.stop()
        del outlet
    assert sorted(pipeline.stream_ids) == sorted([one, two])  # re-attached under its id
    assert status["error"] is None
    (why,) = status["rejected"].values()
    assert "AF4" in why
    # an overload under a busy test machine is reported, and is not the point here
    kinds = [m.status for m in sink.statuses(stream=one) if m.status != "overloaded"]
    assert kinds[:4] == ["connected", "lost", "stopped", "connected"]
    detached = sink.statuses("stopped", stream=one)[0]
    assert detached.detail["detached"] is True
    assert [m.status for m in sink.statuses(stream=two)] == ["connected", "stopped"]


# --- errors and lifecycle ----------------------------------------------------------------------------


def test_errors_name_the_argument_and_what_to_do(
    engine: Engine, bundle: ModelBundle, settings: Settings, lsl_name: str
) -> None:
    with pytest.raises(EegstreamError, match=r"poll_interval must be a number of seconds > 0"):
        MultiStreamPipeline(engine, bundle.features, settings, Messages(), poll_interval=0.0)
    pipeline = MultiStreamPipeline(engine, bundle.features, settings, Messages())
    with pytest.raises(EegstreamError, match=r"remove: no stream 'nope'; attached: none"):
        pipeline.remove("nope")
    quick = settings.model_copy(update={"resolve_timeout": 0.5})
    missing = MultiStreamPipeline(
        engine, bundle.features, quick, Messages(), streams=[StreamSpec(name=lsl_name)]
    )
    with pytest.raises(EegstreamError, match=rf"no LSL stream with name '{lsl_name}'"):
        missing.start()
    assert not missing.running
    missing.stop()  # nothing to stop: fine


def test_add_and_remove_at_runtime_and_duplicate_ids(
    engine: Engine,
    bundle: ModelBundle,
    settings: Settings,
    make_recording: MakeRecording,
    wait_for: WaitFor,
) -> None:
    tag = uuid.uuid4().hex[:8]
    x, y = f"eegstream-test-add-x-{tag}", f"eegstream-test-add-y-{tag}"
    rec = make_recording(10.0)
    sink = Messages()
    px = Player(rec, name=x, source_id=x, loop=True, markers=False)
    py = Player(rec, name=y, source_id=y, loop=True, markers=False)
    with px, py, MultiStreamPipeline(engine, bundle.features, settings, sink) as pipeline:
        assert pipeline.add(x) == x
        with pytest.raises(EegstreamError, match=rf"stream id '{x}' is already attached"):
            pipeline.add(StreamSpec(name=y, stream_id=x))
        with pytest.raises(
            EegstreamError, match=r"is already attached as .*attach each stream once"
        ):
            pipeline.add(StreamSpec(name=x, stream_id="another"))
        assert pipeline.add(StreamSpec(name=y, stream_id="why")) == "why"
        assert wait_for(
            lambda: all(s["samples"] > 0 for s in pipeline.status()["streams"].values()),
            timeout=20,
        )
        assert wait_for(lambda: pipeline.status()["streams"][x]["windows"] > 0, timeout=20)
        windows_x = pipeline.status()["streams"][x]["windows"]
        pipeline.remove(x)
        assert list(pipeline.status()["streams"]) == ["why"]
        assert wait_for(lambda: pipeline.status()["streams"]["why"]["samples"] >= 64, timeout=20)
        data, times = pipeline.latest(0.5)  # the first attached stream now: "why"
        assert data.shape == (64, 14)
        assert np.all(np.diff(times) > 0)
        assert pipeline.add(x) == x  # back under its id with its detector: ids go on
        assert pipeline.status()["streams"][x]["windows"] >= windows_x > 0
    assert [m.status for m in sink.statuses(stream=x)] == [
        "connected",
        "stopped",
        "connected",
        "stopped",
    ]
    assert sink.statuses("stopped", stream=x)[0].detail == {"reason": "removed"}
    assert [m.status for m in sink.statuses(stream="why")] == ["connected", "stopped"]
    assert not pipeline.running


# --- the service -------------------------------------------------------------------------------------


def test_service_lists_streams_and_filters_the_websocket_by_stream(
    bundle: ModelBundle, blinker: Recording, clencher: Recording, wait_for: WaitFor
) -> None:
    from websockets.asyncio.client import connect

    from eegstream.service.api import create_app
    from eegstream.service.detection import pipeline_factory
    from eegstream.service.run import BackgroundServer

    tag = uuid.uuid4().hex[:8]
    names = [f"eegstream-test-svc-a-{tag}", f"eegstream-test-svc-b-{tag}"]
    settings = Settings(  # type: ignore[call-arg]
        port=0, marker_outlet=False, stream_name=names, backend="onnxruntime", resolve_timeout=20
    )
    eng = load_engine("onnxruntime", bundle)
    eng.warmup()
    players = [
        Player(r, name=n, source_id=n, speed=8, markers=False, loop=True)
        for r, n in zip((blinker, clencher), names, strict=True)
    ]
    for p in players:
        p.start()
    try:
        app = create_app(settings, pipeline_factory(settings, bundle, eng))
        with BackgroundServer(app, settings) as server:

            async def only(stream: str, n: int) -> list[dict[str, Any]]:
                got: list[dict[str, Any]] = []
                async with connect(
                    f"{server.ws_url}/ws/events?since=0&stream={stream}", proxy=None
                ) as ws:
                    async with asyncio.timeout(60):
                        while sum(m["type"] == "artifact" for m in got) < n:
                            msg = json.loads(await ws.recv())
                            if msg["type"] in ("artifact", "status"):
                                got.append(msg)
                return got

            async def signal(query: str) -> tuple[dict[str, Any], dict[str, Any]]:
                async with connect(f"{server.ws_url}/ws/signal{query}", proxy=None) as ws:
                    async with asyncio.timeout(20):
                        info = json.loads(await ws.recv())
                        return info, json.loads(await ws.recv())

            got = asyncio.run(only(names[1], 4))
            status = httpx.get(server.url + "/status").json()
            info, frame = asyncio.run(signal(f"?stream={names[1]}"))
            default_info, _ = asyncio.run(signal(""))

            async def silent(query: str) -> bool:
                """No signal frame within 1.5 s (the stream asked for does not exist)."""
                async with connect(f"{server.ws_url}/ws/signal{query}", proxy=None) as ws:
                    await ws.recv()  # signal_info
                    try:
                        await asyncio.wait_for(ws.recv(), 1.5)
                    except TimeoutError:
                        return True
                    return False

            unknown_is_silent = asyncio.run(silent("?stream=no-such-headset"))
    finally:
        for p in players:
            p.stop()
    assert {m["stream_id"] for m in got} == {names[1]}
    artifacts = [m for m in got if m["type"] == "artifact"]
    assert {m["label"] for m in artifacts} == {"jaw_clench"}
    assert all(m["pulled_unix"] <= m["detected_unix"] for m in artifacts)
    assert [s["stream_id"] for s in status["streams"]] == sorted(names)
    assert set(status["pipeline"]["streams"]) == set(names)
    assert status["pipeline"]["engine"] == "onnxruntime"
    assert status["model"]["sha256"] == bundle.sha256
    # the dashboard's signal of the stream asked for (default: the first attached one)
    assert info["type"] == "signal_info"
    assert info["stream"] == names[1]
    assert frame["type"] == "signal"
    assert len(frame["data"]) == 14
    assert default_info["stream"] is None
    assert unknown_is_silent  # the stream asked for is the one read, not the first


def test_serve_with_discover_attaches_what_appears_and_lists_it(
    bundle: ModelBundle, make_recording: MakeRecording, wait_for: WaitFor
) -> None:
    from eegstream.service.api import create_app, get_service
    from eegstream.service.detection import preload
    from eegstream.service.run import BackgroundServer

    tag = uuid.uuid4().hex[:8]
    stype = f"EEG-serve-{tag}"  # only this test's streams match
    names = [f"eegstream-test-serve-disc-{k}-{tag}" for k in ("a", "b")]
    settings = Settings(  # type: ignore[call-arg]
        port=0, marker_outlet=False, discover=True, stream_type=stype, backend="onnxruntime"
    )
    rec = make_recording(10.0)
    players = [
        Player(rec, name=n, stype=stype, source_id=n, loop=True, markers=False) for n in names
    ]
    app = create_app(settings, preload(settings))  # nothing to resolve up front: starts at once
    with BackgroundServer(app, settings) as server:

        def http(path: str) -> httpx.Response:
            return httpx.get(server.url + path)

        def states() -> dict[str, str]:
            return {s["stream_id"]: s["status"] for s in http("/status").json()["streams"]}

        def listed() -> list[str]:
            return list(states())

        assert listed() == []
        with players[0], players[1]:
            assert wait_for(lambda: listed() == sorted(names), timeout=30)
            assert wait_for(
                lambda: all(
                    s["samples"] > 64
                    for s in httpx.get(server.url + "/status")
                    .json()["pipeline"]["streams"]
                    .values()
                ),
                timeout=20,
            )
            assert wait_for(lambda: http("/ready").status_code == 200, timeout=10)
            # what the pipeline reports when it detaches a stream gone for good (30 s lost):
            # the stream is listed as detached and does not make the service unready
            gone = {"reason": "detached: lost for 30.0 s", "detached": True}
            get_service(app).sink(
                StatusMessage(stream_id=names[0], status="stopped", detail=gone, unix_time=0.0)
            )
            assert wait_for(lambda: states().get(names[0]) == "detached", timeout=10)
            assert states()[names[1]] == "connected"
            assert http("/ready").status_code == 200


def test_stream_specs_follow_the_serve_flags() -> None:
    from eegstream.service.detection import stream_specs

    def specs(**kw: Any) -> list[tuple[str | None, str | None, str | None]]:
        s = Settings(**kw)
        return [(x.name, x.stype, x.source_id) for x in stream_specs(s)]

    assert specs() == [(None, "EEG", None)]  # one headset, found by type
    assert specs(discover=True) == []  # discovery only
    assert specs(stream_name=["a", "b"], discover=True) == [("a", "EEG", None), ("b", "EEG", None)]
    assert specs(stream_name=["a"], source_id="x") == [("a", "EEG", "x")]
    with pytest.raises(EegstreamError, match=r"--source-id x names one stream .* 2 times"):
        specs(stream_name=["a", "b"], source_id="x")


def test_live_events_carry_the_interpolated_flag_like_offline_detection(
    engine: Engine, bundle: ModelBundle, settings: Settings, wait_for: WaitFor
) -> None:
    import dataclasses

    from eegstream.offline import flag_events
    from eegstream.simulate import simulate_recording

    rec = simulate_recording(60.0, 8105, blink_rate=24.0, clench_rate=8.0)
    interpolated = np.zeros(rec.n_samples, dtype=bool)
    for marker in rec.markers[::2]:  # every other artifact: 3 samples filled in by the source
        interpolated[marker.sample + 6 : marker.sample + 9] = True
    rec = dataclasses.replace(rec, interpolated=interpolated)
    expected = flag_events(offline_finals(engine, bundle, settings, rec), rec)
    flagged = [e for e in expected if "interpolated" in e.flags]
    assert 0 < len(flagged) < len(expected)  # both kinds, so the comparison means something

    name = f"eegstream-test-interp-{uuid.uuid4().hex[:8]}"
    player = Player(rec, name=name, source_id=name, speed=16, wait_for_consumer=30, markers=False)
    sink = Messages()
    with player, MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[name]) as p:
        assert wait_for(lambda: p.status()["streams"][name]["samples"] >= rec.n_samples, timeout=60)
    got = sink.events(stream=name)
    assert player.start_time is not None
    assert_same_events(got, expected, player.start_time, rec.timestamps[0])
    assert [e.flags for e in got] == [e.flags for e in expected]


def test_a_source_clock_set_back_is_a_clock_jump_status_and_the_lag_stays_small(
    engine: Engine, bundle: ModelBundle, settings: Settings, blinker: Recording, wait_for: WaitFor
) -> None:
    """Before: stamps set back 5 s gave no status, no log line and a 6 s lag in ``/status``."""
    name = f"eegstream-test-multi-clock-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "EEG", 14, 128, pylsl.cf_float32, name)
    channels = info.desc().append_child("channels")
    for label in ELECTRODES:
        channels.append_child("channel").append_child_value("label", label)
    outlet = pylsl.StreamOutlet(info)
    data = blinker.data.astype(np.float32)
    stop = threading.Event()

    def push() -> None:  # real time, 8-sample chunks; the clock goes back 5 s after 3 s
        t0, start = time.monotonic(), pylsl.local_clock()
        for k in range(16 * 7):
            if stop.wait(max(0.0, t0 + k * 8 / 128 - time.monotonic())):
                return
            first = start + k * 8 / 128 - (5.0 if k >= 48 else 0.0)
            outlet.push_chunk(data[k * 8 : k * 8 + 8], [first + i / 128 for i in range(8)])

    sink = Messages()
    sender = threading.Thread(target=push, daemon=True)
    with MultiStreamPipeline(engine, bundle.features, settings, sink, streams=[name]) as pipeline:
        assert outlet.wait_for_consumers(10)
        sender.start()
        try:
            assert wait_for(lambda: sink.statuses("clock_jump"), timeout=20)
            assert wait_for(lambda: pipeline.status()["streams"][name]["samples"] >= 6 * 128, 20)
            stream = pipeline.status()["streams"][name]
        finally:
            stop.set()
            sender.join(10)
    jump = sink.statuses("clock_jump")
    assert len(jump) == 1
    assert jump[0].detail["jump_s"] == pytest.approx(-5.0, abs=0.05)
    assert "gap" not in [m.status for m in sink.statuses()]
    assert stream["clock_jumps"] == 1
    assert stream["lag_s"] is not None
    assert stream["lag_s"] < 1.0
    assert stream["state"] == "connected"


def test_a_service_that_falls_behind_says_overloaded_then_catches_up(
    engine: Engine, bundle: ModelBundle, settings: Settings, blinker: Recording, wait_for: WaitFor
) -> None:
    """Before: falling behind said nothing (at 128 headsets most events were silently lost).

    One tick a second pulls at most 256 samples while the replay sends 512 a second: the backlog
    passes 1 s and keeps growing, which is one ``overloaded`` status; when the replay ends it is
    worked off and ``/status`` no longer counts the stream as overloaded.
    """
    name = f"eegstream-test-multi-overload-{uuid.uuid4().hex[:8]}"
    rec = Recording(
        data=blinker.data[: 128 * 16], timestamps=blinker.timestamps[: 128 * 16], fs=128
    )
    sink = Messages()
    player = Player(rec, name=name, source_id=name, speed=4, wait_for_consumer=30, markers=False)
    pipeline = MultiStreamPipeline(
        engine, bundle.features, settings, sink, streams=[name], poll_interval=1.0
    )
    with player, pipeline:
        assert wait_for(lambda: sink.statuses("overloaded"), timeout=30)
        assert pipeline.status()["scheduler"]["overloaded"] == 1
        assert wait_for(lambda: pipeline.status()["scheduler"]["overloaded"] == 0, timeout=60)
        scheduler = pipeline.status()["scheduler"]
    over = sink.statuses("overloaded")
    assert len(over) == 1
    assert over[0].detail["backlog_samples"] >= 128
    assert scheduler["overloads"] == 1
