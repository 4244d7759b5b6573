"""EmotivPRO's ``<stem>_intervalMarker.csv`` sidecar: marker onsets with durations.

EmotivPRO writes the marker *value* into the ``MarkerValueInt`` column of the recording, but a
marker's duration only into this sidecar (columns ``latency, duration, type, marker_value, key,
timestamp, marker_id``; latency in seconds from the recording start, timestamp in Unix seconds).
The reader merges it so that interval markers keep their length, and takes its ``type`` column
(the marker's name in EmotivPRO, e.g. ``blink`` or ``Jaw clench``) as the label when present.

A marker's label, first match wins: the user's ``--marker-map`` (:func:`parse_marker_map`), the
sidecar's ``type``, the default codes (22 blink, 23 jaw clench), else ``marker_<value>``.
"""

from __future__ import annotations

import bisect
import csv
import io
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from eegstream.errors import EegstreamError
from eegstream.io.recording import Marker

log = logging.getLogger(__name__)

__all__ = [
    "MarkerMap",
    "label_for",
    "label_from_text",
    "marker_map_arg",
    "merge_markers",
    "parse_marker_map",
    "read_interval_markers",
    "sidecar_path",
    "write_interval_markers",
]

SIDECAR_SUFFIX = "_intervalMarker.csv"
SIDECAR_COLUMNS = ("latency", "duration", "type", "marker_value", "key", "timestamp", "marker_id")


#: The user's own labels: marker value -> label (``--marker-map 33024=blink,...``).
MarkerMap = Mapping[int, str]
_LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
#: Labels the detector emits: ``BAD_<label>`` annotations (eegstream's own) read back as these.
_ARTIFACTS = ("blink", "jaw_clench")


def label_for(value: int, labels: Mapping[int, str], marker_map: MarkerMap | None = None) -> str:
    """The label of a marker value: the user's map, the configured mapping, else ``marker_<value>``."""
    if marker_map and value in marker_map:
        return marker_map[value]
    return labels.get(value, f"marker_{value}")


def label_from_text(text: str) -> str | None:
    """A label from a marker's name (sidecar ``type``, MNE annotation), or None if it has none.

    Names are compared in lower case with spaces and hyphens as underscores (``Jaw clench`` ->
    ``jaw_clench``); eegstream's own ``BAD_blink`` annotations read back as ``blink``; a purely
    numeric name is a code, not a label.
    """
    name = re.sub(r"[\s\-]+", "_", text.strip().lower())
    if not name or re.fullmatch(r"[+-]?\d+(\.\d*)?", name):
        return None
    if name.startswith("bad_") and name[4:] in _ARTIFACTS:
        return name[4:]
    return name


def parse_marker_map(text: str, flag: str = "--marker-map") -> dict[int, str]:
    """``"33024=blink,33025=jaw_clench"`` -> ``{33024: "blink", 33025: "jaw_clench"}``.

    Parsed once per command, before any work, so a typo costs a second rather than a run.
    """
    out: dict[int, str] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        code, sep, label = (x.strip() for x in entry.partition("="))
        lab = label.lower()
        try:
            value = int(code)
        except ValueError:
            value = None
        if not sep or value is None or not _LABEL.match(lab) or abs(value) >= 2**31:
            raise EegstreamError(
                f"{flag} entry {entry!r}: expected CODE=LABEL with CODE a whole marker value and "
                f"LABEL a name such as blink, jaw_clench or rest (e.g. {flag} "
                "33024=blink,33025=jaw_clench); fix or remove that entry"
            )
        if value in out and out[value] != lab:
            raise EegstreamError(
                f"{flag}: marker {value} is mapped twice ({out[value]} and {lab}); keep one entry"
            )
        out[value] = lab
    if not out:
        raise EegstreamError(
            f"{flag} {text!r} has no entry; give CODE=LABEL pairs such as 33024=blink,33025=jaw_clench"
        )
    return out


def marker_map_arg(value: object, flag: str = "--marker-map") -> dict[int, str] | None:
    """The ``--marker-map`` option as given on the command line (text) or in Python (a mapping)."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_marker_map(value, flag)
    if isinstance(value, Mapping):
        return parse_marker_map(",".join(f"{k}={v}" for k, v in value.items()), flag)
    raise EegstreamError(
        f"{flag}: expected text such as '33024=blink' or a dict {{33024: 'blink'}}, "
        f"got {type(value).__name__}"
    )


def sidecar_path(recording: Path) -> Path:
    """``rec.csv`` or ``rec.csv.gz`` -> ``rec_intervalMarker.csv`` in the same folder."""
    name = recording.name
    for suffix in (".csv.gz", ".gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return recording.with_name(name + SIDECAR_SUFFIX)


def _nearest_sample(times: npt.NDArray[np.float64], t: float) -> int:
    """Index of the sample whose timestamp is closest to ``t``."""
    i = int(np.searchsorted(times, t))
    if i <= 0:
        return 0
    if i >= times.shape[0]:
        return int(times.shape[0] - 1)
    return i if times[i] - t < t - times[i - 1] else i - 1


def read_interval_markers(
    path: Path,
    timestamps: npt.NDArray[np.float64],
    labels: Mapping[int, str],
    marker_map: MarkerMap | None = None,
) -> list[Marker]:
    """Markers from a sidecar, placed on the nearest sample of ``timestamps``.

    The ``timestamp`` column locates a marker when it falls inside the recording; otherwise the
    ``latency`` (seconds from the first sample) does, as EmotivPRO's own viewer does. The label
    is ``marker_map``'s, else the ``type`` column's (the name given in EmotivPRO), else
    ``labels``'.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise EegstreamError(f"cannot read marker file {path}: {exc.strerror}") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    col = {name: i for i, name in enumerate(header)}
    if "marker_value" not in col or ("latency" not in col and "timestamp" not in col):
        raise EegstreamError(
            f"marker file {path}: expected the columns {', '.join(SIDECAR_COLUMNS)}, "
            f"found {', '.join(header) or 'none'}; fix the header or remove the file"
        )
    if timestamps.shape[0] == 0:
        return []
    t_first, t_last = float(timestamps[0]), float(timestamps[-1])
    markers: list[Marker] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue

        def number(name: str, row: list[str] = row, line_no: int = line_no) -> float | None:
            if name not in col or col[name] >= len(row) or not row[col[name]].strip():
                return None
            cell = row[col[name]].strip()
            try:
                return float(cell)
            except ValueError:
                raise EegstreamError(
                    f"marker file {path}, line {line_no}, column {name}: expected a number, "
                    f"found {cell!r}; fix the cell or remove the file"
                ) from None

        value, duration = number("marker_value"), number("duration")
        stamp, latency = number("timestamp"), number("latency")
        if value is None:
            continue
        if stamp is not None and t_first - 1.0 <= stamp <= t_last + 1.0:
            t = stamp
        elif latency is not None:
            t = t_first + latency
        else:
            log.warning(
                "marker file %s line %s: marker outside the recording, skipped", path, line_no
            )
            continue
        sample = _nearest_sample(timestamps, t)
        v = int(value)
        named = None
        if "type" in col and col["type"] < len(row):
            named = label_from_text(row[col["type"]])
        if named is None or (marker_map and v in marker_map):
            label = label_for(v, labels, marker_map)
        else:
            label = named
        markers.append(
            Marker(
                sample=sample,
                time=float(timestamps[sample]),
                value=v,
                label=label,
                duration=float(duration or 0.0),
            )
        )
    return markers


def merge_markers(
    inline: Sequence[Marker], sidecar: Sequence[Marker], tolerance: int
) -> list[Marker]:
    """Merge sidecar markers into the recording's own, sorted by sample.

    A sidecar marker with the same value within ``tolerance`` samples of an inline one gives it
    its duration and label (same marker, seen twice; the sidecar may name it); any other sidecar
    marker is added.
    """
    merged = list(inline)
    by_value: dict[int, list[tuple[int, int]]] = {}  # value -> sorted (sample, index in merged)
    for i, a in enumerate(merged):
        by_value.setdefault(a.value, []).append((a.sample, i))
    for pairs in by_value.values():
        pairs.sort()
    used: set[int] = set()
    for m in sidecar:
        pairs = by_value.get(m.value, [])
        j = bisect.bisect_left(pairs, (m.sample - tolerance, -1))
        match = None
        while j < len(pairs) and pairs[j][0] <= m.sample + tolerance:
            if pairs[j][1] not in used:
                match = pairs[j][1]
                break
            j += 1
        if match is None:
            merged.append(m)
            used.add(len(merged) - 1)
        else:
            a = merged[match]
            merged[match] = Marker(a.sample, a.time, a.value, m.label, m.duration or a.duration)
            used.add(match)
    merged.sort(key=lambda m: (m.sample, m.value))
    return merged


def _clean(text: str) -> str:
    """A label safe inside one unquoted CSV cell."""
    return text.replace(",", "_").replace("\n", " ").replace("\r", " ")


def write_interval_markers(path: Path, markers: Sequence[Marker], start_time: float) -> None:
    """Write a sidecar in EmotivPRO's layout (durations in full precision so they round-trip)."""
    buf = io.StringIO()
    buf.write(",".join(SIDECAR_COLUMNS) + "\n")
    for i, m in enumerate(markers, start=1):
        buf.write(
            f"{m.time - start_time:.6f},{m.duration!r},{_clean(m.label)},{m.value},-1,{m.time:.6f},{i}\n"
        )
    path.write_text(buf.getvalue(), encoding="utf-8")
