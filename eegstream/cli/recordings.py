"""``eegstream info``, ``simulate`` and ``replay``: look at, make and publish a recording.

Each handler imports the library when it runs (``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from eegstream.errors import EegstreamError

__all__ = ["run_info", "run_replay", "run_simulate"]

log = logging.getLogger(__name__)


def run_info(args: argparse.Namespace) -> int:
    """``eegstream info FILE [--fs HZ]``: print the report, return 0."""
    from eegstream.io.info import format_info, inspect_recording

    info = inspect_recording(
        Path(args.file), fs=args.fs, fault_limit_uv=args.settings.fault_limit_uv
    )
    print(format_info(info))  # noqa: T201 - the command's result goes to stdout
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    """``eegstream simulate OUT``: simulate and write an EmotivPRO CSV; one line says what."""
    from eegstream.io.emotiv import write_recording
    from eegstream.simulate import BLINK_MARKER, CLENCH_MARKER, simulate_recording

    out = Path(args.out)
    if out.parent and not out.parent.is_dir():
        raise EegstreamError(
            f"output folder {out.parent} does not exist; create it or choose another OUT path"
        )
    rec = simulate_recording(
        args.duration,
        args.seed,
        fs=args.fs,
        blink_rate=args.blink_rate,
        clench_rate=args.clench_rate,
        subject_variability=args.subject_variability,
        confounders=not args.no_confounders,
    )
    write_recording(rec, out)
    n_blink = sum(m.value == BLINK_MARKER for m in rec.markers)
    n_clench = sum(m.value == CLENCH_MARKER for m in rec.markers)
    print(  # noqa: T201 - the command's result goes to stdout
        f"wrote {out}: {rec.duration:g} s at {rec.fs:g} Hz, subject {rec.metadata['subject']}, "
        f"{n_blink} blinks (marker {BLINK_MARKER}), "
        f"{n_clench} jaw clenches (marker {CLENCH_MARKER})"
    )
    return 0


def _replay_path(file: Path | None) -> Path:
    """The recording to replay: FILE, checked, or the bundled demo when FILE is omitted."""
    if file is None:
        from eegstream.simulate import demo_recording_path

        return demo_recording_path()
    path = Path(file)
    if not path.is_file():
        raise EegstreamError(
            f"recording {path} does not exist or is not a file; give the path of an "
            f"EmotivPRO CSV (.csv or .csv.gz) or EDF/BDF/FIF (read through MNE), or omit FILE "
            "to replay the bundled demo"
        )
    return path


def run_replay(args: argparse.Namespace) -> int:
    """``eegstream replay [FILE]``: publish a recording until it ends or Ctrl-C / SIGTERM."""
    from eegstream.io.emotiv import read_recording
    from eegstream.stream.replay import Player, marker_stream_name, play

    speed = float(args.speed)
    if not (math.isfinite(speed) and speed >= 0):  # checked before minutes of reading
        raise EegstreamError(
            f"--speed must be >= 0 (1 = real time, 2 = twice as fast, 0 = as fast as possible); "
            f"got {args.speed}"
        )
    path = _replay_path(args.file)
    recording = read_recording(path)
    player = Player(
        recording,
        name=args.name,
        stype=args.type,
        source_id=args.source_id,
        speed=speed,
        loop=args.loop,
    )
    counts = {
        label: sum(m.label == label for m in recording.markers)
        for label in sorted({m.label for m in recording.markers})
    }
    print(  # noqa: T201 - the command's result: what is being published
        f"replaying {path} ({recording.duration:.1f} s, {recording.fs:g} Hz, markers {counts}) "
        f"as LSL stream {player.name!r} (type {player.stype!r}, source_id {player.source_id!r}) "
        f"and {marker_stream_name(player.name)!r} at speed {speed:g}"
        f"{', looping' if args.loop else ''}; Ctrl-C stops",
        flush=True,
    )
    if play(player):
        log.info("replay of %s stopped by the user", path)
    print(  # noqa: T201
        f"replay stopped after {player.samples_pushed} samples "
        f"({player.samples_pushed / player.fs:.1f} s), {player.markers_pushed} markers",
        flush=True,
    )
    return 0
