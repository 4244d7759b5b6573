"""Recordings that used to give silently wrong results: each is now refused or repaired, and said.

Issue #15 (a careless user's review): an empty electrode, NaN/inf cells, a metadata rate that
contradicts the timestamps, stale or identical timestamps, duplicated rows, a file shorter than
one window, a bad rate, a device instead of a file, and output paths that fail after the work.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from test_detector import PowerEngine, identity_features
from test_offline import finals, synthetic_recording

from eegstream.cli import main
from eegstream.errors import EegstreamError
from eegstream.events import StatusMessage
from eegstream.io import read_recording, write_recording
from eegstream.io.info import format_info, inspect_recording
from eegstream.offline import detect_messages, flag_events
from eegstream.settings import ELECTRODES, FS, Settings

#: Columns of the files :func:`written` makes (write_recording's layout).
TS, COUNTER = 0, 2


def written(tmp_path: Path, seconds: float = 30, name: str = "rec.csv") -> Path:
    """A synthetic recording with blinks and jaw clenches, as an EmotivPRO CSV."""
    path = tmp_path / name
    write_recording(synthetic_recording(seconds, source=name), path)
    return path


def edit(path: Path, rows: list[list[str]] | None = None, meta: str | None = None) -> Path:
    """Rewrite ``path`` with other data rows and/or metadata line; returns it."""
    lines = path.read_text().splitlines()
    head = [meta if meta is not None else lines[0], lines[1]]
    body = [",".join(r) for r in rows] if rows is not None else lines[2:]
    path.write_text("\n".join(head + body) + "\n")
    return path


def rows_of(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[2:]]


def column(path: Path, name: str) -> int:
    return path.read_text().splitlines()[1].split(",").index(name)


def detect(rec: object) -> list:
    return detect_messages(rec, PowerEngine(), identity_features(), Settings(), progress=False)  # type: ignore[arg-type]


# --- an empty electrode ----------------------------------------------------------------------


def test_empty_model_electrode_is_a_dead_electrode_and_detection_runs_on_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = written(tmp_path)
    clean = finals(detect(read_recording(path)))
    assert len(clean) >= 6
    rows = rows_of(path)
    f3 = column(path, "EEG.F3")  # a model electrode the test engine does not look at
    for r in rows:
        r[f3] = "nan"
    rec = read_recording(edit(path, rows))
    assert rec.metadata["empty_electrodes"] == ["F3"]
    assert "F3 empty" in rec.metadata["repairs"][0]
    with caplog.at_level(logging.WARNING):
        msgs = detect(rec)
    dead = [m for m in msgs if isinstance(m, StatusMessage) and m.status == "dead_electrode"]
    assert [d.electrodes for d in dead] == [["F3"]]
    assert [(e.label, e.onset_lsl) for e in finals(msgs)] == [(e.label, e.onset_lsl) for e in clean]
    assert "F3 have no usable samples" in caplog.text
    assert "dead_electrode" in caplog.text


def test_info_says_an_electrode_is_empty_without_runtime_warnings(tmp_path: Path) -> None:
    path = written(tmp_path, 10)
    rows = rows_of(path)
    af3 = column(path, "EEG.AF3")
    for r in rows:
        r[af3] = "NaN"
    info = inspect_recording(edit(path, rows))  # pytest turns any RuntimeWarning into an error
    af3_info = info.channels[ELECTRODES.index("AF3")]
    assert af3_info.empty
    text = format_info(info)
    assert "AF3            empty  the column holds no numbers (all 1,280 samples NaN/inf)" in text
    assert " nan" not in text  # the old report printed nan means and stds
    assert "checked and repaired:" in text


# --- NaN / inf / huge cells ------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "1e309", "1e300"])
def test_an_isolated_bad_cell_is_interpolated_and_does_not_move_events(
    tmp_path: Path, cell: str
) -> None:
    path = written(tmp_path)
    clean_rec = read_recording(path)
    clean = finals(detect(clean_rec))
    rows = rows_of(path)
    af3 = column(path, "EEG.AF3")
    inside = int(round((clean[0].onset_lsl - clean_rec.timestamps[0]) * FS)) + 10  # in a blink
    rows[inside][af3] = cell
    rec = read_recording(edit(path, rows))
    a = ELECTRODES.index("AF3")
    expect = (clean_rec.data[inside - 1, a] + clean_rec.data[inside + 1, a]) / 2
    assert rec.data[inside, a] == pytest.approx(expect)
    assert np.isfinite(rec.data).all()
    assert rec.interpolated is not None
    assert rec.interpolated[inside]
    assert rec.metadata["nonfinite"] == {"AF3": 1}
    assert "1 cell(s) that were not numbers" in rec.metadata["repairs"][0]
    got = finals(detect(rec))
    assert [e.label for e in got] == [e.label for e in clean]
    for e, c in zip(got, clean, strict=True):  # the review saw one inf cell move an onset 219 ms
        assert e.onset_lsl == pytest.approx(c.onset_lsl, abs=0.5 / FS)
    assert "interpolated" in flag_events(got, rec)[0].flags  # detect flags the event


def test_a_long_nan_run_stays_nan_and_its_windows_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = written(tmp_path, 10)
    rows = rows_of(path)
    t7 = column(path, "EEG.T7")
    for r in rows[300:340]:
        r[t7] = ""  # empty cells in an EEG column: also not numbers ...
    with pytest.raises(EegstreamError, match=r"line 303, column EEG.T7: expected a number"):
        read_recording(edit(path, rows))  # ... which the reader refuses, naming the line
    for r in rows[300:340]:
        r[t7] = "nan"
    rec = read_recording(edit(path, rows))
    assert np.isnan(rec.data[300:340, ELECTRODES.index("T7")]).all()
    assert rec.metadata["nonfinite"] == {"T7": 40}
    with caplog.at_level(logging.WARNING):
        detect(rec)
    assert "40 non-finite sample(s) left on the model electrodes" in caplog.text
    assert "windows held non-finite samples and were not classified" in caplog.text


# --- rates -----------------------------------------------------------------------------------


def test_a_metadata_rate_that_contradicts_the_timestamps_is_an_error(tmp_path: Path) -> None:
    path = written(tmp_path, 5)
    meta = path.read_text().splitlines()[0]
    assert "sampling rate:128" in meta
    edit(path, meta=meta.replace("sampling rate:128", "sampling rate:256"))
    with pytest.raises(
        EegstreamError,
        match=r"says 'sampling rate 256' in its metadata line but its timestamps advance at "
        r"128.0 Hz; .*fix the metadata line's rate \(e.g. 'sampling rate:128'\)",
    ):
        read_recording(path)


@pytest.mark.parametrize(
    "entry", ["sampling rate:-128", "sampling rate:nan", "sampling rate:0", "sampling:eeg_-128"]
)
def test_a_rate_that_is_not_a_positive_number_is_an_error(tmp_path: Path, entry: str) -> None:
    path = written(tmp_path, 5)
    meta = path.read_text().splitlines()[0]
    edit(path, meta=meta.replace("sampling rate:128", entry))
    with pytest.raises(
        EegstreamError,
        match=rf"rec.csv: the metadata line says '{entry}', expected a positive sampling rate",
    ):
        read_recording(path)


# --- timestamps and duplicated rows ----------------------------------------------------------


def test_identical_timestamps_are_an_error(tmp_path: Path) -> None:
    path = written(tmp_path, 5)
    rows = rows_of(path)
    for r in rows:
        r[TS] = rows[0][TS]
    with pytest.raises(EegstreamError, match=r"all 640 rows have the same timestamp 1700000000"):
        read_recording(edit(path, rows))


def test_mostly_repeated_timestamps_are_an_error(tmp_path: Path) -> None:
    path = written(tmp_path, 5)
    rows = rows_of(path)
    for i in range(1, len(rows), 3):  # two of every three rows repeat the one before
        rows[i][TS] = rows[i + 1][TS] = rows[i - 1][TS]
    with pytest.raises(EegstreamError, match=r"426 of 640 rows repeat the previous row's time"):
        read_recording(edit(path, rows))


def test_a_repeated_timestamp_is_spread_to_the_next_one(tmp_path: Path) -> None:
    path = written(tmp_path)
    clean = read_recording(path)
    rows = rows_of(path)
    stale = list(range(50, len(rows) - 1, 37))[:100]
    for i in stale:
        rows[i][TS] = rows[i - 1][TS]
    rec = read_recording(edit(path, rows))
    assert rec.n_samples == clean.n_samples
    np.testing.assert_allclose(rec.timestamps, clean.timestamps, rtol=0, atol=1e-6)
    assert rec.metadata["repairs"] == [
        "100 row(s) repeated the previous row's timestamp; their timestamps were spread evenly "
        "up to the next timestamp"
    ]


@pytest.mark.parametrize("with_counter", [True, False])
def test_duplicated_rows_are_dropped_and_their_marker_kept(
    tmp_path: Path, with_counter: bool
) -> None:
    path = written(tmp_path)
    clean = read_recording(path)
    rows = rows_of(path)
    if not with_counter:
        names = path.read_text().splitlines()[1].split(",")
        keep = [i for i, n in enumerate(names) if n != "EEG.Counter"]
        lines = path.read_text().splitlines()
        lines[1] = ",".join(names[i] for i in keep)
        path.write_text("\n".join(lines) + "\n")
        rows = [[r[i] for i in keep] for r in rows]
    onset = clean.markers[1].sample
    marked = list(rows[onset])
    unmarked = [*rows[onset][:-3], "", "", ""]
    # 64 copies of one row in a jaw clench's place; the marker row written with its marker last
    dup = [*rows[:700], *[rows[700]] * 64, *rows[701:onset], unmarked, marked, *rows[onset + 1 :]]
    rec = read_recording(edit(path, dup))
    assert rec.n_samples == clean.n_samples
    assert np.array_equal(rec.data, clean.data)
    assert np.array_equal(rec.timestamps, clean.timestamps)
    assert rec.markers == clean.markers
    what = "counter" if with_counter else "values"
    assert rec.metadata["repairs"] == [
        f"dropped 64 duplicated row(s) (same timestamp and {what} as the row before)"
    ]
    assert finals(detect(rec)) == finals(detect(clean))


# --- too short, not a file -------------------------------------------------------------------


def test_a_recording_shorter_than_one_window_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = written(tmp_path, 5)
    edit(path, rows_of(path)[:10])
    with pytest.raises(
        EegstreamError,
        match=r"rec.csv has 10 sample\(s\) \(0.08 s at 128 Hz\) but detection needs at least one "
        r"window of 64 samples \(0.5 s\)",
    ):
        detect(read_recording(path))
    assert main(["detect", str(path), "--backend", "onnxruntime"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "at least one window of 64 samples" in err


@pytest.mark.timeout(20)  # with the check gone, a FIFO blocks the reader: fail, do not hang
def test_devices_pipes_and_folders_are_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(EegstreamError, match=r"is not a regular file \(a device, pipe or"):
            read_recording(path)
    with pytest.raises(EegstreamError, match=r"is a folder; give the path of a CSV file"):
        read_recording(tmp_path)
    one_line = tmp_path / "one.csv"
    one_line.write_text("0," * 600_000)  # 1.2 MB without a line break
    with pytest.raises(EegstreamError, match=r"one.csv, line 1: more than 1,048,576 characters"):
        read_recording(one_line)


# --- output paths ----------------------------------------------------------------------------


def test_detect_output_that_is_a_folder_fails_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the recording does not even exist: the output is checked first
    assert main(["detect", str(tmp_path / "none.csv"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--output {tmp_path} is a folder; give a file name" in err


def test_bids_sidecar_that_is_a_folder_leaves_no_tsv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = written(tmp_path, 5)
    (tmp_path / "events.json").mkdir()
    out = tmp_path / "events.tsv"
    assert main(["detect", str(path), "--format", "bids", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--output (BIDS sidecar)" in err
    assert "events.json is a folder" in err
    assert not out.exists()


def test_evaluate_json_that_cannot_be_written_is_one_line_and_no_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = written(tmp_path, 5)
    assert main(["evaluate", str(path), "--json", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "is a folder" in err
    # a folder that accepts no new file (refused up front unless root, at the write if root):
    # one line either way, and no table that claims a success
    assert main(["evaluate", str(path), "--backend", "onnxruntime", "--json", "/proc/r.json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "--json /proc/r.json" in err


def test_outputs_are_written_whole_or_not_at_all(tmp_path: Path) -> None:
    from eegstream.offline import write_outputs

    good = tmp_path / "events.tsv"
    bad = tmp_path / "gone" / "events.json"  # its folder does not exist
    with pytest.raises(EegstreamError, match=r"--json .*events.json: cannot write \(No such file"):
        write_outputs([("--output", good, "a\n"), ("--json", bad, "{}\n")])
    assert list(tmp_path.iterdir()) == []  # neither the .tsv nor a temp file
    write_outputs([("--output", good, "a\n")])
    assert good.read_text() == "a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["events.tsv"]
