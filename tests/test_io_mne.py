"""EDF/BDF/FIF in through MNE, annotations out (issue #17, part 3).

Real MNE throughout: files are written with ``mne.export.export_raw`` / ``Raw.save`` and read
back by eegstream's reader; the annotation files ``detect --format mne`` writes are read with
``mne.read_annotations``. Without MNE (``sys.modules["mne"] = None``, which makes
``import mne`` fail exactly as an absent package does) an EDF is one line naming the extra.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eegstream.cli import main
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent
from eegstream.io.emotiv import read_recording, write_recording
from eegstream.io.recording import Recording
from eegstream.settings import ELECTRODES, Settings

mne = pytest.importorskip("mne", reason="the mne extra is not installed")

needs_model = pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: eegstream/models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)
MEAS = dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=dt.UTC)  # EDF keeps whole seconds


def to_raw(rec: Recording, names: list[str] | None = None, extra: bool = True) -> mne.io.RawArray:
    """The recording as MNE holds EEG: volts, channels by label, a measurement date."""
    names = names or [f"EEG.{e}" if i % 2 else e for i, e in enumerate(ELECTRODES)]
    data = rec.data.T * 1e-6
    if extra:  # a channel eegstream does not use, to show channels are found by label
        names = ["Counter", *names]
        data = np.vstack([np.arange(rec.n_samples)[None, :] * 1e-6, data])
    raw = mne.io.RawArray(data, mne.create_info(names, rec.fs, "eeg"), verbose="error")
    raw.set_meas_date(MEAS)
    return raw


@pytest.fixture(scope="module")
def simulated() -> Recording:
    from eegstream.simulate import simulate_recording

    return simulate_recording(60.0, 8301, blink_rate=18.0, clench_rate=6.0)


def test_edf_is_read_by_label_in_microvolts_with_markers_from_annotations(
    tmp_path: Path, make_recording
) -> None:
    rec = make_recording(8.0)
    raw = to_raw(rec)
    raw.set_annotations(
        mne.Annotations(
            [1.0, 2.5, 4.0, 6.0],
            [0.0, 0.5, 0.25, 0.0],
            ["22", "Jaw clench", "33024", "BAD_blink"],
            orig_time=None,
        )
    )
    edf = tmp_path / "rec.edf"
    mne.export.export_raw(edf, raw, verbose="error")
    got = read_recording(edf, marker_map={33024: "blink"})
    assert got.missing == ()
    # microvolts (not volts): EDF stores 16-bit integers, MNE's export one range for all
    # channels (here 0..~4,300 uV over 65,536 steps), so values come back within 0.1 uV
    np.testing.assert_allclose(got.data, rec.data, atol=0.1)
    assert got.timestamps[0] == pytest.approx(MEAS.timestamp(), abs=1e-6)
    assert np.diff(got.timestamps) == pytest.approx(1 / 128)
    assert [(m.sample, m.label, m.duration) for m in got.markers] == [
        (128, "blink", 0.0),
        (320, "jaw_clench", 0.5),
        (512, "blink", 0.25),
        (768, "blink", 0.0),
    ]
    assert [m.value for m in got.markers] == [22, -1, 33024, -1]
    without_map = read_recording(edf)
    assert [m.label for m in without_map.markers][2] == "marker_33024"


def test_fif_at_256_hz_is_resampled_and_missing_electrodes_are_named(
    tmp_path: Path, make_recording
) -> None:
    rec = make_recording(6.0, fs=256.0)
    fif = tmp_path / "rec_raw.fif"
    to_raw(rec, names=list(ELECTRODES)).save(fif, verbose="error")
    got = read_recording(fif)
    assert got.fs == 128
    assert got.n_samples == rec.n_samples // 2
    assert got.metadata["resampled_from"] == 256.0
    # the resampled sinusoids keep their amplitude (20 uV on 4,200)
    assert np.nanmax(got.data[64:-64, 0]) == pytest.approx(4220.0, abs=0.5)
    short = to_raw(rec, names=[e if e != "AF4" else "X1" for e in ELECTRODES])
    short.save(tmp_path / "short_raw.fif", verbose="error")
    with pytest.raises(EegstreamError, match=r"short_raw.fif has no channel AF4 .* it has: AF3"):
        read_recording(tmp_path / "short_raw.fif")
    (tmp_path / "broken.edf").write_bytes(b"0       not an edf header")
    with pytest.raises(EegstreamError, match=r"broken.edf: MNE could not read it as EDF"):
        read_recording(tmp_path / "broken.edf")


@needs_model
def test_detect_info_evaluate_on_edf_match_the_csv(
    tmp_path: Path, simulated: Recording, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "sim.csv"
    write_recording(simulated, csv)
    raw = to_raw(simulated)
    values = {"blink": "22", "jaw_clench": "23"}
    t0 = simulated.timestamps[0]
    raw.set_annotations(
        mne.Annotations(
            [m.time - t0 for m in simulated.markers],
            [m.duration for m in simulated.markers],
            [values[m.label] for m in simulated.markers],
        )
    )
    edf = tmp_path / "sim.edf"
    mne.export.export_raw(edf, raw, verbose="error")

    assert main(["detect", str(csv), "-o", str(tmp_path / "csv.jsonl")]) == 0
    assert main(["detect", str(edf), "-o", str(tmp_path / "edf.jsonl")]) == 0
    a = [json.loads(x) for x in (tmp_path / "csv.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "edf.jsonl").read_text().splitlines()]
    assert len(a) >= 8
    assert [e["label"] for e in b] == [e["label"] for e in a]
    for x, y in zip(a, b, strict=True):  # same samples, each on its own file's clock
        # within ~1 sample: onsets are sub-sample estimates, and EDF's 16 bits move them a little
        assert y["onset_lsl"] - MEAS.timestamp() == pytest.approx(x["onset_lsl"] - t0, abs=0.01)

    capsys.readouterr()
    assert main(["info", str(edf)]) == 0
    text = capsys.readouterr().out
    assert "2024-03-05 10:20:30 UTC" in text
    assert f"blink {sum(m.label == 'blink' for m in simulated.markers)}" in text

    assert main(["evaluate", str(csv), str(edf), "--json", str(tmp_path / "ev.json")]) == 0
    files = json.loads((tmp_path / "ev.json").read_text())["files"]
    found = [{k: (c["tp"], c["fn"]) for k, c in f["classes"].items()} for f in files]
    assert found[1] == found[0]  # the EDF's markers come from its annotations
    assert found[1]["blink"][0] > 0
    assert found[1]["jaw_clench"][0] > 0


@needs_model
@pytest.mark.parametrize("suffix", [".fif", ".txt"])
def test_detect_format_mne_round_trips_through_read_annotations(
    tmp_path: Path, simulated: Recording, suffix: str
) -> None:
    csv = tmp_path / "sim.csv"
    write_recording(simulated, csv)
    out = tmp_path / f"sim-annot{suffix}"
    assert main(["detect", str(csv), "-o", str(tmp_path / "ev.jsonl")]) == 0
    assert main(["detect", str(csv), "--format", "mne", "-o", str(out)]) == 0
    events = [
        ArtifactEvent.model_validate_json(x)
        for x in (tmp_path / "ev.jsonl").read_text().splitlines()
    ]
    ann = mne.read_annotations(out)
    assert ann.orig_time is not None
    bad = [i for i, d in enumerate(ann.description) if d != "BAD_signal_fault"]
    assert [ann.description[i] for i in bad] == [f"BAD_{e.label}" for e in events]
    onsets = ann.orig_time.timestamp() + ann.onset[bad]
    np.testing.assert_allclose(onsets, [e.onset_unix for e in events], atol=1e-5)
    np.testing.assert_allclose(ann.duration[bad], [e.duration for e in events], atol=1e-5)
    if suffix == ".fif":
        assert [ann.extras[i]["id"] for i in bad] == [e.id for e in events]
        assert [ann.extras[i]["confidence"] for i in bad] == pytest.approx(
            [e.confidence for e in events]
        )
    assert not list(tmp_path.glob(".*tmp*"))  # written whole, temp file gone


def test_format_mne_needs_an_annotation_file_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "whatever.csv", "--format", "mne"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--format mne writes an annotations file: give --output NAME with a suffix of" in err
    assert main(["detect", "whatever.csv", "--format", "mne", "-o", "x.json"]) == 2


def test_without_mne_an_edf_is_one_line_naming_the_extra(
    tmp_path: Path, make_recording, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    edf = tmp_path / "rec.edf"
    mne.export.export_raw(edf, to_raw(make_recording(4.0)), verbose="error")
    monkeypatch.setitem(sys.modules, "mne", None)  # `import mne` now fails: not installed
    for argv in (["detect", str(edf)], ["info", str(edf)], ["evaluate", str(edf)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert "reading rec.edf (EDF) needs MNE-Python, which is not installed" in err
        assert "pip install 'eegstream[mne]'" in err
    from eegstream import to_annotations

    with pytest.raises(EegstreamError, match=r"to_annotations needs MNE.*eegstream\[mne\]"):
        to_annotations([])


def test_replay_publishes_an_edf(tmp_path: Path, make_recording, lsl_name: str) -> None:
    edf = tmp_path / "rec.edf"
    mne.export.export_raw(edf, to_raw(make_recording(3.0)), verbose="error")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "eegstream"), "replay", str(edf), "--speed", "0"]
        + ["--name", lsl_name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"replaying {edf} (3.0 s, 128 Hz" in proc.stdout
    assert "replay stopped after 384 samples" in proc.stdout
