"""``eegstream info``: the analysis (flags, gaps, counts) and the printed report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eegstream.cli import main
from eegstream.io import read_recording, write_recording
from eegstream.io.info import analyse_recording, format_info, inspect_recording
from eegstream.io.recording import Marker, Recording
from eegstream.settings import ELECTRODES

FS = 128.0
T0 = 1_700_000_000.0


def clean_recording(seconds: float = 20.0, seed: int = 0) -> Recording:
    """Background-like EEG (~15 uV) on the Emotiv offset: nothing to flag."""
    n = int(seconds * FS)
    rng = np.random.default_rng(seed)
    data = 4200.0 + rng.normal(0, 15, (n, 14))
    return Recording(
        data=data,
        timestamps=T0 + np.arange(n) / FS,
        fs=FS,
        interpolated=np.zeros(n, dtype=bool),
        metadata={"fs_source": "metadata", "counter": (np.arange(n) % 128).astype(np.float64)},
        source="clean.csv",
    )


def idx(name: str) -> int:
    return ELECTRODES.index(name)


def test_clean_recording_has_no_flags() -> None:
    info = analyse_recording(clean_recording())
    assert info.n_samples == 2560
    assert info.duration == 20.0
    assert info.channels_found == list(ELECTRODES)
    assert info.channels_missing == []
    assert info.missing_for_detection == []
    assert all(c.flags == [] for c in info.channels)
    assert info.counter_gaps == 0
    assert info.timestamp_gaps == 0
    assert info.interpolated == 0
    assert info.marker_counts == {}
    typical = [c.typical_std for c in info.channels]
    assert min(typical) > 13
    assert max(typical) < 17


def test_flat_saturated_and_noisy_electrodes_are_flagged() -> None:
    rec = clean_recording()
    rec.data[:, idx("AF4")] = 4100.0  # electrode off: a flat line
    rec.data[500:504, idx("F3")] += 700_000.0  # wireless glitches: 4 single samples
    rec.data[[100, 900, 1500, 2000], idx("O1")] += 700_000.0  # 4 separate spikes
    top = rec.data[:, idx("P7")].max() + 50.0
    rec.data[1000:1010, idx("P7")] = top  # stuck at the rail for 10 samples
    rec.data[:, idx("T8")] += np.random.default_rng(1).normal(0, 150, rec.n_samples)
    info = analyse_recording(rec)
    by = {c.name: c for c in info.channels}
    assert by["AF4"].flags == ["flat"]
    assert by["AF4"].flat_seconds == 20.0
    assert by["F3"].flags == ["saturated"]
    assert by["F3"].out_of_range == 4
    assert by["O1"].out_of_range == 4
    assert by["P7"].flags == ["saturated"]
    assert by["P7"].stuck == 10
    assert by["P7"].out_of_range == 0
    assert by["T8"].flags == ["noisy"]
    assert {c.name for c in info.channels if c.flags} == {"AF4", "F3", "O1", "P7", "T8"}
    text = format_info(info)
    assert "AF4" in text
    assert "flat (20 s)" in text
    assert "saturated (4 samples beyond the fault limit)" in text
    assert "saturated (10 stuck at the rail)" in text
    limit = analyse_recording(rec, fault_limit_uv=1e9)
    assert {c.name: c.flags for c in limit.channels}["F3"] == []


def test_gaps_interpolation_markers_and_missing_electrodes() -> None:
    rec = clean_recording()
    keep = np.ones(rec.n_samples, dtype=bool)
    keep[1000:1010] = False  # 10 samples lost in transmission
    keep[2000:2003] = False
    counter = rec.metadata["counter"][keep]
    rec = Recording(
        data=rec.data[keep],
        timestamps=rec.timestamps[keep],
        fs=FS,
        markers=[
            Marker(10, T0, 22, "blink"),
            Marker(20, T0, 22, "blink"),
            Marker(30, T0, 23, "jaw_clench"),
            Marker(40, T0, 99, "marker_99"),
        ],
        missing=("O1", "AF4"),
        interpolated=np.arange(keep.sum()) % 100 == 0,
        metadata={"counter": counter, "fs_source": "metadata"},
    )
    rec.data[:, [idx("O1"), idx("AF4")]] = np.nan
    info = analyse_recording(rec)
    assert (info.counter_gaps, info.counter_missing) == (2, 13)
    assert (info.timestamp_gaps, info.timestamp_missing) == (2, 13)
    assert info.interpolated == 26
    assert info.marker_counts == {"blink": 2, "jaw_clench": 1, "marker_99": 1}
    assert info.channels_missing == ["O1", "AF4"]
    assert info.missing_for_detection == ["AF4"]
    text = format_info(info)
    assert "channels missing: O1, AF4 -- detection needs AF4" in text
    assert "markers: 4 (blink 2, jaw_clench 1, marker_99 1)" in text
    assert "counter gaps 2 (13 samples)" in text
    assert "interpolated: 26 interpolated samples" in text
    assert info.to_dict()["channels"][idx("O1")]["present"] is False


def test_cli_info_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = clean_recording(30)
    rec.metadata = {"headset_type": "EPOCX", "serial": "S1", "subject": "me"}
    rec.markers = [Marker(300, float(rec.timestamps[300]), 22, "blink")]
    path = tmp_path / "r.csv"
    write_recording(rec, path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "headset: EPOC X (serial S1)" in out
    assert "subject: me" in out
    assert "duration: 30.0 s (0 min 30.0 s)" in out
    assert "samples: 3,840 samples" in out
    assert "sampling rate: 128 Hz (from the metadata line)\n" in out
    assert "markers: 1 (blink 1)" in out
    assert "missing samples: counter gaps none; timestamp gaps none" in out
    assert "contact quality" not in out  # no CQ columns in this file
    for e in ELECTRODES:
        assert f"\n{e:<10}" in out


def test_info_on_a_plain_csv_uses_fs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.csv"
    rows = [",".join(ELECTRODES)] + [
        ",".join(f"{4200 + np.sin(i + j):.3f}" for j in range(14)) for i in range(512)
    ]
    path.write_text("\n".join(rows) + "\n")
    assert main(["info", str(path), "--fs", "256"]) == 0
    out = capsys.readouterr().out
    assert "sampling rate: 256 Hz (as given with --fs); detection resamples it" in out
    assert "duration: 2.0 s" in out
    assert "timestamps: none in the file; synthesised" in out
    info = inspect_recording(path)
    assert info.fs == 128.0
    assert info.fs_source == "default"
    assert "assumed: the file states none; pass --fs" in format_info(info)


def test_info_refuses_what_detection_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = clean_recording(2)
    rec.fs = 500.0
    rec.timestamps = T0 + np.arange(rec.n_samples) / 500.0
    path = tmp_path / "r500.csv"
    write_recording(rec, path)
    assert read_recording(path, target_fs=None).fs == 500.0
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "r500.csv is sampled at 500 Hz, but eegstream works at 128 Hz" in err[0]
