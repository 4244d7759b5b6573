"""The EmotivPRO reader on hand-made files: layouts, names, markers, resampling, errors."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from eegstream.cli import main
from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.io import read_recording, write_recording
from eegstream.io.emotiv import parse_metadata_line
from eegstream.io.recording import Marker, Recording
from eegstream.settings import ELECTRODES

T0 = 1_700_000_000.0
META_128 = (
    "title:hand made, start timestamp:1700000000.000000, stop timestamp:1700000001.000000, "
    "headset type:EPOCX, headset serial:ABCD1234, headset firmware:625, channels:21, "
    "sampling:eeg_128;mot_32, samples:{n}      , version:2.1"
)


def value(sample: int, electrode: str) -> float:
    """A value that tells which sample and which electrode it came from."""
    return 4000.0 + 10.0 * ELECTRODES.index(electrode) + sample / 8.0


def make_csv(
    path: Path,
    n: int = 64,
    *,
    names: list[str] | None = None,
    meta: str | None = META_128,
    header: bool = True,
    fs: float = 128.0,
    extra: dict[int, dict[str, str]] | None = None,
) -> Path:
    """Write a small CSV: `names` in that order; EEG columns hold `value(sample, electrode)`."""
    if names is None:
        names = ["Timestamp", "EEG.Counter", "EEG.Interpolated"]
        names += [f"EEG.{e}" for e in ELECTRODES]
        names += ["MarkerIndex", "MarkerType", "MarkerValueInt"]
    lines = []
    if meta is not None:
        lines.append(meta.format(n=n))
    if header:
        lines.append(",".join(names))
    for i in range(n):
        cells = []
        for name in names:
            u = name.upper().removeprefix("EEG.")
            if u == "TIMESTAMP":
                cells.append(repr(T0 + i / fs))
            elif u == "COUNTER":
                cells.append(str(i % int(fs)))
            elif u == "INTERPOLATED":
                cells.append("1" if i in (5, 6) else "0")
            elif u in {e.upper() for e in ELECTRODES}:
                e = next(e for e in ELECTRODES if e.upper() == u)
                cells.append(f"{value(i, e):.6f}")
            else:
                cells.append("")
        for name, cell in (extra or {}).get(i, {}).items():
            cells[names.index(name)] = cell
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_data(n: int, electrodes: tuple[str, ...] = ELECTRODES) -> np.ndarray:
    out = np.full((n, 14), np.nan)
    for e in electrodes:
        out[:, ELECTRODES.index(e)] = [value(i, e) for i in range(n)]
    return out


# --- layouts -------------------------------------------------------------------------------------


def test_metadata_line_and_header(tmp_path: Path) -> None:
    rec = read_recording(make_csv(tmp_path / "a.csv", 64))
    assert rec.fs == 128.0
    assert rec.n_samples == 64
    assert np.array_equal(rec.data, expected_data(64))
    assert np.array_equal(rec.timestamps, T0 + np.arange(64) / 128.0)
    assert rec.missing == ()
    assert rec.interpolated is not None
    assert np.flatnonzero(rec.interpolated).tolist() == [5, 6]
    assert rec.quality is None
    md = rec.metadata
    assert md["headset"] == "EPOC X"
    assert md["serial"] == "ABCD1234"
    assert md["samples"] == 64  # padded in the file
    assert md["start_time"] == T0
    assert md["fs_source"] == "metadata"
    assert md["header"]["sampling"] == "eeg_128;mot_32"
    assert np.array_equal(md["counter"], np.arange(64) % 128)


def test_header_only_with_bare_labels_in_shuffled_order_and_any_case(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    bare = [e.lower() if i % 2 else e for i, e in enumerate(ELECTRODES)]
    names = ["timestamp", *bare, "Interpolated", "junk"]
    names = [names[i] for i in rng.permutation(len(names))]
    rec = read_recording(make_csv(tmp_path / "b.csv", 300, names=names, meta=None))
    assert np.array_equal(rec.data, expected_data(300))
    assert rec.fs == 128.0
    assert rec.metadata["fs_source"] == "timestamps"
    assert rec.metadata["header"] == {}


def test_old_labels_form_without_header_row(tmp_path: Path) -> None:
    names = ["COUNTER", "INTERPOLATED", *ELECTRODES, "RAW_CQ", "TIMESTAMP"]
    meta = (
        "title:old, recorded:30.03.16 15.59.09, sampling:128, subject:s1, "
        "labels:" + " ".join(names) + " , chan:18, samples:{n}, units:emotiv"
    )
    rec = read_recording(make_csv(tmp_path / "c.csv", 50, names=names, meta=meta, header=False))
    assert np.array_equal(rec.data, expected_data(50))
    assert rec.metadata["columns"] == names
    assert rec.metadata["header"]["recorded"] == "30.03.16 15.59.09"


def test_plain_channel_columns_get_synthesised_timestamps(tmp_path: Path) -> None:
    path = make_csv(tmp_path / "d.csv", 40, names=list(ELECTRODES), meta=None)
    rec = read_recording(path)
    assert np.array_equal(rec.data, expected_data(40))
    assert rec.fs == 128.0
    assert rec.metadata["fs_source"] == "default"
    assert rec.metadata["timestamps_synthesised"] is True
    assert np.array_equal(rec.timestamps, np.arange(40) / 128.0)
    assert rec.interpolated is None
    rec = read_recording(path, fs=256)  # a 256 Hz plain file given --fs: resampled
    assert rec.fs == 128.0
    assert rec.metadata["resampled_from"] == 256.0
    assert rec.n_samples == 20


def test_gzip_and_crlf_are_transparent(tmp_path: Path) -> None:
    plain = make_csv(tmp_path / "e.csv", 64)
    gz = tmp_path / "e.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes().replace(b"\n", b"\r\n")))
    a, b = read_recording(plain), read_recording(gz)
    assert np.array_equal(a.data, b.data)
    assert np.array_equal(a.timestamps, b.timestamps)


def test_parse_metadata_line_keeps_commas_in_values_and_strips_padding() -> None:
    md = parse_metadata_line(
        "title:a, b, start timestamp:1.5, samples:9210      , sampling rate:256, version:2.1,\n"
    )
    assert md == {
        "title": "a, b",
        "start timestamp": "1.5",
        "samples": "9210",
        "sampling rate": "256",
        "version": "2.1",
    }


# --- contact quality, markers, sidecar ----------------------------------------------------------


def test_contact_quality_columns_and_empty_cells_in_them(tmp_path: Path) -> None:
    names = ["Timestamp", *[f"EEG.{e}" for e in ELECTRODES], "CQ.AF3", "CQ.T7", "CQ.Overall"]
    extra = {i: {"CQ.AF3": "4", "CQ.T7": "1" if i < 10 else "2"} for i in range(20)}
    extra[3]["CQ.T7"] = ""  # some exports leave quality cells empty between updates
    rec = read_recording(make_csv(tmp_path / "q.csv", 20, names=names, extra=extra))
    assert rec.quality is not None
    assert rec.quality.dtype == np.float32
    assert np.all(rec.quality[:, ELECTRODES.index("AF3")] == 4)
    t7 = rec.quality[:, ELECTRODES.index("T7")]
    assert np.isnan(t7[3])
    assert t7[0] == 1
    assert t7[15] == 2
    assert np.isnan(rec.quality[:, ELECTRODES.index("O1")]).all()
    assert rec.metadata["quality_source"] == "CQ"


def test_eq_columns_stand_in_for_missing_cq_and_other_streams_are_ignored(tmp_path: Path) -> None:
    names = ["Timestamp", *[f"EEG.{e}" for e in ELECTRODES], "EQ.AF3", "EQ.OVERALL"]
    names += ["MOT.AccX", "POW.AF3.Theta", "PM.Focus.Scaled", "EEG.RawCq", "EEG.Battery"]
    extra = {i: {"EQ.AF3": "3", "MOT.AccX": "x", "POW.AF3.Theta": ""} for i in range(10)}
    rec = read_recording(make_csv(tmp_path / "eq.csv", 10, names=names, extra=extra))
    assert np.array_equal(rec.data, expected_data(10))
    assert rec.metadata["quality_source"] == "EQ"
    assert rec.quality is not None
    assert np.all(rec.quality[:, 0] == 3)
    assert np.isnan(rec.quality[:, 1:]).all()


def test_markers_default_and_custom_labels(tmp_path: Path) -> None:
    extra = {
        10: {"MarkerIndex": "1", "MarkerType": "1", "MarkerValueInt": "22"},
        30: {"MarkerIndex": "2", "MarkerType": "1", "MarkerValueInt": "23.000000"},
        50: {"MarkerIndex": "3", "MarkerType": "1", "MarkerValueInt": "7"},
    }
    path = make_csv(tmp_path / "m.csv", 64, extra=extra)
    rec = read_recording(path)
    t = rec.timestamps
    assert rec.markers == [
        Marker(10, t[10], 22, "blink"),
        Marker(30, t[30], 23, "jaw_clench"),
        Marker(50, t[50], 7, "marker_7"),
    ]
    custom = read_recording(path, marker_labels={7: "blink", 22: "eyes"})
    assert [m.label for m in custom.markers] == ["eyes", "marker_23", "blink"]


def test_interval_marker_rows_and_sidecar_give_durations(tmp_path: Path) -> None:
    extra = {
        10: {"MarkerIndex": "1", "MarkerType": "1", "MarkerValueInt": "22"},
        42: {"MarkerIndex": "1", "MarkerType": "2", "MarkerValueInt": "22"},  # same index: end
        50: {"MarkerIndex": "2", "MarkerType": "1", "MarkerValueInt": "23"},
    }
    path = make_csv(tmp_path / "rec.csv", 100, extra=extra)
    rec = read_recording(path)
    assert [(m.sample, m.value, m.duration) for m in rec.markers] == [(10, 22, 0.25), (50, 23, 0.0)]
    side = tmp_path / "rec_intervalMarker.csv"
    side.write_text(
        "latency,duration,type,marker_value,key,timestamp,marker_id\n"
        f"{50 / 128:.6f},0.75,Jaw clench,23,-1,{T0 + 50 / 128:.6f},1\n"  # known: duration
        f"{80 / 128:.6f},0.5,blink,22,-1,,2\n"  # only in the sidecar, located by latency
    )
    rec = read_recording(path)
    assert [(m.sample, m.value, m.label, m.duration) for m in rec.markers] == [
        (10, 22, "blink", 0.25),
        (50, 23, "jaw_clench", 0.75),
        (80, 22, "blink", 0.5),
    ]
    side.write_text("when,what\n1,2\n")
    with pytest.raises(
        EegstreamError, match=r"marker file .*rec_intervalMarker.csv: expected the columns latency"
    ):
        read_recording(path)


# --- 256 Hz ---------------------------------------------------------------------------------------


def test_256_hz_is_resampled_like_scipy_with_markers_and_flags(tmp_path: Path) -> None:
    n = 512
    rng = np.random.default_rng(0)
    data = 4200 + rng.normal(0, 20, (n, 14))
    interp = np.zeros(n, dtype=bool)
    interp[[100, 101, 301]] = True
    rec = Recording(
        data=data,
        timestamps=T0 + np.arange(n) / 256.0,
        fs=256.0,
        markers=[
            Marker(201, T0 + 201 / 256, 22, "blink"),
            Marker(400, T0 + 400 / 256, 23, "jaw_clench"),
        ],
        interpolated=interp,
    )
    path = tmp_path / "r256.csv"
    write_recording(rec, path)
    raw = read_recording(path, target_fs=None)
    assert raw.fs == 256.0
    assert np.array_equal(raw.data, np.round(data, 6))
    out = read_recording(path)
    assert out.fs == 128.0
    assert out.metadata["resampled_from"] == 256.0
    expected = resample_poly(np.round(data, 6), 1, 2, axis=0, padtype="edge")
    np.testing.assert_allclose(out.data, expected, rtol=0, atol=1e-9)
    assert np.array_equal(out.timestamps, raw.timestamps[::2])
    assert out.interpolated is not None
    assert np.flatnonzero(out.interpolated).tolist() == [50, 150]
    assert [(m.sample, m.value) for m in out.markers] == [(101, 22), (200, 23)]
    assert all(m.time == out.timestamps[m.sample] for m in out.markers)
    assert "counter" not in out.metadata  # a 256 Hz counter means nothing at 128 Hz


# --- errors -------------------------------------------------------------------------------------


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(
        EegstreamError, match=r"recording .*nope.csv does not exist; check the path"
    ):
        read_recording(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EegstreamError, match=r"recording .*empty.csv is empty"):
        read_recording(empty)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n  \n")
    with pytest.raises(EegstreamError, match=r"blank.csv is empty"):
        read_recording(blank)
    only_header = make_csv(tmp_path / "h.csv", 0)
    with pytest.raises(EegstreamError, match=r"h.csv has a header but no data rows"):
        read_recording(only_header)
    only_meta = tmp_path / "meta.csv"
    only_meta.write_text(META_128.format(n=0) + "\n")
    with pytest.raises(EegstreamError, match=r"meta.csv has a metadata line but no header row"):
        read_recording(only_meta)
    with pytest.raises(EegstreamError, match=r"is a folder"):
        read_recording(tmp_path)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(EegstreamError, match=r"bin.csv is not a readable text CSV"):
        read_recording(binary)


def test_missing_required_electrode(tmp_path: Path) -> None:
    names = ["Timestamp", *[f"EEG.{e}" for e in ELECTRODES if e not in ("AF4", "O1")]]
    path = make_csv(tmp_path / "noaf4.csv", 30, names=names)
    with pytest.raises(
        MissingChannelsError,
        match=r"noaf4.csv has no channel AF4 \(detection needs AF4\); it has: AF3, F7",
    ) as exc:
        read_recording(path)
    assert exc.value.missing == ["AF4"]  # O1 is not read by the model
    rec = read_recording(path, require_electrodes=False)
    assert rec.missing == ("O1", "AF4")
    present = tuple(e for e in ELECTRODES if e not in rec.missing)
    assert np.array_equal(rec.data, expected_data(30, present), equal_nan=True)
    nothing = make_csv(tmp_path / "none.csv", 5, names=["Timestamp", "Foo", "Bar", "AF3x"])
    with pytest.raises(
        MissingChannelsError, match=r"none.csv has no channel AF3, F7.*it has: no EEG channels"
    ):
        read_recording(nothing, require_electrodes=False)


def test_non_numeric_and_empty_cells_name_line_and_column(tmp_path: Path) -> None:
    path = make_csv(tmp_path / "text.csv", 30, extra={17: {"EEG.T8": "abc"}})
    with pytest.raises(
        EegstreamError, match=r"text.csv, line 20, column EEG.T8: expected a number, found 'abc'"
    ):
        read_recording(path)
    path = make_csv(tmp_path / "hole.csv", 30, extra={3: {"EEG.AF4": ""}})
    with pytest.raises(
        EegstreamError,
        match=r"hole.csv, line 6, column EEG.AF4: expected a number, found an empty cell",
    ):
        read_recording(path)
    path = make_csv(tmp_path / "mark.csv", 30, extra={4: {"MarkerValueInt": "blink"}})
    with pytest.raises(
        EegstreamError,
        match=r"mark.csv, line 7, column MarkerValueInt: expected a number, found 'blink'",
    ):
        read_recording(path)
    short = make_csv(tmp_path / "short.csv", 30)
    lines = short.read_text().splitlines()
    lines[9] = ",".join(lines[9].split(",")[:5])
    short.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        EegstreamError,
        match=r"short.csv, line 10: the row has 5 cells but the header names 20 columns \(no cell for EEG.F3\); the file may be truncated",
    ):
        read_recording(short)


def test_sampling_rate_problems(tmp_path: Path) -> None:
    meta_500 = META_128.replace("eeg_128;mot_32", "eeg_500")
    path = make_csv(tmp_path / "r500.csv", 64, meta=meta_500, fs=500)
    with pytest.raises(
        EegstreamError,
        match=r"r500.csv is sampled at 500 Hz, but eegstream works at 128 Hz and only resamples 256 Hz",
    ):
        read_recording(path)
    assert read_recording(path, target_fs=500).fs == 500.0  # its own rate is fine when asked for
    with pytest.raises(
        EegstreamError, match=r"says 'sampling rate 128' in its metadata line but fs=256 was given"
    ):
        read_recording(make_csv(tmp_path / "m.csv", 64), fs=256)
    no_meta = make_csv(tmp_path / "t.csv", 64, meta=None)
    with pytest.raises(
        EegstreamError, match=r"t.csv: its timestamps advance at 128.0 Hz but fs=256 was given"
    ):
        read_recording(no_meta, fs=256)


def test_non_monotonic_timestamps_name_the_line(tmp_path: Path) -> None:
    path = make_csv(tmp_path / "back.csv", 40, extra={25: {"Timestamp": repr(T0)}})
    with pytest.raises(
        EegstreamError,
        match=r"back.csv, line 28: timestamp 1700000000.000000 is earlier than the previous row's",
    ):
        read_recording(path)


def test_layout_problems(tmp_path: Path) -> None:
    headerless = tmp_path / "nohead.csv"
    headerless.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(
        EegstreamError,
        match=r"nohead.csv has no header row \(data start on line 1\) and no 'labels:'",
    ):
        read_recording(headerless)
    names = ["COUNTER", *ELECTRODES]
    meta = "title:old, sampling:128, labels:COUNTER AF3 F7"
    bad_labels = make_csv(tmp_path / "lab.csv", 5, names=names, meta=meta, header=False)
    with pytest.raises(
        EegstreamError,
        match=r"lab.csv: the metadata line's labels name 3 columns but the data rows have 15",
    ):
        read_recording(bad_labels)
    dup = make_csv(
        tmp_path / "dup.csv", 5, names=["Timestamp", "AF3", *[f"EEG.{e}" for e in ELECTRODES]]
    )
    with pytest.raises(
        EegstreamError, match=r"dup.csv: columns 'AF3' and 'EEG.AF3' both hold AF3; keep one"
    ):
        read_recording(dup)


def test_cli_reports_bad_files_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "text": (
            make_csv(tmp_path / "text.csv", 30, extra={17: {"EEG.T8": "abc"}}),
            "line 20, column EEG.T8",
        ),
        "missing": (tmp_path / "missing.csv", "does not exist"),
        "rate": (
            make_csv(
                tmp_path / "r500.csv", 64, meta=META_128.replace("eeg_128", "eeg_500"), fs=500
            ),
            "500 Hz",
        ),
        "empty": (tmp_path / "empty.csv", "is empty"),
        "back": (
            make_csv(tmp_path / "back.csv", 40, extra={25: {"Timestamp": repr(T0)}}),
            "line 28: timestamp 1700000000.000000 is earlier",
        ),
        "af4": (
            make_csv(
                tmp_path / "af4.csv",
                30,
                names=["Timestamp", *[f"EEG.{e}" for e in ELECTRODES[:-1]]],
            ),
            "detection needs AF4",
        ),
    }
    (tmp_path / "empty.csv").write_text("")
    for name, (path, needle) in cases.items():
        capsys.readouterr()
        # `info` accepts a file without AF4 (it reports it); the other faults are errors for it too
        code = main(["info", str(path)])
        out, err = capsys.readouterr()
        if name == "af4":
            assert code == 0
            assert "channels missing: AF4 -- detection needs AF4" in out
            continue
        assert code == 2, name
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("eegstream info: error: recording ")
        assert needle in lines[0]


# --- speed --------------------------------------------------------------------------------------


def test_reading_is_fast(tmp_path: Path) -> None:
    """15 minutes at 128 Hz (115,200 rows, 21 columns) reads in ~1 s; a Python parser takes >10 s."""
    n = 15 * 60 * 128
    rng = np.random.default_rng(0)
    rec = Recording(
        data=np.round(4200 + rng.normal(0, 20, (n, 14)), 6),
        timestamps=T0 + np.arange(n) / 128.0,
        fs=128.0,
        markers=[Marker(int(s), T0 + s / 128.0, 22, "blink") for s in range(1000, n, 5000)],
    )
    path = tmp_path / "long.csv"
    write_recording(rec, path)
    start = time.perf_counter()
    back = read_recording(path)
    elapsed = time.perf_counter() - start
    assert np.array_equal(back.data, rec.data)
    assert back.markers == rec.markers
    assert elapsed < 8.0, elapsed


# --- your own labels: the sidecar's type column and --marker-map (issue #17, part 5) ---------------


def test_sidecar_type_column_is_the_label_and_marker_map_wins(tmp_path: Path) -> None:
    extra = {
        10: {"MarkerIndex": "1", "MarkerType": "1", "MarkerValueInt": "1"},
        30: {"MarkerIndex": "2", "MarkerType": "1", "MarkerValueInt": "33025"},
    }
    path = make_csv(tmp_path / "own.csv", 100, extra=extra)
    (tmp_path / "own_intervalMarker.csv").write_text(
        "latency,duration,type,marker_value,key,timestamp,marker_id\n"
        f"{10 / 128:.6f},0.3,Blink,1,-1,{T0 + 10 / 128:.6f},1\n"  # same as the inline marker
        f"{60 / 128:.6f},0.5,Eyes Closed,2,-1,,2\n"  # only here
        f"{70 / 128:.6f},0.5,,3,-1,,3\n"  # no type: the code decides
        f"{80 / 128:.6f},0.2,7,22,-1,,4\n"  # a numeric type is a code, not a label
    )
    rec = read_recording(path)
    assert [(m.sample, m.value, m.label) for m in rec.markers] == [
        (10, 1, "blink"),
        (30, 33025, "marker_33025"),
        (60, 2, "eyes_closed"),
        (70, 3, "marker_3"),
        (80, 22, "blink"),
    ]
    mapped = read_recording(path, marker_map={33025: "jaw_clench", 2: "rest", 1: "nothing"})
    assert [m.label for m in mapped.markers] == [
        "nothing",
        "jaw_clench",
        "rest",
        "marker_3",
        "blink",
    ]


def test_parse_marker_map_and_its_errors() -> None:
    from eegstream.io.markers import parse_marker_map

    assert parse_marker_map(" 33024=blink, 33025 = Jaw_Clench ,") == {
        33024: "blink",
        33025: "jaw_clench",
    }
    for bad, entry in (
        ("33024=blink,x=jaw_clench", "'x=jaw_clench'"),
        ("33024", "'33024'"),
        ("33024=", "'33024='"),
        ("33024=eye blink", "'33024=eye blink'"),
        ("99999999999=blink", "'99999999999=blink'"),
    ):
        with pytest.raises(
            EegstreamError, match=rf"--marker-map entry {entry}: expected CODE=LABEL"
        ):
            parse_marker_map(bad)
    with pytest.raises(EegstreamError, match=r"marker 1 is mapped twice \(blink and rest\)"):
        parse_marker_map("1=blink,1=rest")
    with pytest.raises(EegstreamError, match=r"has no entry"):
        parse_marker_map(" , ")


@pytest.mark.parametrize("command", ["detect", "evaluate", "train"])
def test_a_bad_marker_map_is_one_line_and_exit_2(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from eegstream.cli import main

    path = make_csv(tmp_path / "r.csv", 100)
    argv = [command, str(path), "--marker-map", "33024=blink,33025:jaw_clench"]
    if command == "train":
        argv += ["--out", str(tmp_path / "model")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"eegstream {command}: error: --marker-map entry '33025:jaw_clench'" in err
    assert not (tmp_path / "model").exists()


def test_evaluate_with_marker_map_scores_your_own_codes(tmp_path: Path) -> None:
    import dataclasses
    import json

    from eegstream.settings import Settings
    from eegstream.simulate import simulate_recording

    if not (Settings().model_dir / "model.onnx").is_file():  # type: ignore[call-arg]
        pytest.skip("no model bundle")
    rec = simulate_recording(60.0, 8301, blink_rate=18.0, clench_rate=6.0)
    codes = {"blink": 33024, "jaw_clench": 33025}
    recoded = [dataclasses.replace(m, value=codes[m.label]) for m in rec.markers]
    write_recording(dataclasses.replace(rec, markers=recoded), tmp_path / "own.csv")
    (tmp_path / "own_intervalMarker.csv").unlink()  # labels from the codes alone
    write_recording(rec, tmp_path / "std.csv")

    def found(*extra: str) -> dict[str, int]:
        out = tmp_path / "ev.json"
        assert main(["evaluate", *extra, "--json", str(out)]) == 0
        classes = json.loads(out.read_text())["files"][0]["classes"]
        return {k: c["tp"] + c["fn"] for k, c in classes.items()}

    truth = found(str(tmp_path / "std.csv"))
    assert truth["blink"] > 0
    assert truth["jaw_clench"] > 0
    assert found(str(tmp_path / "own.csv")) == {"blink": 0, "jaw_clench": 0}
    mapped = found(str(tmp_path / "own.csv"), "--marker-map", "33024=blink,33025=jaw_clench")
    assert mapped == truth
