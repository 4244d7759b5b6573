"""The EmotivPRO writer: exact round trips, gzip, sidecar, metadata line."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from eegstream.errors import EegstreamError
from eegstream.io import read_recording, write_recording
from eegstream.io.emotiv import UV_DECIMALS, parse_metadata_line
from eegstream.io.recording import Marker, Recording
from eegstream.settings import ELECTRODES


def random_recording(n: int = 2_000, fs: float = 128.0, seed: int = 0) -> Recording:
    """Full-precision doubles (not pre-rounded), jittered timestamps, markers with durations."""
    rng = np.random.default_rng(seed)
    ts = 1_576_079_627.004193 + np.cumsum(rng.uniform(0.9, 1.1, n)) / fs
    interp = rng.random(n) < 0.01
    quality = rng.integers(0, 5, (n, 14)).astype(np.float32)
    quality[:, 3] = rng.random(n).astype(np.float32)  # arbitrary float32 values too
    markers = [
        Marker(int(s), float(ts[s]), v, {22: "blink", 23: "jaw_clench"}.get(v, f"marker_{v}"), d)
        for s, v, d in [(100, 22, 0.3125), (640, 23, 1.2), (900, 5, 0.0), (1500, 22, 0.0)]
        if s < n
    ]
    return Recording(
        data=4200 + rng.normal(0, 50, (n, 14)),
        timestamps=ts,
        fs=fs,
        markers=markers,
        interpolated=interp,
        quality=quality,
        metadata={"title": "unit, test", "headset_type": "EPOCPLUS", "serial": "XYZ"},
    )


def test_round_trip_is_exact_after_rounding_to_the_written_precision(tmp_path: Path) -> None:
    rec = random_recording()
    path = tmp_path / "rt.csv"
    write_recording(rec, path)
    back = read_recording(path)
    assert np.array_equal(back.data, np.round(rec.data, UV_DECIMALS))
    assert np.array_equal(back.timestamps, rec.timestamps)  # bit for bit
    assert back.markers == rec.markers  # durations via the sidecar
    assert (tmp_path / "rt_intervalMarker.csv").is_file()
    assert back.interpolated is not None
    assert rec.interpolated is not None
    assert np.array_equal(back.interpolated, rec.interpolated)
    assert back.quality is not None
    assert rec.quality is not None
    assert np.array_equal(back.quality, rec.quality)
    assert back.fs == rec.fs
    assert back.missing == ()
    # writing what was read gives the same bytes: the format is a fixed point
    again = tmp_path / "again.csv"
    write_recording(back, again)
    assert again.read_bytes().splitlines()[1:] == path.read_bytes().splitlines()[1:]
    assert np.array_equal(read_recording(again).data, back.data)


def test_file_layout_is_emotivpro(tmp_path: Path) -> None:
    rec = random_recording(300)
    path = tmp_path / "layout.csv"
    write_recording(rec, path)
    first, header, row = path.read_text().splitlines()[:3]
    md = parse_metadata_line(first)
    assert md["title"] == "unit; test"  # a comma would split the metadata line
    assert md["headset type"] == "EPOCPLUS"
    assert md["headset serial"] == "XYZ"
    assert md["sampling rate"] == "128"
    assert md["samples"] == "300"
    assert md["channels"] == str(len(header.split(",")))
    assert float(md["start timestamp"]) == rec.timestamps[0]
    names = header.split(",")
    assert names[:4] == ["Timestamp", "OriginalTimestamp", "EEG.Counter", "EEG.Interpolated"]
    assert names[4:18] == [f"EEG.{e}" for e in ELECTRODES]
    assert names[18:21] == ["MarkerIndex", "MarkerType", "MarkerValueInt"]
    assert names[21:] == [f"CQ.{e}" for e in ELECTRODES]
    cells = row.split(",")
    assert len(cells) == len(names)
    assert cells[2] == "0"  # counter restarts every second
    assert cells[4] == f"{round(rec.data[0, 0], 6):.6f}"
    assert cells[18:21] == ["", "", ""]
    marked = path.read_text().splitlines()[2 + 100].split(",")
    assert marked[18:21] == ["1", "1", "22"]


def test_missing_electrodes_have_no_column_and_stay_missing(tmp_path: Path) -> None:
    rec = random_recording(200)
    rec.missing = ("O1", "O2")
    rec.data[:, [ELECTRODES.index("O1"), ELECTRODES.index("O2")]] = np.nan
    path = tmp_path / "miss.csv"
    write_recording(rec, path)
    assert "EEG.O1" not in path.read_text().splitlines()[1]
    back = read_recording(path)
    assert back.missing == ("O1", "O2")
    assert np.array_equal(back.data, np.round(rec.data, UV_DECIMALS), equal_nan=True)


def test_gzip_is_chosen_by_suffix_and_is_reproducible(tmp_path: Path) -> None:
    rec = random_recording(500)
    a, b, plain = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz", tmp_path / "p.csv"
    write_recording(rec, a)
    write_recording(rec, b)
    write_recording(rec, plain)
    assert a.read_bytes()[:2] == b"\x1f\x8b"
    assert a.read_bytes() == b.read_bytes()  # no timestamp or name in the gzip header
    assert gzip.decompress(a.read_bytes()) == plain.read_bytes().replace(b"title:p", b"title:a")
    back = read_recording(a)
    assert (tmp_path / "a_intervalMarker.csv").is_file()
    assert back.markers == rec.markers
    assert np.array_equal(back.data, np.round(rec.data, UV_DECIMALS))


def test_markers_sharing_a_sample_round_trip(tmp_path: Path) -> None:
    rec = random_recording(300)
    t = rec.timestamps
    rec.markers = [
        Marker(50, float(t[50]), 22, "blink"),
        Marker(50, float(t[50]), 23, "jaw_clench"),
    ]
    path = tmp_path / "two.csv"
    write_recording(rec, path)
    assert read_recording(path).markers == rec.markers


def test_sidecar_is_rewritten_so_it_never_goes_stale(tmp_path: Path) -> None:
    rec = random_recording(300)
    path = tmp_path / "s.csv"
    write_recording(rec, path)
    rec.markers = [Marker(10, float(rec.timestamps[10]), 23, "jaw_clench")]  # no durations now
    write_recording(rec, path)
    assert read_recording(path).markers == rec.markers


def test_a_resampled_recording_writes_and_reads_at_its_new_rate(tmp_path: Path) -> None:
    rec = random_recording(1_024, fs=256.0)
    src = tmp_path / "src.csv"
    write_recording(rec, src)
    at128 = read_recording(src)
    assert at128.fs == 128.0
    out = tmp_path / "out.csv"
    write_recording(at128, out)
    back = read_recording(out)
    assert back.fs == 128.0
    assert back.n_samples == 512
    assert np.array_equal(back.data, np.round(at128.data, UV_DECIMALS))
    assert np.array_equal(back.timestamps, at128.timestamps)
    assert [(m.sample, m.value, m.duration) for m in back.markers] == [
        (m.sample, m.value, m.duration) for m in at128.markers
    ]


def test_simulated_style_metadata_keys_are_kept(tmp_path: Path) -> None:
    rec = random_recording(100)
    rec.metadata = {
        "headset type": "EPOC X",
        "headset serial": "SIM1",
        "subject": "S01",
        "simulator": "seed=1;duration=5",
        "sampling": "eeg_128",  # derived again from rec.fs, not copied
    }
    path = tmp_path / "sim.csv"
    write_recording(rec, path)
    md = read_recording(path).metadata
    assert md["headset_type"] == "EPOCX"
    assert md["headset"] == "EPOC X"
    assert md["serial"] == "SIM1"
    assert md["subject"] == "S01"
    assert md["header"]["simulator"] == "seed=1;duration=5"
    assert "sampling" not in md["header"]


def test_write_errors(tmp_path: Path) -> None:
    rec = random_recording(10)
    with pytest.raises(EegstreamError, match=r"cannot write .*nowhere.*out.csv"):
        write_recording(rec, tmp_path / "nowhere" / "out.csv")
    rec.markers = [Marker(10, 0.0, 22, "blink")]
    with pytest.raises(ValueError, match="outside the recording's 10 samples"):
        write_recording(rec, tmp_path / "x.csv")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
