"""Replay: a recording published on real LSL (loopback) arrives complete, in order, correctly timed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
import pytest
from conftest import stop_process

from eegstream.errors import EegstreamError
from eegstream.io.recording import Recording
from eegstream.settings import ELECTRODES
from eegstream.stream.inlet import EEGInlet, channel_labels
from eegstream.stream.replay import SAMPLE_INDEX_LABEL, Player, marker_stream_name

MakeRecording = Callable[..., Recording]


def _resolve(prop: str, value: str, timeout: float = 20.0) -> pylsl.StreamInfo:
    infos = pylsl.resolve_byprop(prop, value, 1, timeout)
    assert infos, f"no stream with {prop}={value!r} within {timeout} s"
    return infos[0]


def test_60_s_replay_delivers_every_sample_with_the_recordings_spacing(
    lsl_name: str, source_id: str, make_recording: MakeRecording, collect: Callable[..., Any]
) -> None:
    rec = make_recording(60.0)
    # The file's clock runs 0.4 % slow against the nominal 128 Hz (as PC-stamped files do): the
    # replay must keep the file's spacing, which 1/128 s steps would miss by up to 0.23 s.
    rec.timestamps = rec.timestamps[0] + np.arange(rec.n_samples) / 127.5
    player = Player(
        rec, name=lsl_name, source_id=source_id, speed=20, sample_index=True, wait_for_consumer=30
    )
    with player, EEGInlet(lsl_name, source_id=source_id, resolve_timeout=20) as inlet:
        got = collect(inlet, rec.n_samples, timeout=60)
    data, ts, raw = got.arrays()
    # Exactly the recording's samples, each once, in order (proved by the SampleIndex channel).
    np.testing.assert_array_equal(raw[:, -1].astype(np.int64), np.arange(rec.n_samples))
    np.testing.assert_array_equal(data, rec.data.astype(np.float32).astype(np.float64))
    # Timestamps keep the recording's spacing (issue #5: within 5 ms on average).
    rel, expected = ts - ts[0], rec.timestamps - rec.timestamps[0]
    assert np.mean(np.abs(rel - expected)) < 0.005
    assert np.mean(np.abs(np.diff(ts) - np.diff(rec.timestamps))) < 0.005
    assert got.gaps == []
    assert got.nonfinite == 0


def test_real_time_replay_is_paced_by_the_clock_and_stamped_now(
    lsl_name: str, source_id: str, make_recording: MakeRecording
) -> None:
    rec = make_recording(3.0)
    player = Player(rec, name=lsl_name, source_id=source_id, speed=1.0, wait_for_consumer=30)
    with player:
        inlet = pylsl.StreamInlet(_resolve("source_id", source_id), processing_flags=0)
        inlet.open_stream(10)
        started = time.monotonic()
        lateness: list[float] = []
        received = 0
        while received < rec.n_samples and time.monotonic() - started < 20:
            _, ts = inlet.pull_chunk(timeout=0.2, max_samples=64)
            if ts:
                lateness.append(pylsl.local_clock() - ts[-1])
                received += len(ts)
        assert player.wait(10)
        elapsed = time.monotonic() - started
    assert received == rec.n_samples
    # Paced: 3 s of data cannot arrive faster than the clock allows (one chunk of slack) ...
    assert elapsed >= (rec.n_samples - player.chunk) / rec.fs - 0.05
    # ... and each chunk arrives when its last sample is due, not before and not much later.
    assert min(lateness) > -0.005
    assert float(np.median(lateness)) < 0.1


def test_speed_multiplies_the_pace_but_not_the_spacing(
    lsl_name: str, make_recording: MakeRecording
) -> None:
    rec = make_recording(6.0)
    player = Player(rec, name=lsl_name, speed=3.0)
    started = time.monotonic()
    with player:
        assert player.wait(20)
    elapsed = time.monotonic() - started
    assert elapsed >= (rec.n_samples - player.chunk) / rec.fs / 3.0 - 0.05
    assert elapsed < 2 * rec.duration / 3.0 + 1.0
    assert player.samples_pushed == rec.n_samples


def test_markers_are_stamped_at_the_onset_sample(
    lsl_name: str, source_id: str, make_recording: MakeRecording, collect: Callable[..., Any]
) -> None:
    marks = [(2.0, "blink"), (3.5, "jaw_clench"), (6.25, "blink")]
    rec = make_recording(8.0, markers=marks)
    player = Player(
        rec, name=lsl_name, source_id=source_id, speed=4, sample_index=True, wait_for_consumer=30
    )
    with player:
        minfo = _resolve("name", marker_stream_name(lsl_name))
        assert minfo.type() == "Markers"
        assert minfo.channel_format() == pylsl.cf_string
        assert minfo.nominal_srate() == pylsl.IRREGULAR_RATE
        minlet = pylsl.StreamInlet(minfo)
        minlet.open_stream(10)
        with EEGInlet(lsl_name, source_id=source_id, resolve_timeout=20) as inlet:
            got = collect(inlet, rec.n_samples, timeout=30)
        labels: list[str] = []
        stamps: list[float] = []
        deadline = time.monotonic() + 10
        while len(labels) < len(marks) and time.monotonic() < deadline:
            values, ts = minlet.pull_chunk(timeout=0.2)
            labels += [v[0] for v in values]
            stamps += ts
    _, eeg_ts, raw = got.arrays()
    index = raw[:, -1].astype(np.int64)
    assert labels == [label for _, label in marks]
    for marker, stamp in zip(rec.markers, stamps, strict=True):
        onset_time = eeg_ts[index == marker.sample][0]
        assert abs(stamp - onset_time) < 0.005


def test_loop_restarts_with_continuing_timestamps_and_index(
    lsl_name: str, source_id: str, make_recording: MakeRecording, collect: Callable[..., Any]
) -> None:
    rec = make_recording(1.0, markers=[(0.5, "blink")])
    player = Player(
        rec,
        name=lsl_name,
        source_id=source_id,
        speed=4,
        loop=True,
        sample_index=True,
        wait_for_consumer=30,
    )
    with player:
        minlet = pylsl.StreamInlet(_resolve("name", marker_stream_name(lsl_name)))
        minlet.open_stream(10)
        with EEGInlet(lsl_name, source_id=source_id, resolve_timeout=20) as inlet:
            got = collect(inlet, 3 * rec.n_samples, timeout=30)
        stamps: list[float] = []
        deadline = time.monotonic() + 10
        while len(stamps) < 3 and time.monotonic() < deadline:
            stamps += minlet.pull_chunk(timeout=0.2)[1]
        assert player.running
        assert not player.finished
    data, ts, raw = got.arrays()
    n = raw.shape[0]
    assert n >= 3 * rec.n_samples
    np.testing.assert_array_equal(raw[:, -1].astype(np.int64), np.arange(n))
    np.testing.assert_array_equal(data[rec.n_samples : 2 * rec.n_samples], data[: rec.n_samples])
    assert np.max(np.abs(np.diff(ts) - 1 / rec.fs)) < 0.5 / rec.fs  # no jump at the loop seam
    assert len(stamps) >= 3
    np.testing.assert_allclose(np.diff(stamps[:3]), rec.duration, atol=0.002)
    assert player.loops_done >= 2


def test_stream_looks_like_emotivs(lsl_name: str, make_recording: MakeRecording) -> None:
    rec = make_recording(2.0)
    with Player(rec, name=lsl_name, speed=1.0, sample_index=True) as player:
        info = _resolve("name", lsl_name)
        inlet = pylsl.StreamInlet(info)
        full = inlet.info(timeout=10)
    assert player.source_id == "eegstream-replay:synthetic"  # stable: derived from the file
    assert full.type() == "EEG"
    assert full.nominal_srate() == 128
    assert full.channel_format() == pylsl.cf_float32
    assert full.channel_count() == len(ELECTRODES) + 1
    assert full.source_id() == player.source_id
    assert channel_labels(full) == [*ELECTRODES, SAMPLE_INDEX_LABEL]
    channels = full.desc().child("channels")
    ch = channels.child("channel")
    units, types = [], []
    while not ch.empty():
        units.append(ch.child_value("unit"))
        types.append(ch.child_value("type"))
        ch = ch.next_sibling("channel")
    assert units == ["microvolts"] * 14 + ["samples"]
    assert types == ["EEG"] * 14 + ["misc"]
    assert full.desc().child_value("manufacturer") == "Emotiv"
    assert full.desc().child_value("replayed_by").startswith("eegstream ")


def test_stop_is_idempotent_and_closes_the_stream(
    lsl_name: str, make_recording: MakeRecording
) -> None:
    player = Player(make_recording(2.0), name=lsl_name, loop=True)
    player.start()
    player.start()  # no second thread, no second outlet
    assert player.running
    assert len(pylsl.resolve_byprop("name", lsl_name, 2, 2.0)) == 1
    player.stop()
    player.stop()
    assert not player.running
    assert pylsl.resolve_byprop("name", lsl_name, 1, 1.0) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"speed": -1.0}, r"speed must be a number >= 0 .*got -1\.0"),
        ({"speed": float("nan")}, r"speed must be a number >= 0"),
        ({"chunk": 0}, r"chunk must be >= 1 sample; got 0"),
    ],
)
def test_bad_player_arguments(
    kwargs: dict[str, float], match: str, make_recording: MakeRecording
) -> None:
    with pytest.raises(EegstreamError, match=match):
        Player(make_recording(1.0), **kwargs)  # type: ignore[arg-type]


def test_recording_with_wrong_channels_is_refused(make_recording: MakeRecording) -> None:
    rec = make_recording(1.0)
    rec.data = rec.data[:, :13]
    with pytest.raises(
        EegstreamError, match=r"data of shape \(128, 13\); expected \(samples, 14\)"
    ):
        Player(rec)
    empty = make_recording(0.0)
    with pytest.raises(EegstreamError, match="no samples or no sampling rate"):
        Player(empty)


# --- the CLI ----------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "eegstream", "replay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),  # keeps LSLAPICFG: the same confined LSL session
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["/nonexistent/rec.csv"], "recording /nonexistent/rec.csv does not exist"),
        (["--speed", "-2"], r"--speed must be >= 0 .*got -2"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args: list[str], match: str) -> None:
    proc = _cli(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("eegstream replay: error: ")
    assert __import__("re").search(match, lines[0])


def test_cli_replays_a_file_and_exits_0_at_its_end(
    tmp_path: Path, lsl_name: str, make_recording: MakeRecording, collect: Callable[..., Any]
) -> None:
    from eegstream.io.emotiv import write_recording

    rec = make_recording(4.0, markers=[(1.0, "blink")])
    path = tmp_path / "rec.csv"
    write_recording(rec, path)
    proc = _cli(str(path), "--speed", "2", "--name", lsl_name, "--source-id", f"{lsl_name}-src")
    try:
        with EEGInlet(lsl_name, resolve_timeout=30) as inlet:
            got = collect(inlet, 64, timeout=30)
            assert inlet.description is not None
            assert inlet.description.source_id == f"{lsl_name}-src"
        out, err = proc.communicate(timeout=60)
    finally:
        stop_process(proc)
    assert got.n >= 64
    assert proc.returncode == 0, err
    assert f"as LSL stream {lsl_name!r}" in out
    assert f"{marker_stream_name(lsl_name)!r}" in out
    assert f"replay stopped after {rec.n_samples} samples" in out
    assert "1 markers" in out


def test_signals_only_set_the_stop_flag_and_are_restored_after() -> None:
    """Ctrl-C / SIGTERM must not raise mid-``Player.start()``: the handler only sets a flag."""
    from eegstream.stream.replay import _stop_on_signals

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with _stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)  # would be a KeyboardInterrupt here otherwise
        assert stop.wait(5)
        stop.clear()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_ctrl_c_stops_cleanly_with_exit_0(
    tmp_path: Path, lsl_name: str, make_recording: MakeRecording, sig: signal.Signals
) -> None:
    from eegstream.io.emotiv import write_recording

    path = tmp_path / "rec.csv"
    write_recording(make_recording(2.0), path)
    proc = _cli(str(path), "--loop", "--name", lsl_name)
    try:
        assert pylsl.resolve_byprop("name", lsl_name, 1, 30), "the replay never appeared"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, err
    assert "replay stopped after" in out
    assert "Traceback" not in err
