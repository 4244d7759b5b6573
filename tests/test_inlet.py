"""EEGInlet over real LSL (loopback): channel mapping, resolve errors, gaps, NaN, loss and recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
import pytest

from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.io.recording import Recording
from eegstream.settings import ELECTRODES
from eegstream.stream.inlet import EEGInlet, map_channels, normalise_label, resolve_stream
from eegstream.stream.replay import Player
from eegstream.stream.ring import RingBuffer

EMOTIV_19 = ("Timestamp", "Counter", "Interpolate", *ELECTRODES, "HardwareMarker", "Markers")

Collect = Callable[..., Any]


def _outlet(
    name: str,
    labels: Sequence[str],
    *,
    fs: float = 128.0,
    fmt: int = pylsl.cf_float32,
    stype: str = "EEG",
    source_id: str = "",
) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, stype, len(labels), fs, fmt, source_id)
    channels = info.desc().append_child("channels")
    for label in labels:
        channels.append_child("channel").append_child_value("label", label)
    return pylsl.StreamOutlet(info)


# --- channel mapping (no LSL) -------------------------------------------------------------------


def test_labels_map_in_any_case_order_and_prefix() -> None:
    rng = np.random.default_rng(0)
    names = [f"eeg.{e.lower()}" if i % 2 else f" {e} " for i, e in enumerate(ELECTRODES)]
    labels = [*names, "CQ.AF3", "counter"]
    order = rng.permutation(len(labels))
    shuffled = [labels[i] for i in order]
    cmap = map_channels(shuffled, "stream 'x'")
    for k, electrode in enumerate(ELECTRODES):
        assert normalise_label(shuffled[cmap.electrodes[k]]) == electrode
    assert cmap.counter == shuffled.index("counter")
    assert sorted(cmap.ignored) == ["CQ.AF3", "counter"]


def test_emotivpro_19_channel_layout_maps_electrodes_and_counter() -> None:
    cmap = map_channels(["EEG." + x if x in ELECTRODES else x for x in EMOTIV_19], "s")
    np.testing.assert_array_equal(cmap.electrodes, np.arange(3, 17))
    assert cmap.counter == 1
    assert cmap.interpolated == 2  # EmotivPRO's "Interpolate": flags events live
    assert map_channels(list(ELECTRODES), "s").interpolated is None
    unlabelled = map_channels([None] * 19, "s")
    np.testing.assert_array_equal(unlabelled.electrodes, np.arange(3, 17))
    np.testing.assert_array_equal(map_channels([None] * 14, "s").electrodes, np.arange(14))


def test_missing_electrode_is_named() -> None:
    labels = [e for e in ELECTRODES if e != "AF4"] + ["Counter"]
    with pytest.raises(
        MissingChannelsError, match=r"stream 'y' has no channel AF4 .*it has: AF3, F7"
    ):
        map_channels(labels, "stream 'y'")
    with pytest.raises(MissingChannelsError, match="it has: 10 unlabelled channels"):
        map_channels([None] * 10, "stream 'z'")


# --- resolving and opening ----------------------------------------------------------------------


def test_stream_missing_af4_gives_a_clear_error(lsl_name: str) -> None:
    outlet = _outlet(lsl_name, [e for e in ELECTRODES if e != "AF4"] + ["Counter"])
    inlet = EEGInlet(lsl_name, resolve_timeout=20)
    with pytest.raises(
        MissingChannelsError,
        match=rf"stream '{lsl_name}' has no channel AF4 \(detection needs AF4\)",
    ):
        inlet.connect()
    assert not inlet.running
    del outlet


def test_no_match_lists_the_streams_seen(lsl_name: str) -> None:
    outlet = _outlet(lsl_name, list(ELECTRODES), source_id="visible-src")
    assert pylsl.resolve_byprop("name", lsl_name, 1, 20)
    with pytest.raises(
        EegstreamError,
        match=rf"no LSL stream with name '{lsl_name}-absent', type 'EEG' appeared within 1 s; "
        rf"streams seen: .*'{lsl_name}' \(type 'EEG', 14 ch @ 128 Hz, source_id 'visible-src'",
    ):
        resolve_stream(f"{lsl_name}-absent", "EEG", timeout=1.0)
    del outlet


def test_marker_stream_is_refused_as_eeg(lsl_name: str) -> None:
    outlet = _outlet(
        lsl_name, ["label"], fs=pylsl.IRREGULAR_RATE, fmt=pylsl.cf_string, stype="Markers"
    )
    with pytest.raises(EegstreamError, match=r"carries strings \(a marker stream\?\), not EEG"):
        EEGInlet(lsl_name, stype=None, resolve_timeout=20).connect()
    del outlet


def test_pull_before_connect_is_an_error() -> None:
    with pytest.raises(EegstreamError, match=r"not connected; call connect\(\) before pull\(\)"):
        EEGInlet("never-connected").pull()


# --- data ---------------------------------------------------------------------------------------


def test_emotivpro_outlet_values_and_counter_gap(lsl_name: str, collect: Collect) -> None:
    n = 512
    rng = np.random.default_rng(3)
    block = np.zeros((n, len(EMOTIV_19)), dtype=np.float32)
    block[:, 3:17] = (4200 + rng.normal(size=(n, 14)) * 30).astype(np.float32)
    counter = np.arange(n) % 128
    counter[300:] = (np.arange(300, n) + 5) % 128  # the headset lost 5 packets before sample 300
    block[:, 1] = counter
    block[:, 0] = 99.0  # EmotivPRO's own timestamp column: ignored
    outlet = _outlet(lsl_name, ["EEG." + x if x in ELECTRODES else x for x in EMOTIV_19])
    ring = RingBuffer(14, 4096)
    with EEGInlet(lsl_name, resolve_timeout=20) as inlet:
        assert outlet.wait_for_consumers(10)
        t0 = pylsl.local_clock()
        outlet.push_chunk(block, t0 + (n - 1) / 128)  # smooth timestamps: only the counter tells
        got = collect(inlet, 0, timeout=0)  # nothing yet
        deadline = time.monotonic() + 20
        while ring.total < n and time.monotonic() < deadline:
            got.add(inlet.pull_into(ring, 0.05))
    data, _, _ = got.arrays()
    np.testing.assert_array_equal(data, block[:, 3:17].astype(np.float64))
    np.testing.assert_array_equal(ring.latest(n)[0], data)
    gaps = got.gaps
    assert len(gaps) == 1
    assert (gaps[0].index, gaps[0].reason, gaps[0].missing) == (300, "counter", 5)
    assert inlet.stats.gaps == 1
    assert inlet.stats.missing_samples == 5


def test_nan_and_inf_samples_are_counted(lsl_name: str, collect: Collect) -> None:
    n = 256
    block = np.full((n, 14), 4200.0, dtype=np.float32)
    block[10:20, 3] = np.nan
    block[100, 13] = np.inf
    block[101, 0] = -np.inf
    outlet = _outlet(lsl_name, list(ELECTRODES))
    with EEGInlet(lsl_name, resolve_timeout=20) as inlet:
        assert outlet.wait_for_consumers(10)
        outlet.push_chunk(block, pylsl.local_clock())
        got = collect(inlet, n, timeout=20)
        assert inlet.stats.nonfinite_samples == 12
    data, _, _ = got.arrays()
    assert got.nonfinite == 12
    assert np.isnan(data[10:20, 3]).all()
    assert np.isinf(data[100, 13])


def _push_realtime(outlet: pylsl.StreamOutlet, seconds: float, stop: threading.Event) -> None:
    """Push 8-sample chunks at 128 Hz stamped with the current time, like a headset would."""
    start = time.monotonic()
    for k in range(1, int(seconds * 16) + 1):
        if stop.wait(max(0.0, start + k * 8 / 128 - time.monotonic())):
            return
        outlet.push_chunk(np.full((8, 14), 4200.0, dtype=np.float32), pylsl.local_clock())


def test_pause_of_the_sender_is_a_gap_despite_dejitter(lsl_name: str, collect: Collect) -> None:
    outlet = _outlet(lsl_name, list(ELECTRODES))
    stop = threading.Event()
    with EEGInlet(lsl_name, resolve_timeout=20, lost_after=5.0) as inlet:
        assert outlet.wait_for_consumers(10)
        _push_realtime(outlet, 1.5, stop)
        got = collect(inlet, 10**9, timeout=1.2)  # drain while the sender pauses 1.2 s
        _push_realtime(outlet, 1.0, stop)
        collect(inlet, 10**9, timeout=0.5, into=got)
        assert [e.kind for e in inlet.events()] == ["connected"]  # a pause is not a loss
    _, ts, _ = got.arrays()
    gaps = got.gaps
    assert len(gaps) == 1, gaps
    assert gaps[0].reason == "timestamps"
    assert 1.1 < gaps[0].end_lsl - gaps[0].start_lsl < 2.0
    assert abs(gaps[0].missing - (gaps[0].end_lsl - gaps[0].start_lsl) * 128) < 2
    assert np.sum(np.diff(ts) > 1.5 / 128) == 1  # nothing smeared over the following samples


def test_first_pull_does_not_wait_for_the_clock_offset(lsl_name: str) -> None:
    """liblsl estimates the clock offset on the first synchronised pull (probes, ~0.6 s here).

    Waited for in the scheduler thread, 128 streams' first pulls stalled every stream for a
    minute; ``connect`` (run in the connect pool) takes that wait instead.
    """
    outlet = _outlet(lsl_name, list(ELECTRODES))
    stop = threading.Event()
    pusher = threading.Thread(target=_push_realtime, args=(outlet, 10.0, stop), daemon=True)
    pusher.start()
    try:
        with EEGInlet(lsl_name, resolve_timeout=20) as inlet:
            time.sleep(0.3)  # samples are waiting
            t0 = time.perf_counter()
            chunk = inlet.pull(0.0)
            took = time.perf_counter() - t0
    finally:
        stop.set()
        pusher.join()
    assert chunk.n > 0
    assert took < 0.1, f"the first pull waited {took:.3f} s"


@pytest.mark.parametrize("jump", [-5.0, -0.5, 5.0])
def test_a_jump_of_the_source_clock_is_reported_and_the_timeline_continues(
    lsl_name: str, collect: Collect, jump: float
) -> None:
    """A sender whose clock moves by ``jump`` s: one ``clock_jump``, no gap, no growing lag.

    Before: back 5 s, liblsl's monotonize held the stamps for 5 s (detection 6 s late); forward,
    its dejitter smeared the jump into hundreds of small gaps and stamps in the future.
    """
    outlet = _outlet(lsl_name, list(ELECTRODES))
    stop = threading.Event()

    def push() -> None:  # 3.5 s in real time, the clock moved after 1.5 s
        t0, start = time.monotonic(), pylsl.local_clock()
        for k in range(56):
            if stop.wait(max(0.0, t0 + k * 8 / 128 - time.monotonic())):
                return
            first = start + k * 8 / 128 + (jump if k >= 24 else 0.0)
            stamps = [first + i / 128 for i in range(8)]
            outlet.push_chunk(np.full((8, 14), 4200.0, dtype=np.float32), stamps)

    sender = threading.Thread(target=push, daemon=True)
    with EEGInlet(lsl_name, resolve_timeout=20) as inlet:
        assert outlet.wait_for_consumers(10)
        sender.start()
        try:
            got = collect(inlet, 56 * 8, timeout=10)
        finally:
            stop.set()
            sender.join(10)
        lag = pylsl.local_clock() - got.arrays()[1][-1]
        events = inlet.events()
    _, ts, _ = got.arrays()
    assert [e.kind for e in events] == ["connected", "clock_jump"]
    assert events[1].jump_s == pytest.approx(jump, abs=0.05)
    assert "re-anchored" in events[1].detail
    assert got.gaps == []
    steps = np.diff(ts)
    assert steps.min() > 0.5 / 128, steps.min()
    assert steps.max() < 1.5 / 128, steps.max()
    assert ts.shape[0] == 56 * 8
    assert abs(lag) < 0.5  # the detector is not held seconds behind (or ahead of) the data


def test_stalled_stream_is_lost_then_resumes(lsl_name: str, collect: Collect) -> None:
    outlet = _outlet(lsl_name, list(ELECTRODES), source_id=f"{lsl_name}-src")
    stop = threading.Event()
    with EEGInlet(lsl_name, resolve_timeout=20, lost_after=0.8) as inlet:
        assert outlet.wait_for_consumers(10)
        _push_realtime(outlet, 1.0, stop)
        got = collect(inlet, 10**9, timeout=1.5)
        assert inlet.state == "lost"
        _push_realtime(outlet, 0.5, stop)
        collect(inlet, 10**9, timeout=0.5, into=got)
        state_after = inlet.state  # (a fresh read: mypy would narrow the attribute)
        events = inlet.events()
    assert state_after == "connected"
    assert [e.kind for e in events] == ["connected", "lost", "recovered"]
    assert events[1].detail.startswith("no data for")
    assert events[2].detail == "data resumed"
    assert inlet.stats.lost == 1
    assert inlet.stats.reconnects == 0
    assert [g.reason for g in got.gaps] == ["timestamps"]


_REPLAY_SCRIPT = """
import sys, threading
import numpy as np
from eegstream.io.recording import Recording
from eegstream.stream.replay import Player
n = 128 * 60
t = np.arange(n) / 128
data = 4200 + 20 * np.sin(2 * np.pi * 10 * t[:, None] + np.arange(14))
rec = Recording(data=data, timestamps=t, fs=128)
Player(rec, name=sys.argv[1], source_id=sys.argv[2], loop=True, sample_index=True).start()
threading.Event().wait()
"""


def _replay_process(name: str, source_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _REPLAY_SCRIPT, name, source_id],
        stdout=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def test_killed_replay_recovers_by_source_id_with_the_gap_reported(
    lsl_name: str, source_id: str, collect: Collect
) -> None:
    first = _replay_process(lsl_name, source_id)
    second: subprocess.Popen[bytes] | None = None
    try:
        with EEGInlet(lsl_name, source_id=source_id, resolve_timeout=30) as inlet:
            got = collect(inlet, 256, timeout=30)
            first.kill()  # SIGKILL: no goodbye, the TCP connection just breaks
            first.wait(10)
            outage = time.monotonic()
            collect(inlet, 10**9, timeout=5.0, into=got)  # the stream is gone for 5 s
            assert inlet.state == "lost"
            second = _replay_process(lsl_name, source_id)
            before = got.n
            deadline = time.monotonic() + 30
            while got.n < before + 256 and time.monotonic() < deadline:
                got.add(inlet.pull(0.05))
            outage = time.monotonic() - outage
            events = inlet.events()
            stats = inlet.stats
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait(10)
    assert [e.kind for e in events] == ["connected", "lost", "recovered"]
    assert stats.lost == 1
    assert stats.reconnects == 1
    assert events[1].stream is not None
    assert events[2].stream is not None
    assert events[1].stream.uid != events[2].stream.uid  # a new outlet, same source id
    _, ts, raw = got.arrays()
    gaps = got.gaps
    assert len(gaps) == 1
    assert gaps[0].reason == "reconnect"
    gap = gaps[0]
    assert 5.0 <= gap.end_lsl - gap.start_lsl <= outage + 1.0
    assert abs(gap.missing - (gap.end_lsl - gap.start_lsl) * 128) < 2
    # No data invented across the gap: nothing stamped inside it, one jump only, and each
    # process's samples arrive complete and in order (SampleIndex restarts with the new process).
    assert not np.any((ts > gap.start_lsl) & (ts < gap.end_lsl))
    assert np.all(np.diff(ts) > 0)
    assert np.sum(np.diff(ts) > 1.5 / 128) == 1
    index = raw[:, -1].astype(np.int64)
    cut = int(np.searchsorted(ts, gap.end_lsl))  # first sample of the second process
    assert cut >= 256
    assert len(index) - cut >= 256
    np.testing.assert_array_equal(index[:cut], index[0] + np.arange(cut))
    np.testing.assert_array_equal(index[cut:], index[cut] + np.arange(len(index) - cut))


def test_256_hz_stream_is_resampled_to_128_hz_in_time(
    lsl_name: str, source_id: str, make_recording: Callable[..., Recording], collect: Collect
) -> None:
    from conftest import SYNTH_FREQS

    rec = make_recording(6.0, fs=256.0)
    player = Player(rec, name=lsl_name, source_id=source_id, speed=4, wait_for_consumer=30)
    with player, EEGInlet(lsl_name, source_id=source_id, resolve_timeout=20) as inlet:
        got = collect(inlet, rec.n_samples // 2 - 16, timeout=30)  # the filter holds ~5 back
        assert inlet.source_fs == 256.0
        assert inlet.fs == 128.0
    start = player.start_time
    assert start is not None
    data, ts, _ = got.arrays()
    assert data.shape[0] >= rec.n_samples // 2 - 16
    np.testing.assert_allclose(np.diff(ts), 1 / 128, atol=2e-4)
    # The values at each output timestamp are the recording's sinusoids at that time: the
    # resampler's delay is compensated and timestamps follow the samples.
    rel = ts - start
    expected = 4200.0 + 20.0 * np.sin(
        2 * np.pi * SYNTH_FREQS[None, :] * rel[:, None] + np.arange(14)
    )
    assert np.max(np.abs(data[16:] - expected[16:])) < 1.5
    assert got.gaps == []


def test_the_test_lsl_configuration_is_valid(lsl_config: Path, tmp_path: Path) -> None:
    """A typo in conftest's lsl_api.cfg would silently give liblsl's defaults (not confined)."""
    text = lsl_config.read_text().replace("level = -1", "level = 0")
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(text)
    result = subprocess.run(
        [sys.executable, "-c", "import pylsl; pylsl.resolve_streams(0.1)"],
        env={**os.environ, "LSLAPICFG": str(cfg)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"Configuration loaded from {cfg}" in result.stderr
    assert "ERR|" not in result.stderr
