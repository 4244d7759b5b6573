"""Property: any mutation of a valid recording reads the same, is repaired (and says so), or is
refused with one :class:`EegstreamError`, never another exception, never a NaN report.

300 derandomised examples over a 10 s simulated recording (no example database, so CI and a
laptop run the same cases). Each read recording also goes through ``info``'s analysis and the
detector with the transparent test engine (milliseconds for 10 s), the paths a user's file takes.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_detector import PowerEngine, identity_features

from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent
from eegstream.io import read_recording, write_recording
from eegstream.io.info import analyse_recording
from eegstream.io.recording import Recording
from eegstream.offline import detect_messages
from eegstream.settings import FS, Settings

#: Mutations after which the recording must read back exactly as the original.
HARMLESS = frozenset({"swap_columns", "crlf", "bom", "blank_lines", "duplicate_row"})
CELLS = ["", " ", "abc", "nan", "NaN", "inf", "-inf", "1e309", "-1e309", "1e300", "-0", "0x10"]
RATES = ["128", "256", "-128", "nan", "0", "inf", "abc", "", "1e9", "eeg_128;mot_32", "eeg_x"]


@functools.cache
def original() -> tuple[str, Recording]:
    """The valid file's text and how it reads (simulated once per session)."""
    from eegstream.simulate import simulate_recording

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rec.csv"
        write_recording(simulate_recording(10, 3), path)
        return path.read_text(), read_recording(path)


KINDS = [
    "truncate",
    "duplicate_row",
    "duplicate_rows",
    "drop_rows",
    "garble_cell",
    "metadata",
    "no_metadata",
    "swap_columns",
    "blank_lines",
    "bom",
    "crlf",
    "reverse_rows",
    "repeat_timestamp",
]


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, tuple[object, ...]]:
    """``(kind, parameters)``: small, so a failing example prints readably."""
    kind = draw(st.sampled_from(KINDS))
    n = 1280  # rows of the 10 s file
    i = draw(st.integers(0, n - 1))
    if kind == "truncate":
        return kind, (draw(st.floats(0.0, 1.0)),)
    if kind == "duplicate_row":
        return kind, (i, draw(st.integers(1, 70)))
    if kind in ("duplicate_rows", "drop_rows", "reverse_rows"):
        return kind, (i, draw(st.integers(i, min(n, i + 200))))
    if kind == "garble_cell":
        return kind, (i, draw(st.integers(0, 40)), draw(st.sampled_from(CELLS)))
    if kind == "metadata":
        return kind, (draw(st.sampled_from(RATES)),)
    if kind == "swap_columns":
        return kind, (draw(st.integers(0, 40)), draw(st.integers(0, 40)))
    if kind == "blank_lines":
        at = draw(st.lists(st.integers(0, n), min_size=1, max_size=5))
        return kind, (*sorted(at, reverse=True),)
    if kind == "repeat_timestamp":
        return kind, (max(1, i),)
    return kind, ()


def mutate(kind: str, args: tuple[object, ...]) -> str:
    """The valid file's text, mutated."""
    text = original()[0]
    lines = text.splitlines()
    meta, head, rows = lines[0], lines[1], lines[2:]
    n = len(rows)
    if kind == "truncate":
        return text[: int(float(args[0]) * len(text))]  # type: ignore[arg-type]
    if kind == "no_metadata":
        return "\n".join([head, *rows]) + "\n"
    a = int(args[0]) if args and isinstance(args[0], int) else 0
    b = int(args[1]) if len(args) > 1 and isinstance(args[1], int) else 0
    if kind == "duplicate_row":  # a row written again right after itself: dropped again
        rows = rows[: a + 1] + [rows[a]] * b + rows[a + 1 :]
    elif kind == "duplicate_rows":  # a block written again later (timestamps go back)
        rows = rows[:b] + rows[a:b] + rows[b:]
    elif kind == "drop_rows":
        rows = rows[:a] + rows[b:]
    elif kind == "reverse_rows":
        rows = rows[:a] + rows[a:b][::-1] + rows[b:]
    elif kind == "garble_cell":
        cells = rows[a].split(",")
        cells[b % len(cells)] = str(args[2])
        rows = [*rows[:a], ",".join(cells), *rows[a + 1 :]]
    elif kind == "metadata":
        meta = meta.replace("sampling rate:128", f"sampling rate:{args[0]}")
    elif kind == "swap_columns":
        width = len(head.split(","))

        def swap(line: str) -> str:
            cells = line.split(",")
            cells[a % width], cells[b % width] = cells[b % width], cells[a % width]
            return ",".join(cells)

        head, rows = swap(head), [swap(r) for r in rows]
    elif kind == "blank_lines":
        for k in args:
            rows.insert(int(k), "   " if int(k) % 2 else "")  # type: ignore[call-overload]
    elif kind == "repeat_timestamp":
        k = min(a, n - 1)
        cells = rows[k].split(",")
        cells[0] = rows[k - 1].split(",")[0]
        rows = [*rows[:k], ",".join(cells), *rows[k + 1 :]]
    out = "\n".join([meta, head, *rows]) + "\n"
    if kind == "bom":
        out = "\ufeff" + out
    if kind == "crlf":
        out = out.replace("\n", "\r\n")
    return out


def finals(rec: Recording) -> list[tuple[str, float]]:
    msgs = detect_messages(rec, PowerEngine(), identity_features(), Settings(), progress=False)
    return [
        (m.label, m.onset_lsl) for m in msgs if isinstance(m, ArtifactEvent) and m.phase == "final"
    ]


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutations())
def test_any_mutation_reads_the_same_is_repaired_or_is_one_clear_error(
    mutation: tuple[str, tuple[object, ...]],
) -> None:
    kind = mutation[0]
    text = mutate(*mutation)
    _, clean = original()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rec.csv"
        path.write_text(text, encoding="utf-8", newline="")
        error = ""
        try:
            rec = read_recording(path)
        except EegstreamError as exc:  # the one allowed failure: a clear message
            error = str(exc)
    if error:
        assert kind not in HARMLESS, error
        assert "\n" not in error
        assert str(path) in error
        return
    assert rec.fs == FS
    assert rec.data.shape == (rec.n_samples, 14)
    if rec.n_samples > 1:
        assert np.all(np.diff(rec.timestamps) > 0)  # strictly increasing after any repair
    assert all(0 <= m.sample < rec.n_samples for m in rec.markers)
    analyse_recording(rec)  # info: no exception, and (warnings are errors) no RuntimeWarning
    if kind in HARMLESS:
        assert np.array_equal(rec.data, clean.data)
        assert np.array_equal(rec.timestamps, clean.timestamps)
        assert rec.markers == clean.markers
        assert finals(rec) == finals(clean)
        return
    error = ""
    try:
        finals(rec)
    except EegstreamError as exc:  # e.g. fewer samples than one window
        error = str(exc)
    assert "\n" not in error
