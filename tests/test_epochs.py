"""Labelled epoch folders: reading, onsets, held-out part and sessions joined from epochs.

Hand-made epoch folders (written to tmp_path) cover every error and the exact behaviour; the real
MusEEG EPOC+ epochs beside the checkout (``shared/data/museeg-epocplus-trainbatch1``) check that
onsets and sessions look right on real data, and are skipped when shared/ is absent.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import EPOCHS_DIR, needs_epochs
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, sosfiltfilt

from eegstream.errors import EegstreamError
from eegstream.io.epochs import (
    DEFAULT_LABEL_MAP,
    EPOCH_RATES,
    REST_GESTURE,
    Epoch,
    EpochSession,
    assemble_session,
    find_onset,
    is_held_out,
    parse_label_map,
    read_epochs,
    spontaneous_blink,
    training_sessions,
    with_spontaneous_blinks,
)
from eegstream.settings import CLASSES, ELECTRODES, FS

DATA = EPOCHS_DIR
needs_data = needs_epochs
#: Files per gesture in the real folder (its README).
REAL_COUNTS = {
    "hardblink": 88, "neutral": 127, "bitelowerlip": 61, "eyebrows": 102, "smile": 109,
    "scrunch": 90, "tongue": 77, "lookleft": 97, "lookright": 108,
}  # fmt: skip
HEADER = ["", *(f"EEG.{e}" for e in ELECTRODES)]
COL = {e: i for i, e in enumerate(ELECTRODES)}
N, RATE = 384, 256.0  # 1.5 s at 256 Hz, as in the real folder


# --- hand-made epochs --------------------------------------------------------------------------


def _background(rng: np.random.Generator, n: int = N) -> np.ndarray:
    """Noise on a random level per channel with a random slow drift: joins must hide both."""
    level = rng.uniform(-300.0, 300.0, len(ELECTRODES))
    drift = rng.uniform(-100.0, 100.0, len(ELECTRODES)) * np.linspace(0, 1, n)[:, None]
    return level + drift + rng.normal(0.0, 5.0, (n, len(ELECTRODES)))


def _blink(rng: np.random.Generator, onset: int, n: int = N, fs: float = RATE) -> np.ndarray:
    """A forced blink (raised-cosine rise 0.1 s, fall 0.2 s) from ``onset``; AF4 nearly flat."""
    x = _background(rng, n)
    rise, fall = round(0.1 * fs), round(0.2 * fs)
    o = np.arange(n) - onset
    shape = np.where(
        (o >= 0) & (o < rise),
        0.5 - 0.5 * np.cos(np.pi * o / rise),
        np.where((o >= rise) & (o < rise + fall), 0.5 + 0.5 * np.cos(np.pi * (o - rise) / fall), 0),
    )
    for e, amp in (("F7", 3000.0), ("F8", 4000.0), ("AF3", 500.0), ("AF4", 30.0)):
        x[:, COL[e]] += amp * shape
    return x


def _bite(rng: np.random.Generator, onset: int, n: int = N, fs: float = RATE) -> np.ndarray:
    """A 40 Hz EMG burst of 0.3 s from ``onset`` on every electrode."""
    x = _background(rng, n)
    t = np.arange(n) / fs
    on = (np.arange(n) >= onset) & (np.arange(n) < onset + round(0.3 * fs))
    phase = rng.uniform(0, 2 * np.pi, len(ELECTRODES))
    x += on[:, None] * 60.0 * np.sin(2 * np.pi * 40.0 * t[:, None] + phase)
    return x


def _write(path: Path, data: np.ndarray, header: Sequence[str] = HEADER) -> None:
    """A CSV like the MusEEG ones: a pandas row index, then the electrode columns."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i, row in enumerate(data):
            w.writerow([i, *(repr(float(v)) for v in row)])


def _folder(
    tmp_path: Path, counts: Mapping[str, int], *, seed: int = 0, n: int = N, fs: float = RATE
) -> Path:
    """An epoch folder: blinks at sample 60 + 10 * index, bites at 40 + 10 * index, rest noise."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / "epochs"
    folder.mkdir()
    for gesture, k in counts.items():
        for i in range(k):
            label = DEFAULT_LABEL_MAP.get(gesture, "nothing")
            if label == "blink":
                x = _blink(rng, round((60 + 10 * i) * fs / RATE), n, fs)
            elif label == "jaw_clench":
                x = _bite(rng, round((40 + 10 * i) * fs / RATE), n, fs)
            else:
                x = _background(rng, n)
            _write(folder / f"{gesture}_{i}.csv", x)
    (folder / "README.md").write_text("not an epoch\n")
    return folder


def _epoch(data: np.ndarray, label: str, fs: float = RATE, gesture: str = "g") -> Epoch:
    return Epoch(gesture, 0, label, data, fs, f"{gesture}_0.csv")


SMALL = {"hardblink": 4, "bitelowerlip": 3, "neutral": 6, "smile": 3, "lookleft": 2}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return _folder(tmp_path, SMALL)


# --- label map, held-out rule ------------------------------------------------------------------


def test_default_map_and_holdout_rule() -> None:
    assert DEFAULT_LABEL_MAP["hardblink"] == "blink"
    assert DEFAULT_LABEL_MAP["bitelowerlip"] == "jaw_clench"
    assert {g for g, lab in DEFAULT_LABEL_MAP.items() if lab == "nothing"} == {
        "neutral", "eyebrows", "smile", "scrunch", "tongue", "lookleft", "lookright"
    }  # fmt: skip
    assert set(DEFAULT_LABEL_MAP.values()) <= set(CLASSES)
    assert REST_GESTURE == "neutral"
    assert EPOCH_RATES == (128.0, 256.0)
    assert [i for i in range(9) if is_held_out(i)] == [2, 5, 8]


def test_parse_label_map_tolerates_whitespace() -> None:
    got = parse_label_map(" hardblink = blink ,bitelowerlip=jaw_clench,  neutral=nothing, ")
    assert got == {"hardblink": "blink", "bitelowerlip": "jaw_clench", "neutral": "nothing"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("hardblink=blink,neutral", r"item 'neutral' has no '='.*GESTURE=LABEL"),
        ("=blink", r"'=blink' has an empty gesture"),
        ("hardblink=", r"'hardblink=' has an empty label.*blink, jaw_clench, nothing"),
        ("hardblink=blink, hardblink=nothing", r"names gesture 'hardblink' twice"),
        ("hardblink=Blink", r"label 'Blink'; labels are blink, jaw_clench, nothing"),
        (" , ", r"names no gesture"),
    ],
)
def test_parse_label_map_errors(text: str, match: str) -> None:
    with pytest.raises(EegstreamError, match=match):
        parse_label_map(text)


# --- reading -----------------------------------------------------------------------------------


def test_reads_by_column_name_sorted_with_labels(tmp_path: Path) -> None:
    folder = tmp_path / "e"
    folder.mkdir()
    rng = np.random.default_rng(1)
    # columns shuffled, bare lower-case names, an unnamed index column in the middle
    order = list(rng.permutation(len(ELECTRODES)))
    header = [ELECTRODES[i].lower() for i in order]
    header.insert(3, "")
    written = {}
    for name in ("neutral_10", "neutral_2", "smile_0", "hardblink_1"):
        x = _blink(rng, 80) if name.startswith("hard") else _background(rng)
        table = np.insert(x[:, order], 3, np.arange(N), axis=1)
        with (folder / f"{name}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(table.tolist())
        written[name] = x
    epochs = read_epochs(folder, parse_label_map("neutral=nothing,smile=nothing,hardblink=blink"))
    assert [(e.gesture, e.index) for e in epochs] == [
        ("hardblink", 1), ("neutral", 2), ("neutral", 10), ("smile", 0)
    ]  # fmt: skip
    for e in epochs:
        assert np.array_equal(e.data, written[e.name])
        assert e.data.shape == (N, 14)
        assert e.data.dtype == np.float64
        assert e.fs == 256.0
        assert e.source == str(folder / f"{e.name}.csv")
    assert [e.label for e in epochs] == ["blink", "nothing", "nothing", "nothing"]


def test_parts_split_by_file_index(small: Path) -> None:
    every = read_epochs(small)
    train = read_epochs(small, part="train")
    held = read_epochs(small, part="held-out")
    assert len(every) == sum(SMALL.values())
    assert {(e.gesture, e.index) for e in held} == {
        (e.gesture, e.index) for e in every if e.index % 3 == 2
    }
    assert all(e.index % 3 != 2 for e in train)
    assert len(train) + len(held) == len(every)
    want = {"hardblink": 1, "bitelowerlip": 1, "neutral": 2, "smile": 1}
    assert Counter(e.gesture for e in held) == want


def test_reads_128_hz_epochs(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"hardblink": 2, "neutral": 2}, n=192, fs=128.0)
    epochs = read_epochs(folder, fs=128.0)
    assert {e.fs for e in epochs} == {128.0}
    assert {e.data.shape for e in epochs} == {(192, 14)}


def test_progress_bar_on_stderr_only_when_asked(
    small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    read_epochs(small)
    assert capsys.readouterr().err == ""
    read_epochs(small, progress=True)
    err = capsys.readouterr().err
    assert "epochs" in err
    assert f"0/{sum(SMALL.values())}" in err  # the total is known up front


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(EegstreamError, match=r"epoch folder .*nowhere does not exist"):
        read_epochs(tmp_path / "nowhere")
    (tmp_path / "file.csv").write_text("x\n")
    with pytest.raises(EegstreamError, match=r"file.csv is a file, not a folder"):
        read_epochs(tmp_path / "file.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("hi\n")
    with pytest.raises(EegstreamError, match=r"has no \*\.csv files"):
        read_epochs(empty)


def test_bad_file_name(small: Path) -> None:
    _write(small / "hardblink-3.csv", np.zeros((N, 14)))
    with pytest.raises(EegstreamError, match=r"hardblink-3.csv is not named <gesture>_<n>.csv"):
        read_epochs(small)


def test_unlabelled_gestures_are_listed(small: Path) -> None:
    for name in ("wink_0", "yawn_0"):
        _write(small / f"{name}.csv", np.zeros((N, 14)))
    with pytest.raises(
        EegstreamError, match=r"does not label: wink, yawn; .*--label-map wink=nothing"
    ):
        read_epochs(small)
    labels = {"hardblink": "blink", "neutral": "nothing", "wink": "nothing", "yawn": "nothing"}
    with pytest.raises(EegstreamError, match=r"does not label: bitelowerlip, lookleft, smile"):
        read_epochs(small, labels)


def test_map_naming_a_gesture_not_in_the_folder(small: Path) -> None:
    labels = {g: DEFAULT_LABEL_MAP[g] for g in SMALL} | {"hardblnk": "blink"}
    with pytest.raises(
        EegstreamError,
        match=r"unknown gesture 'hardblnk' in --label-map; the folder has: bitelowerlip, "
        r"hardblink, lookleft, neutral, smile",
    ):
        read_epochs(small, labels)
    # the default map may name gestures the folder lacks (the small folder has no tongue)
    assert len(read_epochs(small)) == sum(SMALL.values())


def test_map_with_a_bad_label(small: Path) -> None:
    labels = {g: DEFAULT_LABEL_MAP[g] for g in SMALL} | {"smile": "grin"}
    with pytest.raises(EegstreamError, match=r"smile=grin; labels are blink, jaw_clench, nothing"):
        read_epochs(small, labels)


@pytest.mark.parametrize("fs", [64.0, 512.0, 250.0])
def test_unsupported_rate(small: Path, fs: float) -> None:
    with pytest.raises(EegstreamError, match=rf"fs={fs:g} Hz .*only 128 or 256 Hz epochs"):
        read_epochs(small, fs=fs)


def test_bad_part(small: Path) -> None:
    with pytest.raises(EegstreamError, match=r"part must be 'all', 'train' or 'held-out'"):
        read_epochs(small, part="test")  # type: ignore[arg-type]


def test_no_held_out_epochs(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"neutral": 2})
    with pytest.raises(EegstreamError, match=r"no held-out epochs .*index % 3 == 2"):
        read_epochs(folder, part="held-out")


def test_short_and_odd_length_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"neutral": 3})
    _write(folder / "neutral_1.csv", np.zeros((200, 14)))  # 0.78 s
    with pytest.raises(EegstreamError, match=r"neutral_1.csv has 200 rows \(0.781 s at 256 Hz\)"):
        read_epochs(folder)
    _write(folder / "neutral_1.csv", np.zeros((300, 14)))
    with pytest.raises(EegstreamError, match=r"neutral_1.csv has 300 rows but the other .* 384"):
        read_epochs(folder)


def test_missing_electrode_is_named(small: Path) -> None:
    keep = [i for i, e in enumerate(ELECTRODES) if e != "T7"]
    _write(small / "neutral_1.csv", np.zeros((N, 13)), [""] + [HEADER[1 + i] for i in keep])
    with pytest.raises(EegstreamError, match=r"neutral_1.csv has no column for electrode T7"):
        read_epochs(small)


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ("abc", r"neutral_2.csv, line 12, column EEG.F8: expected a number, found 'abc'"),
        ("", r"neutral_2.csv, line 12, column EEG.F8: expected a number, found an empty cell"),
        ("nan", r"neutral_2.csv holds a non-finite value \(nan\) in column F8, data row 11"),
        ("-inf", r"neutral_2.csv holds a non-finite value \(-inf\) in column F8, data row 11"),
    ],
)
def test_bad_cells_name_the_file(small: Path, cell: str, match: str) -> None:
    path = small / "neutral_2.csv"
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    rows[11][1 + ELECTRODES.index("F8")] = cell
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(EegstreamError, match=match):
        read_epochs(small)


def _with_timestamps(path: Path, fs: float, n: int = N) -> None:
    x = np.zeros((n, 14))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Timestamp", *HEADER[1:]])
        for i, row in enumerate(x):
            w.writerow([repr(1.7e9 + i / fs), *row.tolist()])


def test_timestamps_of_a_64_hz_epoch_file(small: Path) -> None:
    _with_timestamps(small / "neutral_0.csv", 64.0)
    with pytest.raises(
        EegstreamError, match=r"neutral_0.csv is a 64 Hz epoch file \(from its timestamps\); only"
    ):
        read_epochs(small)


def test_timestamps_contradicting_fs(small: Path) -> None:
    _with_timestamps(small / "neutral_0.csv", 128.0)
    with pytest.raises(EegstreamError, match=r"sampled at 128 Hz .*but fs=256 was given"):
        read_epochs(small)


def test_timestamps_agreeing_with_fs_are_fine(small: Path) -> None:
    _with_timestamps(small / "neutral_0.csv", 256.0)
    epochs = read_epochs(small)
    assert np.array_equal(
        epochs[[e.name for e in epochs].index("neutral_0")].data, np.zeros((N, 14))
    )


# --- onsets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [256.0, 128.0])
@pytest.mark.parametrize("at_s", [0.12, 0.4, 0.9])
def test_blink_onset_is_the_start_of_the_rise(fs: float, at_s: float) -> None:
    rng = np.random.default_rng(int(at_s * 100))
    onset = round(at_s * fs)
    onset_found = find_onset(_epoch(_blink(rng, onset, round(1.5 * fs), fs), "blink", fs))
    # 15 % of a raised-cosine rise of 0.1 s is reached 25 ms after it starts
    assert onset <= onset_found <= onset + round(0.04 * fs)


def test_blink_onset_when_the_level_after_differs_from_before() -> None:
    # MusEEG blinks: the level before the blink is hundreds of uV above the level after it, so the
    # epoch's median sits far below the start of the blink
    rng = np.random.default_rng(3)
    x = _blink(rng, 100)
    step = np.where(np.arange(N) < 160, 800.0, 0.0)
    x[:, [COL["F7"], COL["F8"]]] += step[:, None]
    assert 100 <= find_onset(_epoch(x, "blink")) <= 110


def test_bite_onset_is_the_start_of_the_emg_burst() -> None:
    rng = np.random.default_rng(4)
    for onset, fs in ((50, RATE), (250, RATE), (40, 128.0), (130, 128.0)):
        n = round(1.5 * fs)
        found = find_onset(_epoch(_bite(rng, onset, n, fs), "jaw_clench", fs))
        assert onset - round(0.03 * fs) <= found <= onset + round(0.01 * fs), (onset, fs, found)


def test_onset_errors() -> None:
    rng = np.random.default_rng(5)
    with pytest.raises(EegstreamError, match=r"labelled 'nothing'; onsets exist only for blink"):
        find_onset(_epoch(_background(rng), "nothing"))
    with pytest.raises(EegstreamError, match=r"no frontal electrode .* deflects by 20 uV"):
        find_onset(_epoch(np.zeros((N, 14)), "blink"))
    with pytest.raises(EegstreamError, match=r"holds no EMG burst"):
        find_onset(_epoch(np.zeros((N, 14)), "jaw_clench"))


# --- sessions ----------------------------------------------------------------------------------


def _join_ratios(session: EpochSession) -> np.ndarray:
    """Per join and channel: the step at the join / the largest sample step within 0.25 s of it."""
    x = session.recording.data
    d = np.abs(np.diff(x, axis=0))
    out = []
    for span in session.spans[1:]:
        j = span.start
        near = np.concatenate([d[max(j - 33, 0) : j - 2], d[j + 1 : j + 32]])
        out.append(np.abs(x[j] - x[j - 1]) / near.max(axis=0))
    return np.asarray(out)


def _check_session(session: EpochSession, epochs: Sequence[Epoch]) -> None:
    """What every session must satisfy: spans tile it, markers sit at the onsets, no steps."""
    rec = session.recording
    assert rec.fs == FS
    assert rec.data.shape == (rec.n_samples, 14)
    ratio = FS / epochs[0].fs
    used = [_find(epochs, s.gesture, s.index) for s in session.spans]
    assert rec.n_samples == round(sum(e.data.shape[0] for e in used) * ratio)
    assert session.spans[0].start == 0
    assert all(a.stop == b.start for a, b in zip(session.spans, session.spans[1:], strict=False))
    assert session.spans[-1].stop == rec.n_samples
    assert np.allclose(rec.timestamps, 1.7e9 + np.arange(rec.n_samples) / FS, rtol=0, atol=1e-6)
    # markers: one per artifact epoch, at its onset found in the epoch itself
    arts = [s for s in session.spans if s.label in ("blink", "jaw_clench")]
    assert [m.sample for m in rec.markers] == [s.onset for s in arts]
    for m, s in zip(rec.markers, arts, strict=True):
        value = {"blink": 22, "jaw_clench": 23}[s.label]
        assert (m.value, m.label, m.duration) == (value, s.label, 0.0)
        assert m.time == rec.timestamps[m.sample]
        in_epoch = find_onset(_find(epochs, s.gesture, s.index))
        assert m.sample == s.start + int(np.floor(in_epoch * ratio + 0.5))
    assert all(s.onset is None for s in session.spans if s.label == "nothing")
    # the level stays at EmotivPRO's offset (rest epochs return there) and no join is a step
    # (but before a gesture already under way at its epoch's start, which it leads up to)
    spans = session.spans
    for sp, nxt in zip(spans, spans[1:], strict=False):
        if sp.gesture != "neutral" or (nxt.onset is not None and nxt.onset == nxt.start):
            continue
        end = rec.data[sp.stop - 4 : sp.stop]
        own = _find(epochs, sp.gesture, sp.index).data
        assert np.all(np.abs(np.median(end, axis=0) - 4200.0) < np.ptp(own, axis=0) + 5.0)
    assert np.all(np.abs(np.median(rec.data, axis=0) - 4200.0) < 100.0)
    # broken joins (each epoch only centred on its median) reach 12x on the real data, median 0.5
    ratios = _join_ratios(session)
    assert ratios.max() <= 2.0
    assert np.median(ratios) <= 0.3


def _find(epochs: Sequence[Epoch], gesture: str, index: int) -> Epoch:
    return next(e for e in epochs if (e.gesture, e.index) == (gesture, index))


def test_session_order_warmup_and_gaps(small: Path) -> None:
    epochs = read_epochs(small)
    s = assemble_session(epochs, seed=1, warmup_s=4.0, gap_epochs=2, source="hand")
    _check_session(s, epochs)
    names = [(sp.gesture, sp.index) for sp in s.spans]
    # warm-up: the first rest epochs in file order until 4 s (3 x 1.5 s) are filled
    assert names[:3] == [("neutral", 0), ("neutral", 1), ("neutral", 2)]
    assert s.warmup_s == 4.0
    rest = names[3:]
    gestures = rest[::3]
    assert sorted(gestures) == sorted(
        (e.gesture, e.index) for e in epochs if e.gesture != "neutral"
    )
    # each gesture followed by two rest epochs, cycling on from where the warm-up stopped
    gaps = [n for k, n in enumerate(rest) if k % 3]
    assert gaps == [("neutral", (3 + k) % 6) for k in range(len(gaps))]
    assert s.recording.source == "hand"
    # seeded: the same seed gives the same order, another seed another one
    again = assemble_session(epochs, seed=1, warmup_s=4.0, gap_epochs=2, source="hand")
    assert [(sp.gesture, sp.index) for sp in again.spans] == names
    assert np.array_equal(again.recording.data, s.recording.data)
    other = assemble_session(epochs, seed=2, warmup_s=4.0, gap_epochs=2)
    assert [(sp.gesture, sp.index) for sp in other.spans] != names


def test_session_joins_hide_levels_and_drifts(small: Path) -> None:
    epochs = read_epochs(small)
    s = assemble_session(epochs, warmup_s=3.0)
    _check_session(s, epochs)
    # the epochs were written at levels up to +-300 uV apart: plain concatenation steps
    x = np.concatenate([_find(epochs, sp.gesture, sp.index).data for sp in s.spans])[::2]
    steps = np.abs(x[[sp.start for sp in s.spans[1:]]] - x[[sp.start - 1 for sp in s.spans[1:]]])
    assert steps.max() > 100.0


def test_session_at_128_hz_is_not_resampled(tmp_path: Path) -> None:
    counts = {"hardblink": 3, "bitelowerlip": 2, "neutral": 3, "smile": 2}
    folder = _folder(tmp_path, counts, n=192, fs=128.0)
    epochs = read_epochs(folder, fs=128.0)
    s = assemble_session(epochs, warmup_s=0.0)
    _check_session(s, epochs)
    assert "resampled_from" not in s.recording.metadata
    assert s.recording.n_samples == 192 * 2 * (3 + 2 + 2)  # each gesture and one rest epoch
    # a gesture is kept exactly as recorded, only shifted; rest epochs bend to bridge levels
    x = s.recording.data - 4200.0
    for span in s.spans:
        e = _find(epochs, span.gesture, span.index)
        diff = x[span.start : span.stop] - e.data
        kept = np.allclose(diff, diff[0])
        assert kept == (span.gesture != "neutral"), span


def test_confounders_are_the_non_rest_nothing_gestures(small: Path) -> None:
    s = assemble_session(read_epochs(small), warmup_s=3.0)
    conf = s.confounders()
    assert conf.dtype == np.int64
    assert conf.shape == (SMALL["smile"] + SMALL["lookleft"], 3)
    want = [
        [sp.start, sp.stop - sp.start, 1] for sp in s.spans if sp.gesture in ("smile", "lookleft")
    ]
    assert conf.tolist() == want
    assert set(np.unique(conf[:, 1])) == {N // 2}


def test_session_errors(small: Path) -> None:
    epochs = read_epochs(small)
    no_rest = [e for e in epochs if e.gesture != "neutral"]
    with pytest.raises(
        EegstreamError, match=r"no rest epochs \('neutral'\) .*gestures: bitelowerlip"
    ):
        assemble_session(no_rest)
    with pytest.raises(EegstreamError, match=r"no rest epochs \('neutral'\)"):
        training_sessions(no_rest)
    with pytest.raises(EegstreamError, match=r"got no epochs"):
        assemble_session([])
    with pytest.raises(EegstreamError, match=r"rest gesture 'hardblink' is labelled blink"):
        assemble_session(epochs, rest_gesture="hardblink")
    mixed = [*epochs, Epoch("neutral", 99, "nothing", np.zeros((192, 14)), 128.0, "x.csv")]
    with pytest.raises(EegstreamError, match=r"epochs at 128 Hz and 256 Hz cannot be joined"):
        assemble_session(mixed)


def test_training_sessions_share_no_epoch(tmp_path: Path) -> None:
    counts = {"hardblink": 9, "bitelowerlip": 6, "neutral": 8, "smile": 6, "tongue": 4}
    epochs = read_epochs(_folder(tmp_path, counts), part="train")
    sessions = training_sessions(epochs, seed=3, gestures_per_session=6)
    non_rest = [e for e in epochs if e.gesture != "neutral"]
    assert len(sessions) == round(len(non_rest) / 6)
    seen: list[tuple[str, int]] = []
    for s in sessions:
        _check_session(s, epochs)
        assert s.warmup_s == 0.0
        names = {(sp.gesture, sp.index) for sp in s.spans}
        assert any(g == "neutral" for g, _ in names)
        assert 5 <= sum(g != "neutral" for g, _ in names) <= 7
        seen += sorted(names)
    assert len(seen) == len(set(seen)) == len(epochs)
    assert [s.spans for s in training_sessions(epochs, seed=3, gestures_per_session=6)] == [
        s.spans for s in sessions
    ]


# --- the real MusEEG epochs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> list[Epoch]:
    return read_epochs(DATA)


@pytest.fixture(scope="module")
def real_session(real: list[Epoch]) -> EpochSession:
    return assemble_session([e for e in real if not is_held_out(e.index)], seed=0, source="real")


@needs_data
def test_real_counts_and_parts(real: list[Epoch]) -> None:
    assert Counter(e.gesture for e in real) == REAL_COUNTS
    assert {e.data.shape for e in real} == {(384, 14)}
    held = read_epochs(DATA, part="held-out")
    train = read_epochs(DATA, part="train")
    assert Counter(e.gesture for e in held) == {g: n // 3 for g, n in REAL_COUNTS.items()}
    assert Counter(e.gesture for e in train) == {g: n - n // 3 for g, n in REAL_COUNTS.items()}
    assert all(e.index % 3 == 2 for e in held)
    assert not {(e.gesture, e.index) for e in held} & {(e.gesture, e.index) for e in train}


@needs_data
def test_real_file_read_by_name(real: list[Epoch]) -> None:
    for name in ("hardblink_7", "bitelowerlip_60", "neutral_126"):
        with (DATA / f"{name}.csv").open(newline="") as fh:
            rows = list(csv.reader(fh))
        cols = [rows[0].index(f"EEG.{e}") for e in ELECTRODES]
        want = np.array([[float(r[c]) for c in cols] for r in rows[1:]])
        assert np.array_equal(next(e for e in real if e.name == name).data, want)


def _frontal_rise(e: Epoch) -> tuple[np.ndarray, int]:
    """F7/F8 deflection (the larger of the two, from their medians) and its peak sample."""
    x = e.data[:, [COL["F7"], COL["F8"]]]
    dev = np.abs(x - np.median(x, axis=0)).max(axis=1)
    return dev, int(np.argmax(dev))


@needs_data
def test_real_blink_onsets(real: list[Epoch]) -> None:
    blinks = [e for e in real if e.gesture == "hardblink"]
    onsets = np.array([find_onset(e) for e in blinks])
    within = np.mean(onsets < 0.6 * 256)
    assert within >= 0.95  # one of 88 (hardblink_53) blinks late, at 0.68 s
    grows = []
    for e, on in zip(blinks, onsets, strict=True):
        dev, peak = _frontal_rise(e)
        assert on <= peak, e.name
        # the rise starts at the onset: within 0.1 s the frontal signal climbs by a third of
        # the way from where it was to its peak
        ahead = dev[on : on + 26].max() - dev[on]
        grows.append(ahead >= (dev[peak] - dev[on]) / 3)
    assert np.mean(grows) >= 0.9
    # not stuck at the epoch start: most forced blinks begin 50-250 ms in
    assert np.mean((onsets > 0.05 * 256) & (onsets < 0.25 * 256)) >= 0.7


@needs_data
def test_real_bite_onsets(real: list[Epoch]) -> None:
    sos = butter(4, (20, 60), btype="band", fs=256, output="sos")
    louder = []
    bites = [e for e in real if e.gesture == "bitelowerlip"]
    for e in bites:
        on = find_onset(e)
        y = sosfiltfilt(sos, e.data - np.median(e.data, axis=0), axis=0)
        env = np.sqrt(uniform_filter1d(y * y, 13, axis=0)).sum(axis=1)
        after = env[on : on + 26].mean()
        louder.append(after > 1.5 * np.median(env))
    # the onset opens the EMG burst: the 0.1 s after it is far louder than the epoch's typical level
    assert np.mean(louder) >= 0.9


@needs_data
def test_real_session(real: list[Epoch], real_session: EpochSession) -> None:
    train = [e for e in real if not is_held_out(e.index)]
    s = real_session
    _check_session(s, train)
    assert s.recording.source == "real"
    n_art = sum(e.label != "nothing" for e in train)
    assert len(s.recording.markers) == n_art == 100
    # the warm-up: neutral epochs only, just enough for 20 s
    warm = s.spans[:14]
    assert all(sp.gesture == "neutral" for sp in warm)
    assert (
        sum(sp.stop - sp.start for sp in warm) / FS
        >= 20.0
        > sum(sp.stop - sp.start for sp in warm[:-1]) / FS
    )
    # every blink marker sits at a forced blink's frontal swing (F7/F8 reach 3,000-4,600 uV),
    # kept the right way up (the few epochs cut mid-blink start high and fall)
    frontal = s.recording.data[:, [COL["F7"], COL["F8"]]] - 4200.0
    for m in s.recording.markers:
        if m.label == "blink":
            assert frontal[m.sample : m.sample + round(0.6 * FS)].max() > 1000.0
    conf = s.confounders()
    nothing = {"eyebrows", "smile", "scrunch", "tongue", "lookleft", "lookright"}
    assert conf.tolist() == [
        [sp.start, sp.stop - sp.start, 1] for sp in s.spans if sp.gesture in nothing
    ]
    assert len(conf) == sum(e.gesture in nothing for e in train)


@needs_data
def test_real_session_feeds_plan_windows(real_session: EpochSession) -> None:
    from eegstream.dataset import plan_windows

    plan = plan_windows([real_session.recording], confounders=[real_session.confounders()])
    counts = plan.counts()
    assert counts["blink"] > 0
    assert counts["jaw_clench"] > 0
    assert counts["nothing"] > 0


@needs_data
def test_real_training_sessions(real: list[Epoch]) -> None:
    train = [e for e in real if not is_held_out(e.index)]
    sessions = training_sessions(train, seed=0, gestures_per_session=60)
    n_other = sum(e.gesture != "neutral" for e in train)
    assert len(sessions) == round(n_other / 60)
    per = [sum(sp.gesture != "neutral" for sp in s.spans) for s in sessions]
    assert sum(per) == n_other
    assert max(per) - min(per) <= 1
    names = [{(sp.gesture, sp.index) for sp in s.spans} for s in sessions]
    assert sum(len(n) for n in names) == len(set().union(*names)) == len(train)


# --- spontaneous blinks in rest epochs ---------------------------------------------------------


def _bump(n: int, fs: float, at: float, width: float) -> np.ndarray:
    t = np.arange(n) / fs
    return np.clip(np.sin(np.pi * (t - at) / width), 0.0, None) * ((t >= at) & (t < at + width))


def test_spontaneous_blink_rule_on_synthetic_rest() -> None:
    rng = np.random.default_rng(5)
    base = 8.0 * rng.standard_normal((N, 14))
    col = {e: i for i, e in enumerate(ELECTRODES)}
    blink = base.copy()
    for e, a in {"AF3": 120.0, "F7": 90.0, "F8": 150.0}.items():
        blink[:, col[e]] += a * _bump(N, RATE, 0.7, 0.3)
    onset = spontaneous_blink(_epoch(blink, "nothing", gesture="neutral"))
    assert onset is not None
    assert 0.6 * RATE <= onset <= 0.8 * RATE
    # a horizontal eye movement: F7 and F8 in opposite directions
    saccade = base.copy()
    saccade[:, col["F7"]] += 300.0 * _bump(N, RATE, 0.5, 0.4)
    saccade[:, col["F8"]] -= 300.0 * _bump(N, RATE, 0.5, 0.4)
    saccade[:, col["AF3"]] += 100.0 * _bump(N, RATE, 0.5, 0.4)
    assert spontaneous_blink(_epoch(saccade, "nothing", gesture="neutral")) is None
    # a downward deflection, a single-electrode step, a slow drift, plain rest: none
    down = base.copy()
    for e in ("AF3", "F7", "F8"):
        down[:, col[e]] -= 120.0 * _bump(N, RATE, 0.7, 0.3)
    assert spontaneous_blink(_epoch(down, "nothing", gesture="neutral")) is None
    one = base.copy()
    one[:, col["F7"]] += 200.0 * _bump(N, RATE, 0.4, 0.5)
    assert spontaneous_blink(_epoch(one, "nothing", gesture="neutral")) is None
    slow = base.copy()
    for e in ("AF3", "F7", "F8"):
        slow[:, col[e]] += 150.0 * _bump(N, RATE, 0.1, 1.3)
    assert spontaneous_blink(_epoch(slow, "nothing", gesture="neutral")) is None
    assert spontaneous_blink(_epoch(base, "nothing", gesture="neutral")) is None


def test_with_spontaneous_blinks_relabels_only_rest_epochs() -> None:
    rng = np.random.default_rng(6)
    col = {e: i for i, e in enumerate(ELECTRODES)}
    x = 8.0 * rng.standard_normal((N, 14))
    for e, a in {"AF3": 120.0, "F7": 90.0, "F8": 150.0}.items():
        x[:, col[e]] += a * _bump(N, RATE, 0.7, 0.3)
    rest = _epoch(x, "nothing", gesture="neutral")
    smile = _epoch(x, "nothing", gesture="smile")
    plain = _epoch(8.0 * rng.standard_normal((N, 14)), "nothing", gesture="neutral")
    out = with_spontaneous_blinks([rest, smile, plain])
    assert [(e.gesture, e.label) for e in out] == [
        ("neutral_blink", "blink"),
        ("smile", "nothing"),
        ("neutral", "nothing"),
    ]
    assert out[0].data is rest.data


@needs_data
def test_real_neutral_epochs_with_a_visible_blink_are_found() -> None:
    """neutral_14 holds a 100-160 uV AF3/F7/F8 blink at ~0.65 s (looked at); neutral_113's
    F7-only plateau is an electrode artifact, not a blink."""
    epochs = {e.index: e for e in read_epochs(DATA, part="held-out") if e.gesture == "neutral"}
    onset = spontaneous_blink(epochs[14])
    assert onset is not None
    assert 0.5 * RATE <= onset <= 0.75 * RATE
    assert spontaneous_blink(epochs[113]) is None
    flagged = [i for i, e in epochs.items() if spontaneous_blink(e) is not None]
    assert 2 <= len(flagged) <= 0.2 * len(epochs)
