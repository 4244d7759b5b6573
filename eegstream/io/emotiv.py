"""EmotivPRO CSV recordings in and out.

Layouts read (columns are found by *name*, never by position, in any order and case):

- EmotivPRO 2.x/3.x: a metadata line (``title:..., headset type:EPOCPLUS, sampling rate:256,
  samples:9210      , ...`` or ``sampling:eeg_128;mot_32``) then a header row
  (``Timestamp, [OriginalTimestamp,] EEG.Counter, EEG.Interpolated, EEG.AF3 ... , MarkerIndex,
  MarkerType, MarkerValueInt, CQ.AF3 ...``);
- older exports: a metadata line ending in ``labels:COUNTER INTERPOLATED AF3 ...`` and no header
  row (the labels name the columns);
- a header row only, with ``EEG.``-prefixed or bare electrode names;
- a plain CSV of channel columns: timestamps are then synthesised from ``fs`` (default 128 Hz).

``.gz`` files are read and written transparently. EDF, BDF and FIF files are handed to MNE
(:mod:`eegstream.io.mne_io`, the ``mne`` extra) and come back as the same :class:`Recording`. 256 Hz recordings are resampled to the model
rate with :class:`eegstream.resample.Resampler`, the same code the live inlet uses.

``rec.metadata`` holds every ``key:value`` of the metadata line as written (``"headset type"``,
``"start timestamp"``, ...; also together under ``header``) and, normalised: ``title``,
``headset`` (display name, e.g. "EPOC+"), ``headset_type``, ``serial``, ``firmware``,
``subject``, ``start_time``, ``stop_time``, ``version``, ``source_fs`` (rate in the file),
``fs_source`` ("metadata", "timestamps", "argument" or "default"), ``source_samples``,
``resampled_from`` (only when resampled), ``columns`` (the header), ``timestamps_synthesised``,
``quality_source`` ("CQ" or "EQ", when present), and per-sample arrays: ``counter``
(``EEG.Counter``, at the file's own rate only) and ``original_timestamps`` (``OriginalTimestamp``,
resampled with the data).

Round trip: :func:`write_recording` writes microvolts rounded to ``UV_DECIMALS`` decimals and
timestamps in Python's shortest exact form, so reading the file back gives exactly
``np.round(rec.data, UV_DECIMALS)`` (rounding first makes the printed decimal the one the parser
reads back), the same timestamps bit for bit, and identical markers.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError, MissingChannelsError
from eegstream.io.markers import (
    label_for,
    merge_markers,
    read_interval_markers,
    sidecar_path,
    write_interval_markers,
)
from eegstream.io.recording import Marker, Recording, resample_recording
from eegstream.resample import check_rate
from eegstream.settings import DEFAULT_MARKER_LABELS, ELECTRODES, FS, MODEL_ELECTRODES

log = logging.getLogger(__name__)

__all__ = [
    "UV_DECIMALS",
    "headset_name",
    "parse_metadata_line",
    "read_recording",
    "write_recording",
]

UV_DECIMALS = 6  #: decimals written for microvolts (EmotivPRO writes 6 as well)
#: Common rates a timestamp-estimated rate snaps to when within 2 %.
_STANDARD_RATES = (128.0, 256.0, 512.0, 1024.0, 2048.0, 250.0, 500.0, 1000.0, 2000.0)
#: The metadata line's rate may differ this much (relative) from the timestamps' before it is an
#: error: the genuine EPOC+ export's clock runs 1 % slow (253.5 Hz for 256); 256 vs 128 is 100 %.
RATE_TOLERANCE = 0.1
#: Runs of at most this many seconds of non-finite cells (between finite ones) are interpolated:
#: the detector bridges the same span of missing samples (detector.GAP_S, 4 samples at 128 Hz).
REPAIR_MAX_S = 4.0 / 128.0
#: An electrode with more than this share of non-finite cells is empty (dead for detection).
EMPTY_SHARE = 0.5
#: |value| beyond this is no microvolt reading (EPOC rails are 0 and ~8,400 uV): a garbled cell.
ABSURD_UV = 1e9
_HEADSETS = {
    "EPOCPLUS": "EPOC+",
    "EPOC+": "EPOC+",
    "EPOCX": "EPOC X",
    "EPOC": "EPOC",
    "EPOCFLEX": "EPOC Flex",
    "INSIGHT": "Insight",
    "MN8": "MN8",
}
_ELECTRODE_UPPER = {e.upper(): e for e in ELECTRODES}
_META_KEY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _]*?)\s*:(.*)$", re.DOTALL)
#: ``eeg_<rate>`` inside EmotivPRO's ``sampling:eeg_128;mot_32``, else the value's first word.
_RATE_TEXT = re.compile(r"eeg_([^;,\s]*)|^([^;,\s]+(?:\s*hz)?)", re.IGNORECASE)

# Column roles: (role, electrode or None). Roles loaded as numbers, and which may hold empty cells.
_STRICT = frozenset({"time", "eeg", "ts_s", "ts_ms"})
_NULLABLE_ALWAYS = frozenset({"marker_value", "marker_index"})
#: The metadata line and header are read with this limit (a file without line breaks is no CSV).
_MAX_HEAD_LINE = 1 << 20
_MARKS = frozenset({"marker_value", "marker_index", "marker_old"})


def headset_name(headset_type: str) -> str:
    """Display name of EmotivPRO's ``headset type`` (``EPOCPLUS`` -> ``EPOC+``)."""
    return _HEADSETS.get(headset_type.strip().upper(), headset_type.strip())


def parse_metadata_line(line: str) -> dict[str, str]:
    """Parse EmotivPRO's first line ``key:value, key:value, ...`` into a dict.

    Keys are lower-cased and stripped; values are stripped (EmotivPRO pads some, e.g.
    ``samples:9210      ``). A comma inside a value (a title) stays part of that value.
    """
    out: dict[str, str] = {}
    key: str | None = None
    for part in line.rstrip("\r\n").split(","):
        m = _META_KEY.match(part)
        if m:
            key = m.group(1).strip().lower()
            out[key] = m.group(2).strip()
        elif key is not None and part.strip():
            out[key] = f"{out[key]},{part}".strip()
    return out


def _is_metadata_line(line: str) -> bool:
    first = line.split(",", 1)[0]
    return bool(_META_KEY.match(first)) and not _is_numeric_row(_split(line))


def _split(line: str) -> list[str]:
    return next(csv.reader([line.rstrip("\r\n")]), [])


def _is_numeric_row(cells: list[str]) -> bool:
    if not any(c.strip() for c in cells):
        return False
    for c in cells:
        if c.strip():
            try:
                float(c)
            except ValueError:
                return False
    return True


def _role(name: str) -> tuple[str, str | None]:
    """What a column holds, from its name (case-insensitive, ``EEG.`` prefix optional)."""
    u = name.strip().upper()
    simple = {
        "TIMESTAMP": "time",
        "ORIGINALTIMESTAMP": "orig_time",
        "EEG.COUNTER": "counter",
        "COUNTER": "counter",
        "EEG.INTERPOLATED": "interp",
        "INTERPOLATED": "interp",
        "MARKERVALUEINT": "marker_value",
        "MARKERINDEX": "marker_index",
        "MARKER": "marker_old",
        "TIME_STAMP_S": "ts_s",
        "TIME_STAMP_MS": "ts_ms",
    }
    if u in simple:
        return simple[u], None
    bare = u[4:] if u.startswith("EEG.") else u
    if bare in _ELECTRODE_UPPER:
        return "eeg", _ELECTRODE_UPPER[bare]
    for prefix, role in (("CQ.", "cq"), ("CQ_", "cq"), ("EQ.", "eq")):
        if u.startswith(prefix) and u[3:] in _ELECTRODE_UPPER:
            return role, _ELECTRODE_UPPER[u[3:]]
    return "ignored", None


@contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    """Open a CSV as text, gunzipping when the file starts with the gzip magic bytes."""
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
        if magic == b"\x1f\x8b":
            with gzip.open(path, "rt", encoding="utf-8-sig", newline=None) as fh:
                yield fh
        else:
            with path.open("r", encoding="utf-8-sig", newline=None) as fh:
                yield fh
    except FileNotFoundError:
        raise EegstreamError(
            f"recording {path} does not exist; check the path (current folder: {Path.cwd()})"
        ) from None
    except IsADirectoryError:
        raise EegstreamError(f"recording {path} is a folder; give the path of a CSV file") from None
    except PermissionError:
        raise EegstreamError(f"recording {path} cannot be read (permission denied)") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise EegstreamError(
            f"recording {path} is not a readable text CSV ({exc.__class__.__name__}); "
            "give an EmotivPRO CSV export (optionally .gz)"
        ) from None


@dataclass
class _Layout:
    names: list[str]  # column names
    skip: int  # lines before the first data row
    meta: dict[str, str] = field(default_factory=dict)
    labels_form: bool = False


def _layout(path: Path) -> _Layout:
    """Find the metadata line, the header and where the data begin."""
    lines: list[tuple[int, str]] = []  # (physical line number, text) of the first non-blank lines
    with _open_text(path) as fh:
        line_no = 0
        while len(lines) < 2:
            line = fh.readline(_MAX_HEAD_LINE)
            if not line:
                break
            line_no += 1
            if len(line) >= _MAX_HEAD_LINE and not line.endswith("\n"):
                raise EegstreamError(
                    f"recording {path}, line {line_no}: more than {_MAX_HEAD_LINE:,} characters "
                    "without a line break; this is not a CSV export (give an EmotivPRO CSV)"
                )
            if line.strip():
                lines.append((line_no, line))
    if not lines:
        raise EegstreamError(
            f"recording {path} is empty; give an EmotivPRO CSV export with data rows"
        )
    meta: dict[str, str] = {}
    idx = 0
    if _is_metadata_line(lines[0][1]):
        meta = parse_metadata_line(lines[0][1])
        idx = 1
    if idx >= len(lines):
        raise EegstreamError(
            f"recording {path} has a metadata line but no header row and no data; "
            "export the recording again from EmotivPRO"
        )
    line_no, text = lines[idx]
    cells = _split(text)
    if _is_numeric_row(cells):
        labels = meta.get("labels", "").split()
        if not labels:
            where = "after the metadata line" if meta else "on line 1"
            raise EegstreamError(
                f"recording {path} has no header row (data start {where}) and no 'labels:' "
                "in a metadata line, so its columns cannot be identified by name; add a header "
                "row such as Timestamp,EEG.AF3,...,EEG.AF4"
            )
        if len(labels) != len(cells):
            raise EegstreamError(
                f"recording {path}: the metadata line's labels name {len(labels)} columns but "
                f"the data rows have {len(cells)}; fix the labels or export the file again"
            )
        return _Layout(labels, line_no - 1, meta, labels_form=True)
    return _Layout([c.strip() for c in cells], line_no, meta)


def _maybe_float(cell: str) -> float:
    """Converter for columns that are empty on most rows (markers)."""
    cell = cell.strip()
    return float(cell) if cell else math.nan


def _find_bad_cell(
    path: Path, skip: int, cols: list[int], nullable: set[int]
) -> tuple[int, int, str | None, int] | None:
    """Slow path after a parse failure: ``(line, column, cell, cells in row)`` of the first bad cell.

    ``cell`` is None when the row is too short to have that column.
    """
    with _open_text(path) as fh:
        for _ in range(skip):
            fh.readline()
        for line_no, row in enumerate(csv.reader(fh), start=skip + 1):
            if not row or not any(c.strip() for c in row):
                continue
            for c in cols:
                if c >= len(row):
                    return line_no, c, None, len(row)
                cell = row[c].strip()
                if not cell:
                    if c in nullable:
                        continue
                    return line_no, c, "", len(row)
                try:
                    float(cell)
                except ValueError:
                    return line_no, c, cell, len(row)
    return None


def _data_line_numbers(path: Path, skip: int) -> npt.NDArray[np.int64]:
    """Physical line number of every data row (blank lines skipped), for error messages."""
    out: list[int] = []
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if line_no > skip and line.strip():
                out.append(line_no)
    return np.asarray(out, dtype=np.int64)


def _load_numbers(
    path: Path, lay: _Layout, cols: list[int], roles: list[str]
) -> npt.NDArray[np.float64]:
    """Parse the selected columns with ``np.loadtxt`` (C speed), explaining any failure."""
    nullable = {c for c, r in zip(cols, roles, strict=True) if r in _NULLABLE_ALWAYS}
    optional = {c for c, r in zip(cols, roles, strict=True) if r not in _STRICT}
    skip_blank = False  # whitespace-only lines (loadtxt skips only empty ones): 2nd pass
    for _attempt in range(3):
        converters: dict[int | str, Callable[[str], Any]] = {c: _maybe_float for c in nullable}
        try:
            with _open_text(path) as fh, warnings.catch_warnings():
                warnings.filterwarnings("ignore", "loadtxt: input contained no data")
                for _ in range(lay.skip):
                    fh.readline()
                lines: Iterable[str] = (ln for ln in fh if ln.strip()) if skip_blank else fh
                # ~3.5 s for 1 h of a 37-column EmotivPRO export (460,800 rows) on 1 core.
                table: npt.NDArray[np.float64] = np.loadtxt(
                    lines,
                    delimiter=",",
                    dtype=np.float64,
                    usecols=cols,
                    converters=converters or None,
                    comments=None,
                    ndmin=2,
                )
                return table
        except ValueError as exc:
            bad = _find_bad_cell(path, lay.skip, cols, nullable)
            if bad is None and not skip_blank:
                skip_blank = True
                continue
            if bad is None:
                raise EegstreamError(
                    f"recording {path} could not be parsed as numbers ({exc}); "
                    "check that it is a comma-separated EmotivPRO export"
                ) from None
            line_no, c, cell, width = bad
            if cell == "" and c in optional and not nullable >= optional:
                log.info("%s: empty cells in optional columns, reading them as missing", path)
                nullable |= optional
                continue
            if cell is None:
                raise EegstreamError(
                    f"recording {path}, line {line_no}: the row has {width} cells but the header "
                    f"names {len(lay.names)} columns (no cell for {lay.names[c]}); the file may "
                    "be truncated: fix or remove that row"
                ) from None
            what = "an empty cell" if cell == "" else repr(cell)
            raise EegstreamError(
                f"recording {path}, line {line_no}, column {lay.names[c]}: expected a number, "
                f"found {what}; fix or remove that row"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _check_regular_file(path: Path) -> None:
    """Refuse folders, devices and pipes before reading (``/dev/zero`` would fill the memory)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise EegstreamError(
            f"recording {path} does not exist; check the path (current folder: {Path.cwd()})"
        ) from None
    except OSError as exc:
        raise EegstreamError(f"recording {path} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise EegstreamError(f"recording {path} is a folder; give the path of a CSV file")
    if not stat.S_ISREG(mode):
        raise EegstreamError(
            f"recording {path} is not a regular file (a device, pipe or socket); give the path "
            "of a CSV file (save a stream to a file first)"
        )


def _check_timestamps(path: Path, lay: _Layout, ts: npt.NDArray[np.float64]) -> None:
    """Timestamps must be numbers and never go backwards (errors name the file's line)."""
    if not np.all(np.isfinite(ts)):
        row = int(np.flatnonzero(~np.isfinite(ts))[0])
        line = int(_data_line_numbers(path, lay.skip)[row])
        raise EegstreamError(
            f"recording {path}, line {line}: the timestamp is not a number; fix or remove that row"
        )
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        row = int(back[0]) + 1
        line = int(_data_line_numbers(path, lay.skip)[row])
        raise EegstreamError(
            f"recording {path}, line {line}: timestamp {ts[row]:.6f} is earlier than the "
            f"previous row's {ts[row - 1]:.6f}; timestamps must not go backwards (were two "
            "files concatenated? split them)"
        )


def _duplicate_rows(
    ts: npt.NDArray[np.float64],
    counter: npt.NDArray[np.float64] | None,
    eeg: npt.NDArray[np.float64],
) -> npt.NDArray[np.bool_] | None:
    """Rows to keep when some repeat the row before (same timestamp and counter, or values).

    A row written twice is one sample: kept, it would lengthen the recording and shift the
    samples after it against their timestamps. None when there is nothing to drop.
    """
    same = np.flatnonzero(ts[1:] == ts[:-1]) + 1
    if same.size == 0:
        return None
    if counter is not None:
        dup = same[counter[same] == counter[same - 1]]
    else:
        dup = same[(eeg[same] == eeg[same - 1]).all(axis=1)]
    if dup.size == 0:
        return None
    keep = np.ones(ts.shape[0], dtype=bool)
    keep[dup] = False
    return keep


def _drop_rows(
    table: npt.NDArray[np.float64], keep: npt.NDArray[np.bool_], mark_cols: list[int]
) -> npt.NDArray[np.float64]:
    """``table[keep]``; a marker on a dropped row moves to the kept row it duplicates."""
    if mark_cols:
        marks = np.nan_to_num(table[:, mark_cols]) != 0
        dropped = np.flatnonzero(~keep & marks.any(axis=1))
        if dropped.size:
            kept_before = np.maximum.accumulate(np.where(keep, np.arange(keep.shape[0]), 0))
            for r in dropped.tolist():
                k = int(kept_before[r])
                if not marks[k].any():
                    table[k, mark_cols] = table[r, mark_cols]
                    marks[k] = True
    return table[keep]


def _spread_repeated(path: Path, ts: npt.NDArray[np.float64], fs: float) -> int:
    """Spread runs of a repeated timestamp evenly up to the next one (in place); how many rows.

    The rows are distinct samples (their counter or values differ), only their stamp is stale;
    left as they are, windows would be stamped with the wrong time. More than half the rows
    repeating is a broken clock, not a stale stamp: an error.
    """
    n = ts.shape[0]
    rep = ts[1:] == ts[:-1]
    k = int(rep.sum())
    if k == 0:
        return 0
    if 2 * k > n:
        raise EegstreamError(
            f"recording {path}: {k:,} of {n:,} rows repeat the previous row's timestamp, so the "
            "Timestamp column cannot place the samples; fix it, or delete the column so "
            "timestamps are synthesised from the sampling rate"
        )
    is_start = np.concatenate(([True], ~rep))
    starts = np.flatnonzero(is_start)
    group = np.cumsum(is_start) - 1
    first = starts[group]
    nxt = np.concatenate((starts[1:], [n]))[group]
    count = nxt - first
    t_first = ts[first]
    t_next = np.where(nxt < n, ts[np.minimum(nxt, n - 1)], t_first + count / fs)
    offset = np.arange(n) - first
    later = offset > 0
    ts[later] = (t_first + offset * (t_next - t_first) / count)[later]
    return k


def _repair_cells(
    data: npt.NDArray[np.float64], present: list[int], fs: float
) -> tuple[dict[str, int], list[str], npt.NDArray[np.bool_] | None]:
    """Non-finite or absurd EEG cells: count them, interpolate short runs, find empty electrodes.

    In place on ``data``. A short run (up to ``REPAIR_MAX_S``) between good samples is
    interpolated linearly: left as NaN it would stop classification for a whole window (0.5 s)
    and cut any artifact across it in two. Longer runs stay NaN (the detector skips those
    windows); an electrode with more than ``EMPTY_SHARE`` of them is listed as empty.
    Returns the count per electrode, the empty electrodes and the rows interpolated (None if
    none).
    """
    x = data[:, present]
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(x) <= ABSURD_UV)
    if not bad.any():
        return {}, [], None
    n = data.shape[0]
    max_run = max(1, int(REPAIR_MAX_S * fs + 1e-9))
    counts: dict[str, int] = {}
    empty: list[str] = []
    fixed = np.zeros(n, dtype=bool)
    for j in np.flatnonzero(bad.any(axis=0)).tolist():
        c, b = present[j], bad[:, j]
        name = ELECTRODES[c]
        counts[name] = int(b.sum())
        col = data[:, c]
        col[b] = np.nan
        if counts[name] > EMPTY_SHARE * n:
            empty.append(name)
            continue
        edges = np.flatnonzero(np.diff(np.concatenate(([0], b.view(np.int8), [0]))))
        starts, stops = edges[::2], edges[1::2]
        short = (stops - starts <= max_run) & (starts > 0) & (stops < n)
        if not short.any():
            continue
        a, lengths = starts[short], (stops - starts)[short]
        idx = np.arange(int(lengths.sum())) + np.repeat(a - np.cumsum(lengths) + lengths, lengths)
        good = np.flatnonzero(~b)
        col[idx] = np.interp(idx, good, col[good])
        fixed[idx] = True
    return counts, empty, (fixed if fixed.any() else None)


def _rate_from_meta(path: Path, meta: Mapping[str, str]) -> float | None:
    """The rate the metadata line states; a stated rate that is not a positive number is an error.

    ``sampling rate:256``, ``sampling:eeg_128;mot_32``, ``sampling:128`` (old exports).
    """
    for key in ("sampling rate", "sampling"):
        text = meta.get(key, "").strip()
        if not text:
            continue
        m = _RATE_TEXT.search(text)
        token = (m.group(1) or m.group(2) or "") if m else ""
        token = re.sub(r"(?i)\s*hz$", "", token)
        try:
            rate = float(token)
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise EegstreamError(
                f"recording {path}: the metadata line says '{key}:{text}', expected a positive "
                "sampling rate in Hz (e.g. 128 or 256); fix that entry (the rate the headset "
                "recorded at) or delete it so the rate is taken from the timestamps"
            )
        return rate
    return None


def _decide_rate(
    path: Path, meta_fs: float | None, ts: npt.NDArray[np.float64] | None, fs: float | None
) -> tuple[float, str]:
    """The file's sampling rate and where it came from; conflicts are user errors."""
    if fs is not None and not (math.isfinite(fs) and fs > 0):
        raise EegstreamError(
            f"recording {path}: fs={fs!r} was given; expected a positive sampling rate in Hz "
            "(e.g. --fs 128)"
        )
    if meta_fs is not None:
        if fs is not None and fs != meta_fs:
            raise EegstreamError(
                f"recording {path} says 'sampling rate {meta_fs:g}' in its metadata line but "
                f"fs={fs:g} was given; drop --fs (it is only for files that lack a rate)"
            )
        est = _timestamp_rate(ts)
        if est is not None and abs(est - meta_fs) > RATE_TOLERANCE * meta_fs:
            raise EegstreamError(
                f"recording {path} says 'sampling rate {meta_fs:g}' in its metadata line but its "
                f"timestamps advance at {est:.1f} Hz; one of them is wrong: fix the metadata "
                f"line's rate (e.g. 'sampling rate:{_snap(est):g}') or the Timestamp column"
            )
        return meta_fs, "metadata"
    est = _timestamp_rate(ts)
    if est is not None:
        if fs is not None:
            if abs(est - fs) > 0.05 * fs:
                raise EegstreamError(
                    f"recording {path}: its timestamps advance at {est:.1f} Hz but fs={fs:g} "
                    "was given; drop --fs or fix it"
                )
            return float(fs), "argument"
        return _snap(est), "timestamps"
    if fs is not None:
        return float(fs), "argument"
    return float(FS), "default"


def _timestamp_rate(ts: npt.NDArray[np.float64] | None) -> float | None:
    """Rate from the median timestamp step (robust to gaps and jitter); None if unknown."""
    if ts is None or ts.shape[0] <= 2:
        return None
    step = float(np.median(np.diff(ts)))
    return 1.0 / step if step > 0 else None


def _snap(est: float) -> float:
    """A timestamp-estimated rate, snapped to a common rate within 2 %."""
    for rate in _STANDARD_RATES:
        if abs(est - rate) <= 0.02 * rate:
            return rate
    return round(est, 1)


def _metadata_from_line(meta: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"header": dict(meta)}
    simple = {
        "title": "title",
        "headset serial": "serial",
        "headset firmware": "firmware",
        "subject name": "subject",
        "version": "version",
    }
    for key, name in simple.items():
        if meta.get(key):
            out[name] = meta[key]
    if meta.get("headset type"):
        out["headset_type"] = meta["headset type"]
        out["headset"] = headset_name(meta["headset type"])
    for key, name in (("start timestamp", "start_time"), ("stop timestamp", "stop_time")):
        try:
            out[name] = float(meta[key])
        except (KeyError, ValueError):
            pass
    try:
        out["samples"] = int(meta["samples"].strip())
    except (KeyError, ValueError):
        pass
    return out


def read_recording(
    path: str | os.PathLike[str],
    *,
    fs: float | None = None,
    marker_labels: Mapping[int, str] | None = None,
    marker_map: Mapping[int, str] | None = None,
    target_fs: float | None = FS,
    require_electrodes: bool = True,
    repair_cells: bool = True,
) -> Recording:
    """Read an EmotivPRO CSV (or plain CSV of channel columns) into a :class:`Recording`.

    Parameters
    ----------
    path
        ``.csv`` or ``.csv.gz``; an ``<stem>_intervalMarker.csv`` beside it is merged.
    fs
        Sampling rate for files that do not state one (no metadata line): used to synthesise
        timestamps, or checked against the timestamps. Contradicting the metadata line is an error.
    marker_labels
        ``MarkerValueInt`` -> label (default 22 blink, 23 jaw_clench); others become ``marker_<v>``.
    marker_map
        The user's own labels (``--marker-map``): they win over the sidecar's ``type`` column and
        over ``marker_labels``.
    target_fs
        Rate to return: the file's rate must equal it or be resampled to it (256 -> 128 Hz).
        ``None`` keeps the file's own rate (``eegstream info`` looks at the data as recorded).
    require_electrodes
        Raise :class:`MissingChannelsError` when an electrode the model reads is absent.
    repair_cells
        Interpolate short runs of non-finite or absurd EEG cells (and report them); ``False``
        leaves them as read, for callers that refuse such files (labelled epochs).
    """
    path = Path(path)
    labels = dict(DEFAULT_MARKER_LABELS if marker_labels is None else marker_labels)
    _check_regular_file(path)
    from eegstream.io.mne_io import is_mne_path

    if is_mne_path(path):
        from eegstream.io.mne_io import read_mne_recording

        return read_mne_recording(
            path,
            marker_labels=labels,
            marker_map=marker_map,
            target_fs=target_fs,
            require_electrodes=require_electrodes,
        )
    lay = _layout(path)
    roles = [_role(n) for n in lay.names]

    seen: dict[tuple[str, str | None], int] = {}
    for i, (role, key) in enumerate(roles):
        if role == "ignored":
            continue
        if (role, key) in seen:
            raise EegstreamError(
                f"recording {path}: columns {lay.names[seen[(role, key)]]!r} and {lay.names[i]!r} "
                f"both hold {key or role}; keep one of them"
            )
        seen[(role, key)] = i
    eeg_cols = {key: i for (role, key), i in seen.items() if role == "eeg" and key}
    found = [e for e in ELECTRODES if e in eeg_cols]
    missing = tuple(e for e in ELECTRODES if e not in eeg_cols)
    if not found:
        raise MissingChannelsError(str(path), list(MODEL_ELECTRODES), [])
    if require_electrodes:
        need = [e for e in MODEL_ELECTRODES if e in missing]
        if need:
            raise MissingChannelsError(str(path), need, found)

    cols = sorted(seen.values())
    col_roles = [roles[c][0] for c in cols]
    table = _load_numbers(path, lay, cols, col_roles)
    if table.shape[0] == 0:
        raise EegstreamError(
            f"recording {path} has a header but no data rows; export the recording again"
        )
    pos = {c: j for j, c in enumerate(cols)}
    repairs: list[str] = []  # what was repaired, in words (warned, and kept in the metadata)

    def column(role: str, key: str | None = None) -> npt.NDArray[np.float64] | None:
        i = seen.get((role, key))
        return None if i is None else table[:, pos[i]]

    for role in ("marker_value", "marker_index", "marker_old"):
        marks = column(role)
        if marks is not None:
            with np.errstate(invalid="ignore"):
                wrong = np.flatnonzero(np.isinf(marks) | (np.abs(marks) >= 2**31))
            if wrong.size:
                row = int(wrong[0])
                line = int(_data_line_numbers(path, lay.skip)[row])
                raise EegstreamError(
                    f"recording {path}, line {line}, column {lay.names[seen[(role, None)]]}: "
                    f"expected a marker number, found {marks[row]:g}; fix or remove that cell"
                )
    meta_fs = _rate_from_meta(path, lay.meta)
    ts = column("time")
    secs = column("ts_s")
    if ts is None and secs is not None:  # old TestBench exports: seconds + milliseconds columns
        ms = column("ts_ms")
        ts = secs if ms is None else secs + ms / 1000.0
    if ts is not None:
        ts = np.ascontiguousarray(ts)
        _check_timestamps(path, lay, ts)
        keep = _duplicate_rows(ts, column("counter"), table[:, [pos[eeg_cols[e]] for e in found]])
        if keep is not None:
            dropped = int(table.shape[0] - keep.sum())
            table = _drop_rows(table, keep, [pos[i] for (r, _), i in seen.items() if r in _MARKS])
            ts = ts[keep]
            repairs.append(
                f"dropped {dropped:,} duplicated row(s) (same timestamp and "
                f"{'counter' if column('counter') is not None else 'values'} as the row before)"
            )
    n = table.shape[0]
    data = np.full((n, len(ELECTRODES)), np.nan, dtype=np.float64)
    present = [ELECTRODES.index(e) for e in found]
    data[:, present] = table[:, [pos[eeg_cols[e]] for e in found]]

    if ts is not None and n > 1 and ts[-1] == ts[0]:
        raise EegstreamError(
            f"recording {path}: all {n:,} rows have the same timestamp {ts[0]:.6f}, so the "
            "Timestamp column says nothing about when samples were taken; fix it, or delete the "
            "column so timestamps are synthesised from the sampling rate"
        )
    src_fs, fs_source = _decide_rate(path, meta_fs, ts, fs)
    synthesised = ts is None
    if ts is None:
        t0 = _metadata_from_line(lay.meta).get("start_time", 0.0)
        ts = float(t0) + np.arange(n, dtype=np.float64) / src_fs
    else:
        spread = _spread_repeated(path, ts, src_fs)
        if spread:
            repairs.append(
                f"{spread:,} row(s) repeated the previous row's timestamp; their timestamps "
                "were spread evenly up to the next timestamp"
            )

    interp_col = column("interp")
    interpolated = None if interp_col is None else np.nan_to_num(interp_col) > 0
    nonfinite, empty, fixed = (
        _repair_cells(data, present, src_fs) if repair_cells else ({}, [], None)
    )
    if fixed is not None:
        interpolated = fixed if interpolated is None else interpolated | fixed
    if nonfinite:
        cells = sum(nonfinite.values())
        what = [
            f"{cells:,} cell(s) that were not numbers (NaN, inf or beyond {ABSURD_UV:g} uV): "
            + ", ".join(f"{e} {c:,}" for e, c in nonfinite.items())
        ]
        if fixed is not None:
            what.append(
                f"{int(fixed.sum()):,} row(s) in runs of at most {REPAIR_MAX_S * 1000:.0f} ms "
                "interpolated (flagged as interpolated)"
            )
        if empty:
            what.append(f"{', '.join(empty)} empty (more than half not numbers)")
        repairs.append("; ".join(what))
    quality, quality_source = None, None
    for role, name in (("cq", "CQ"), ("eq", "EQ")):
        q_cols = {key: i for (r, key), i in seen.items() if r == role and key}
        if q_cols:
            quality = np.full((n, len(ELECTRODES)), np.nan, dtype=np.float32)
            for e, i in q_cols.items():
                quality[:, ELECTRODES.index(e)] = table[:, pos[i]]
            quality_source = name
            break

    markers = _inline_markers(column, ts, labels, marker_map)
    side = sidecar_path(path)
    if side.is_file():
        markers = merge_markers(
            markers,
            read_interval_markers(side, ts, labels, marker_map),
            tolerance=max(1, round(0.1 * src_fs)),
        )

    metadata: dict[str, Any] = dict(lay.meta)  # raw keys, as the simulator's recordings have them
    metadata.update(_metadata_from_line(lay.meta))
    metadata.update(
        source_fs=src_fs,
        fs_source=fs_source,
        source_samples=n,
        columns=list(lay.names),
        timestamps_synthesised=synthesised,
    )
    if quality_source:
        metadata["quality_source"] = quality_source
    if nonfinite:
        metadata["nonfinite"] = nonfinite
    if empty:
        metadata["empty_electrodes"] = empty
    metadata["repairs"] = repairs
    for text in repairs:
        log.warning("recording %s: %s", path, text)
    counter = column("counter")
    if counter is not None:
        metadata["counter"] = counter.copy()
    orig = column("orig_time")
    if orig is not None:
        metadata["original_timestamps"] = orig.copy()

    rec = Recording(
        data=data,
        timestamps=ts,
        fs=src_fs,
        markers=markers,
        missing=missing,
        interpolated=interpolated,
        quality=quality,
        metadata=metadata,
        source=str(path),
    )
    if target_fs is not None and src_fs != target_fs:
        check_rate(src_fs, target_fs, f"recording {path}")
        rec = resample_recording(rec, target_fs)
    log.debug("read %s: %s samples at %s Hz, %s markers", path, rec.n_samples, rec.fs, len(markers))
    return rec


def _inline_markers(
    column: Any,
    ts: npt.NDArray[np.float64],
    labels: Mapping[int, str],
    marker_map: Mapping[int, str] | None = None,
) -> list[Marker]:
    """Markers from ``MarkerValueInt`` (grouped by ``MarkerIndex``) or the old ``MARKER``."""
    values = column("marker_value")
    if values is not None:
        rows = np.flatnonzero(~np.isnan(values))
    else:
        values = column("marker_old")
        if values is None:
            return []
        rows = np.flatnonzero(np.nan_to_num(values) != 0)
    index = column("marker_index")
    markers: list[Marker] = []
    groups: dict[float, int] = {}  # MarkerIndex -> position in markers (start/end rows)
    for r in rows.tolist():
        v = int(values[r])
        key = float(index[r]) if index is not None and not np.isnan(index[r]) else None
        if key is not None and key in groups:
            first = markers[groups[key]]
            markers[groups[key]] = Marker(
                first.sample, first.time, first.value, first.label, float(ts[r] - first.time)
            )
            continue
        if key is not None:
            groups[key] = len(markers)
        markers.append(Marker(int(r), float(ts[r]), v, label_for(v, labels, marker_map)))
    return markers


# --- writer -------------------------------------------------------------------------------------


def _clean(text: object) -> str:
    """A metadata value that cannot break the ``key:value, ...`` line."""
    return str(text).replace(",", ";").replace("\n", " ").replace("\r", " ").strip()


_EMOTIV_CODES = {name.upper(): code for code, name in _HEADSETS.items()}
# Metadata entries the writer derives itself, or that describe the reading, not the recording.
_DERIVED = frozenset(
    {
        "header", "headset", "start_time", "stop_time", "samples", "source_fs", "fs_source",
        "source_samples", "resampled_from", "columns", "timestamps_synthesised",
        "quality_source", "counter", "original_timestamps", "channels", "sampling",
        "sampling rate", "start timestamp", "stop timestamp", "labels", "chan",
        "repairs", "nonfinite", "empty_electrodes",
    }
)  # fmt: skip


def _metadata_line(rec: Recording, n_columns: int, default_title: str) -> str:
    """EmotivPRO's first line from ``rec.metadata`` (normalised or raw EmotivPRO keys)."""
    md = rec.metadata
    raw: dict[str, Any] = dict(md.get("header") or {})
    used: set[str] = set()

    def pick(*keys: str) -> str:
        for source in (md, raw):
            for key in keys:
                value = source.get(key)
                if value is not None and not isinstance(value, (dict, list, np.ndarray)):
                    used.update(keys)
                    return _clean(value)
        used.update(keys)
        return ""

    headset = pick("headset_type", "headset type", "headset")
    headset = _EMOTIV_CODES.get(headset.upper(), headset) or "EPOCPLUS"
    t0 = repr(float(rec.timestamps[0])) if rec.n_samples else "0.0"
    t1 = repr(float(rec.timestamps[-1])) if rec.n_samples else "0.0"
    items = [
        ("title", pick("title") or default_title),
        ("start timestamp", t0),
        ("stop timestamp", t1),
        ("headset type", headset),
        ("headset serial", pick("serial", "headset serial")),
        ("headset firmware", pick("firmware", "headset firmware")),
        ("subject name", pick("subject", "subject name")),
        ("channels", str(n_columns)),
        ("sampling rate", f"{rec.fs:g}"),
        ("samples", str(rec.n_samples)),
        ("version", pick("version") or "2.1"),
    ]
    # Anything else the recording carries (a simulator's parameters, EmotivPRO's "recorded").
    for source in (md, raw):
        for key, value in source.items():
            if (
                key in used
                or key in _DERIVED
                or isinstance(value, (dict, list, tuple, np.ndarray))
                or not _META_KEY.match(f"{key}:")
            ):
                continue
            used.add(key)
            items.append((key, _clean(value)))
    return ", ".join(f"{k}:{v}" for k, v in items if v != "" or k == "title")


def write_recording(rec: Recording, path: str | os.PathLike[str]) -> None:
    """Write ``rec`` as an EmotivPRO CSV (gzip-compressed when the name ends in ``.gz``).

    Absent electrodes (``rec.missing``) get no column, so they read back as missing. Markers go
    into ``MarkerIndex/MarkerType/MarkerValueInt``; when some have a duration or share a sample,
    or a sidecar already exists at the target, ``<stem>_intervalMarker.csv`` is (re)written too,
    so the sidecar always describes the file beside it.
    """
    path = Path(path)
    n = rec.n_samples
    if rec.data.shape != (n, len(ELECTRODES)) or rec.timestamps.shape != (n,):
        raise ValueError(
            f"recording data must be (n, {len(ELECTRODES)}) with n timestamps, got "
            f"{rec.data.shape} and {rec.timestamps.shape}"
        )
    present = [i for i, e in enumerate(ELECTRODES) if e not in rec.missing]
    md = rec.metadata
    counter = md.get("counter")
    if counter is None or np.shape(counter) != (n,):
        counter = np.arange(n) % max(1, round(rec.fs))  # EmotivPRO: resets every second
    orig = md.get("original_timestamps")
    if orig is None or np.shape(orig) != (n,):
        orig = rec.timestamps
    interp = np.zeros(n) if rec.interpolated is None else rec.interpolated.astype(np.float64)

    left = np.column_stack(
        [
            rec.timestamps,
            np.asarray(orig, dtype=np.float64),
            np.nan_to_num(np.asarray(counter, dtype=np.float64)),
            interp,
            np.round(rec.data[:, present], UV_DECIMALS),
        ]
    )
    # Timestamps as repr: the shortest text that reads back to the same double.
    left_fmt = ",".join(["%r", "%r", "%d", "%d"] + [f"%.{UV_DECIMALS}f"] * len(present))
    names = ["Timestamp", "OriginalTimestamp", "EEG.Counter", "EEG.Interpolated"]
    names += [f"EEG.{ELECTRODES[i]}" for i in present]
    names += ["MarkerIndex", "MarkerType", "MarkerValueInt"]

    mark_cells = [",,"] * n
    taken: set[int] = set()
    collision = False
    for i, m in enumerate(rec.markers, start=1):
        if not 0 <= m.sample < n:
            raise ValueError(f"marker {m} lies outside the recording's {n} samples")
        if m.sample in taken:
            collision = True  # one row holds one marker: the sidecar carries the others
            continue
        taken.add(m.sample)
        mark_cells[m.sample] = f"{i},1,{m.value}"

    right_rows: list[str] | None = None
    if rec.quality is not None:
        names += [f"CQ.{e}" for e in ELECTRODES]
        right_fmt = ",".join(["%.9g"] * len(ELECTRODES))  # 9 digits round-trip any float32
        right_rows = [right_fmt % r for r in map(tuple, rec.quality.astype(np.float64).tolist())]

    # One %-format per row: ~3.5 s per hour of 128 Hz data (np.savetxt runs the same loop).
    left_rows = [left_fmt % r for r in map(tuple, left.tolist())]
    if right_rows is None:
        rows = [f"{a},{b}" for a, b in zip(left_rows, mark_cells, strict=True)]
    else:
        rows = [f"{a},{b},{c}" for a, b, c in zip(left_rows, mark_cells, right_rows, strict=True)]
    meta_line = _metadata_line(rec, len(names), path.name.split(".")[0])
    text = "\n".join([meta_line, ",".join(names), *rows]) + "\n"
    _write_bytes(path, text.encode("utf-8"))

    side = sidecar_path(path)
    if any(m.duration > 0 for m in rec.markers) or collision or side.exists():
        t0 = float(rec.timestamps[0]) if n else 0.0
        write_interval_markers(side, rec.markers, t0)
    log.debug("wrote %s: %s samples, %s markers", path, n, len(rec.markers))


def _write_bytes(path: Path, payload: bytes) -> None:
    """Write atomically (temp file + rename), gzip with a fixed header when ``.gz``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as raw:
            if path.suffix.lower() == ".gz":
                # mtime=0 and no file name: the same recording gives the same bytes.
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
                ) as gz:
                    gz.write(payload)
            else:
                raw.write(payload)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise EegstreamError(f"cannot write {path}: {exc.strerror or exc}") from exc
