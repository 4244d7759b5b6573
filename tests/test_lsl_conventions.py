"""LSL conventions other senders follow (issue #17): type case, units, fewer electrodes, markers.

Real liblsl on loopback throughout; the end-to-end test replays a recording with MNE-LSL's
``PlayerLSL`` (type ``eeg``, samples in volts, unit ``0``) into the live pipeline and compares
its events with offline detection of the same recording.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import pylsl
import pytest
from conftest import Messages

from eegstream.bundle import ModelBundle
from eegstream.engines.base import Engine
from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.events import ArtifactEvent, StatusMessage
from eegstream.io.recording import Recording
from eegstream.live.scheduler import MultiStreamPipeline, StreamSpec
from eegstream.service.markers_out import MarkerOutlet
from eegstream.settings import ELECTRODES, MODEL_ELECTRODES, Settings
from eegstream.stream.inlet import (
    EEGInlet,
    map_channels,
    stream_predicate,
    types_match,
    unit_scale,
)

WaitFor = Callable[..., bool]
OPTIONAL = tuple(e for e in ELECTRODES if e not in MODEL_ELECTRODES)


def _outlet(
    name: str,
    labels: Sequence[str],
    units: Sequence[str | None] | None = None,
    *,
    stype: str = "EEG",
    source_id: str = "",
) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, stype, len(labels), 128.0, pylsl.cf_double64, source_id)
    channels = info.desc().append_child("channels")
    for k, label in enumerate(labels):
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        if units is not None and units[k] is not None:
            ch.append_child_value("unit", units[k])
    return pylsl.StreamOutlet(info)


def _pull_all(inlet: EEGInlet, outlet: pylsl.StreamOutlet, data: np.ndarray) -> np.ndarray:
    """Push ``data`` in 8-sample chunks until the inlet has every sample; what it delivered."""
    got: list[np.ndarray] = []
    n, pushed, deadline = 0, 0, time.monotonic() + 20
    while n < data.shape[0] and time.monotonic() < deadline:
        if pushed < data.shape[0]:
            outlet.push_chunk(data[pushed : pushed + 8])
            pushed += 8
        chunk = inlet.pull(0.02)
        assert chunk.nonfinite == 0  # absent electrodes are NaN by design, never counted
        if chunk.n:
            got.append(chunk.data.copy())
            n += chunk.n
    assert n == data.shape[0], f"received {n} of {data.shape[0]} samples"
    return np.concatenate(got)


# --- units and channel maps (no LSL) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        (None, 1.0), ("", 1.0), ("microvolts", 1.0), ("Microvolts", 1.0), ("uV", 1.0),
        ("\u00b5V", 1.0), ("\u03bcV", 1.0), ("millivolts", 1e3), ("mV", 1e3), ("volts", 1e6),
        ("V", 1e6), ("0", 1e6), ("-3", 1e3), ("-6", 1.0),
    ],
)  # fmt: skip
def test_units_scale_to_microvolts(unit: str | None, factor: float) -> None:
    assert unit_scale(unit, "stream 's' channel AF3") == factor


@pytest.mark.parametrize("unit", ["furlongs", "MV", "nanovolts", "12"])
def test_an_unknown_unit_is_one_clear_error(unit: str) -> None:
    with pytest.raises(
        EegstreamError,
        match=rf"stream 's' channel AF3 has unit '{unit}', which eegstream does not know; "
        r"accepted units: microvolts, microvolt, uV, .*millivolts, .*mV, volts, volt, V ",
    ):
        unit_scale(unit, "stream 's' channel AF3")


def test_only_the_model_electrodes_are_required() -> None:
    labels = [*MODEL_ELECTRODES[::-1], "Counter"]
    cmap = map_channels(labels, "stream 'm'", ["V"] * len(labels))
    assert cmap.absent == OPTIONAL == ("P7", "O1", "O2", "P8")
    for k, e in enumerate(ELECTRODES):
        if e in MODEL_ELECTRODES:
            assert labels[cmap.electrodes[k]] == e
            assert cmap.scale[k] == 1e6
        else:
            assert np.isnan(cmap.scale[k])
    assert not cmap.present[[ELECTRODES.index(e) for e in OPTIONAL]].any()
    # AF3 missing (O1 too): the error names the model electrode only
    without = [e for e in ELECTRODES if e not in ("AF3", "O1")]
    with pytest.raises(
        MissingChannelsError, match=r"stream 'm' has no channel AF3 \(detection needs AF3\); "
    ):
        map_channels(without, "stream 'm'")


def test_stream_types_match_in_any_case() -> None:
    assert types_match("EEG", "eeg")
    assert types_match("Eeg", "EEG")
    assert not types_match("EEG", "EMG")
    assert stream_predicate("n", "EEG", None) == stream_predicate("n", "eeg", None)


# --- real LSL -----------------------------------------------------------------------------------


def test_lowercase_eeg_type_is_resolved_as_eeg(lsl_name: str) -> None:
    outlet = _outlet(lsl_name, list(ELECTRODES), stype="eeg")
    inlet = EEGInlet(lsl_name, "EEG", resolve_timeout=20).connect()
    try:
        assert inlet.description is not None
        assert inlet.description.type == "eeg"
    finally:
        inlet.disconnect()
    del outlet


def test_a_stream_in_volts_arrives_in_microvolts(lsl_name: str) -> None:
    uv = 4200.0 + 50.0 * np.sin(np.arange(256)[:, None] / 7.0 + np.arange(14))
    units = ["volts" if k % 2 else "V" for k in range(14)]
    outlet = _outlet(lsl_name, list(ELECTRODES), units)
    inlet = EEGInlet(lsl_name, resolve_timeout=20).connect()
    try:
        got = _pull_all(inlet, outlet, uv * 1e-6)
    finally:
        inlet.disconnect()
    np.testing.assert_allclose(got, uv, rtol=1e-12)


def test_a_stream_of_the_model_electrodes_alone_is_read(lsl_name: str) -> None:
    uv = 4200.0 + 50.0 * np.sin(np.arange(128)[:, None] / 5.0 + np.arange(10))
    outlet = _outlet(lsl_name, list(MODEL_ELECTRODES), ["mV"] * 10)
    inlet = EEGInlet(lsl_name, resolve_timeout=20).connect()
    try:
        assert inlet.channels is not None
        assert inlet.channels.absent == OPTIONAL
        got = _pull_all(inlet, outlet, uv * 1e-3)
    finally:
        inlet.disconnect()
    idx = [ELECTRODES.index(e) for e in MODEL_ELECTRODES]
    np.testing.assert_allclose(got[:, idx], uv, rtol=1e-12)
    assert np.isnan(got[:, [ELECTRODES.index(e) for e in OPTIONAL]]).all()


def test_stream_missing_af3_and_unknown_unit_are_clear_errors(lsl_name: str) -> None:
    labels = [e for e in MODEL_ELECTRODES if e != "AF3"]
    no_af3 = _outlet(lsl_name, labels)
    with pytest.raises(
        MissingChannelsError,
        match=rf"stream '{lsl_name}' has no channel AF3 \(detection needs AF3\); it has: F7, ",
    ):
        EEGInlet(lsl_name, resolve_timeout=20).connect()
    del no_af3
    odd = f"{lsl_name}-unit"
    furlongs = _outlet(odd, list(ELECTRODES), ["furlongs"] * 14)
    inlet = EEGInlet(odd, resolve_timeout=20)
    with pytest.raises(
        EegstreamError, match=rf"stream '{odd}' channel AF3 has unit 'furlongs', which eegstream"
    ):
        inlet.connect()
    assert not inlet.running
    del furlongs


# --- MNE-LSL's player -> live pipeline == offline detection -------------------------------------


def test_mne_lsl_player_in_volts_gives_the_offline_events(
    engine: Engine, bundle: ModelBundle, lsl_name: str, wait_for: WaitFor
) -> None:
    """Two PlayerLSL streams (type ``eeg``, volts): all 14 electrodes, and the 10 model ones.

    A player streams from its ``start()``, before the pipeline has connected, and ends by
    closing its outlet (a ``lost`` status, which flushes the detector as the end of a file
    does), which may cut off its last chunks. So the samples each stream received are found in
    the recording (they are unique noise values, and must equal it in microvolts), and offline
    detection runs on exactly those.
    """
    mne = pytest.importorskip("mne")
    player_lsl = pytest.importorskip("mne_lsl.player")
    from eegstream.offline import detect_recording
    from eegstream.simulate import simulate_recording

    settings = Settings()  # type: ignore[call-arg]
    # 26 s that hold artifacts from their 6th second (the simulator starts with 30 quiet s);
    # not a whole number of chunks: PlayerLSL errs on an empty last chunk
    full = simulate_recording(50.0, 8118, blink_rate=20.0, clench_rate=8.0)
    rec = Recording(full.data[24 * 128 : -3], full.timestamps[24 * 128 : -3], full.fs)

    def raw(electrodes: Sequence[str]) -> object:
        idx = [ELECTRODES.index(e) for e in electrodes]
        info = mne.create_info(list(electrodes), rec.fs, "eeg")
        return mne.io.RawArray(rec.data[:, idx].T * 1e-6, info, verbose=False)  # volts

    names = {"all": f"{lsl_name}-14", "model": f"{lsl_name}-10"}
    model = [ELECTRODES.index(e) for e in MODEL_ELECTRODES]
    players = [
        player_lsl.PlayerLSL(
            raw(ELECTRODES if key == "all" else MODEL_ELECTRODES),
            chunk_size=8,
            n_repeat=1,
            name=name,
            source_id=f"{name}-src",
        )
        for key, name in names.items()
    ]
    sink = Messages()
    specs = [StreamSpec(name=n, stype="EEG") for n in names.values()]  # they declare "eeg"
    pipeline = MultiStreamPipeline(engine, bundle.features, settings, sink, streams=specs)
    for p in players:
        p.start()
    try:
        with pipeline:
            assert wait_for(
                lambda: all(sink.statuses("lost", stream=n) for n in names.values()), timeout=90
            ), sink.statuses()
            status = pipeline.status()["streams"]
            received = {n: pipeline.latest(60.0, n) for n in names.values()}  # all of it
    finally:
        for p in players:
            if p.running:  # a player that reached the end has stopped itself
                p.stop()
    assert status[names["all"]]["absent_electrodes"] == []
    assert status[names["model"]]["absent_electrodes"] == list(OPTIONAL)
    connected = sink.statuses("connected", stream=names["model"])
    assert connected
    assert connected[0].detail["absent_electrodes"] == list(OPTIONAL)
    for name in names.values():
        # volts read as microvolts looked flat: a dead_electrode status and no event at all
        for kind in ("dead_electrode", "nan", "gap"):
            assert not sink.statuses(kind, stream=name), sink.statuses(kind, stream=name)
        data, _ = received[name]
        n = data.shape[0]
        assert n == status[name]["samples"]
        assert n >= rec.n_samples - 4 * 128, n  # at most the first and last 2 s missed
        first = int(np.argmin(np.abs(rec.data[:, model] - data[0, model]).sum(axis=1)))
        live = rec.data[first : first + n]
        np.testing.assert_allclose(data[:, model], live[:, model], rtol=1e-12)
        if name == names["all"]:
            np.testing.assert_allclose(data, live, rtol=1e-12)
        part = Recording(live, rec.timestamps[first : first + n], rec.fs)
        expected = detect_recording(part, engine, bundle, settings, progress=False)
        assert {e.label for e in expected} == {"blink", "jaw_clench"}, expected
        got = sink.events(stream=name)
        assert [e.label for e in got] == [e.label for e in expected], (name, got, expected)
        shift = [a.onset_lsl - b.onset_lsl for a, b in zip(got, expected, strict=True)]
        assert max(shift) - min(shift) <= 0.5 / rec.fs, shift  # the same samples, another clock


# --- the marker outlet --------------------------------------------------------------------------


def _artifact(n: int, label: str, phase: str, onset: float, offset: float) -> ArtifactEvent:
    return ArtifactEvent(
        id=f"s-{n}",
        phase=phase,  # type: ignore[arg-type]
        stream_id="s",
        label=label,  # type: ignore[arg-type]
        onset_lsl=onset,
        offset_lsl=offset,
        onset_unix=onset,
        offset_unix=offset,
        duration=offset - onset,
        confidence=0.9,
        n_windows=4,
        detected_lsl=offset,
        detected_unix=offset,
    )


def _marker_inlet(name: str) -> pylsl.StreamInlet:
    infos = pylsl.resolve_byprop("name", name, 1, 20.0)
    assert len(infos) == 1
    inlet = pylsl.StreamInlet(infos[0])
    inlet.open_stream(20.0)
    return inlet


def _pull_markers(inlet: pylsl.StreamInlet, n: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    deadline = time.monotonic() + 20
    while len(out) < n and time.monotonic() < deadline:
        sample, stamp = inlet.pull_sample(timeout=0.5)
        if sample is not None:
            out.append((sample[0], stamp))
    return out


def test_text_markers_mark_each_edge_at_its_time_with_faults(lsl_name: str) -> None:
    t = pylsl.local_clock()
    fault = StatusMessage(
        stream_id="s", status="signal_fault", start_lsl=t + 3.0, end_lsl=t + 3.5, unix_time=0.0
    )
    messages = [
        _artifact(1, "blink", "onset", t + 1.0, t + 1.1),
        _artifact(1, "blink", "final", t + 1.0, t + 1.328),
        _artifact(2, "jaw_clench", "final", t + 2.0, t + 2.5),  # its onset phase never seen
        fault,
        StatusMessage(stream_id="s", status="gap", start_lsl=t, end_lsl=t + 1, unix_time=0.0),
    ]
    with MarkerOutlet(lsl_name, marker_format="text") as outlet:
        inlet = _marker_inlet(lsl_name)
        assert outlet.wait_for_consumers(20)  # nothing sent below is lost before the link
        sent = [outlet.publish(m) for m in messages]
        got = _pull_markers(inlet, 7)
        inlet.close_stream()
    assert sent == [1, 1, 2, 2, 0]
    assert [m for m, _ in got] == [
        "blink/onset", "blink/offset", "jaw_clench/onset", "jaw_clench/offset",
        "signal_fault/onset", "signal_fault/offset",
    ]  # fmt: skip
    stamps = [s for _, s in got]
    expected = [t + 1.0, t + 1.328, t + 2.0, t + 2.5, t + 3.0, t + 3.5]
    np.testing.assert_allclose(stamps, expected, atol=1e-9)
    assert stamps[1] - stamps[0] == pytest.approx(0.328, abs=1e-9)  # the blink's duration


def test_json_markers_carry_the_message_and_faults_too(lsl_name: str) -> None:
    t = pylsl.local_clock()
    fault = StatusMessage(
        stream_id="s", status="signal_fault", start_lsl=t + 3.0, end_lsl=t + 3.5, unix_time=0.0
    )
    with MarkerOutlet(lsl_name, marker_format="json") as outlet:
        inlet = _marker_inlet(lsl_name)
        assert outlet.wait_for_consumers(20)
        outlet.publish(_artifact(1, "blink", "final", t + 1.0, t + 1.3))
        outlet.publish(fault)
        got = _pull_markers(inlet, 2)
        inlet.close_stream()
    assert [json.loads(m)["type"] for m, _ in got] == ["artifact", "status"]
    assert json.loads(got[1][0])["status"] == "signal_fault"
    np.testing.assert_allclose([s for _, s in got], [t + 1.0, t + 3.0], atol=1e-9)


def test_marker_source_id_is_stable_across_restarts() -> None:
    """The same settings give the same source id in another process: LabRecorder re-attaches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EEGSTREAM_")}
    code = (
        "from eegstream.settings import Settings\n"
        "from eegstream.service.markers_out import MarkerOutlet\n"
        "print(MarkerOutlet.from_settings(Settings(stream_name=['Alice-EEG'])).source_id)\n"
    )
    ids = {
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    here = MarkerOutlet.from_settings(Settings(stream_name=["Alice-EEG"])).source_id  # type: ignore[call-arg]
    assert ids == {here}
    assert "Alice-EEG" in here
    other = MarkerOutlet.from_settings(Settings(stream_name=["Bob-EEG"])).source_id  # type: ignore[call-arg]
    assert other != here  # two services watching different headsets stay two streams


def test_settings_choose_the_marker_format() -> None:
    assert Settings().marker_format == "text"  # type: ignore[call-arg]
    outlet = MarkerOutlet.from_settings(Settings(marker_format="json"))  # type: ignore[call-arg]
    assert outlet.marker_format == "json"
    with pytest.raises(EegstreamError, match=r"marker_format must be 'text' or 'json'; got 'xml'"):
        MarkerOutlet("x", marker_format="xml")  # type: ignore[arg-type]
