"""The genuine EmotivPRO 2.0 EPOC+ export (256 Hz, eyebrow raises) read where it lies."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from eegstream.cli import main
from eegstream.io import read_recording
from eegstream.io.info import inspect_recording
from eegstream.settings import ELECTRODES

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "emotivpro-2.0-epocplus-256hz-eyebrows.csv"
)
pytestmark = pytest.mark.skipif(
    not FIXTURE.is_file(),
    reason=f"the genuine EPOC+ fixture is not beside the checkout ({FIXTURE}); CI provides shared/",
)


@pytest.fixture(scope="module")
def columns() -> dict[str, np.ndarray]:
    """The fixture parsed independently with the csv module (the reference)."""
    with FIXTURE.open(newline="") as fh:
        fh.readline()
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    return {
        name: np.array([float(r[i]) if r[i] else np.nan for r in body])
        for i, name in enumerate(header)
    }


def test_native_read_matches_the_file_by_name(columns: dict[str, np.ndarray]) -> None:
    rec = read_recording(FIXTURE, target_fs=None)
    assert rec.fs == 256.0
    assert rec.metadata["fs_source"] == "metadata"
    assert rec.n_samples == 9_210
    assert rec.missing == ()
    for i, e in enumerate(ELECTRODES):
        assert np.array_equal(rec.data[:, i], columns[f"EEG.{e}"]), e
    assert np.array_equal(rec.timestamps, columns["Timestamp"])
    assert rec.interpolated is not None
    assert int(rec.interpolated.sum()) == 20
    assert rec.quality is not None
    for i, e in enumerate(ELECTRODES):
        assert np.array_equal(rec.quality[:, i], columns[f"CQ.{e}"].astype(np.float32)), e
    assert set(np.unique(rec.quality[:, ELECTRODES.index("T7")])) == {1.0, 2.0}
    assert rec.markers == []
    assert "original_timestamps" not in rec.metadata  # version 2.0 has no OriginalTimestamp
    md = rec.metadata
    assert md["headset"] == "EPOC+"
    assert md["headset_type"] == "EPOCPLUS"
    assert md["serial"] == "3B9ADEE2"
    assert md["samples"] == 9_210
    assert md["start_time"] == 1576079627.004193
    assert md["version"] == "2.0"


def test_resampled_to_128_hz_like_scipy(columns: dict[str, np.ndarray]) -> None:
    rec = read_recording(FIXTURE)
    assert rec.fs == 128.0
    assert rec.n_samples == 4_605
    raw = np.column_stack([columns[f"EEG.{e}"] for e in ELECTRODES])
    expected = resample_poly(raw, 1, 2, axis=0, padtype="edge")
    np.testing.assert_allclose(rec.data, expected, rtol=0, atol=1e-9)
    assert np.array_equal(rec.timestamps, columns["Timestamp"][::2])
    assert rec.interpolated is not None
    flagged = columns["EEG.Interpolated"] > 0
    assert np.array_equal(rec.interpolated, flagged[0::2] | flagged[1::2])
    assert rec.quality is not None
    assert rec.quality.shape == (4_605, 14)
    assert rec.metadata["resampled_from"] == 256.0


def test_info_summarises_the_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    info = inspect_recording(FIXTURE)
    assert (info.headset, info.fs, info.n_samples, info.interpolated) == ("EPOC+", 256.0, 9_210, 20)
    assert round(info.duration) == 36
    assert info.marker_counts == {}
    assert info.counter_gaps == 0
    by = {c.name: c for c in info.channels}
    assert by["T7"].quality_label == "bad"
    assert by["P8"].quality_label == "poor"
    assert by["O1"].quality_label == "good"
    assert not any(c.flat for c in info.channels)

    assert main(["info", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    for needle in (
        "headset: EPOC+ (serial 3B9ADEE2, firmware 625)",
        "duration: 36.0 s",
        "samples: 9,210 samples",
        "sampling rate: 256 Hz (from the metadata line); detection resamples it to the model's 128 Hz",
        "channels found: 14 (AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4)",
        "channels missing: none",
        "markers: none",
        "interpolated: 20 interpolated samples",
        "contact quality from CQ.* columns",
    ):
        assert needle in out, needle
    rows = {line.split()[0]: line for line in out.splitlines() if line[:4].strip() in ELECTRODES}
    assert set(rows) == set(ELECTRODES)
    assert "bad 1.0 (min 1)" in rows["T7"]
    assert "poor 2.0 (min 2)" in rows["P8"]
    assert "good 4.0 (min 4)" in rows["O1"]
