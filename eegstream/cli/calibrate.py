"""``eegstream calibrate``: a person's profile from a protocol recording, epochs or a live stream.

The handler picks the one source, checks ``--out`` before the minutes of recording, and prints
the calibration table; recording and calibrating are :mod:`eegstream.calibrate_live`'s and
:mod:`eegstream.calibrate`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from eegstream.errors import EegstreamError

if TYPE_CHECKING:
    from eegstream.calibrate import Protocol
    from eegstream.io.recording import Recording
    from eegstream.settings import Settings

__all__ = ["run_calibrate"]


def run_calibrate(args: argparse.Namespace) -> int:
    """``eegstream calibrate [REC.csv | --epochs DIR | --stream-name N] --out P``."""
    from eegstream.calibrate import Protocol, calibrate_recording
    from eegstream.offline import check_out_path, load_model

    sources = [args.file is not None, args.epochs is not None, bool(args.stream_name)]
    if sum(sources) != 1:
        raise EegstreamError(
            "calibrate needs exactly one source: a recording of the protocol (REC.csv), "
            "--epochs DIR (a session joined from labelled epochs' training part) or "
            f"--stream-name NAME (live); got {sum(sources)}"
        )
    out = Path(args.out)
    check_out_path("--out", out)
    name = args.name or out.stem
    protocol = Protocol(blinks=args.blinks, clenches=args.clenches, seed=args.seed)
    # calibration starts from the model as shipped, whatever profile the settings name
    base: Settings = args.settings.model_copy(update={"profile": None})
    settings, bundle, engine = load_model(base)
    try:
        rec = _protocol_recording(args, protocol, settings)
        result = calibrate_recording(rec, bundle, engine, settings, name=name, progress=True)
    finally:
        engine.close()
    result.profile.save(out)
    sys.stdout.write(result.table() + f"\nwrote {out}\n")
    return 0


def _protocol_recording(
    args: argparse.Namespace, protocol: Protocol, settings: Settings
) -> Recording:
    """The protocol's recording from the one source given: live stream, epochs or a file."""
    if args.stream_name:
        from eegstream.calibrate_live import record_protocol

        rec = record_protocol(
            args.stream_name[0],
            protocol,
            _terminal_prompt,
            stype=args.stream_type or settings.stream_type,
            source_id=args.source_id,
            resolve_timeout=args.resolve_timeout or settings.resolve_timeout,
            marker_name=args.marker_name,
        )
        if args.save_recording is not None:
            from eegstream.io.emotiv import write_recording

            write_recording(rec, args.save_recording)
        return rec
    if args.epochs is not None:
        from eegstream.calibrate import assemble_calibration
        from eegstream.io.epochs import DEFAULT_LABEL_MAP, read_epochs

        epochs = read_epochs(args.epochs, DEFAULT_LABEL_MAP, fs=args.epoch_fs, part="train")
        return assemble_calibration(epochs, protocol, seed=args.seed)
    from eegstream.io.emotiv import read_recording

    return read_recording(args.file)


def _terminal_prompt(text: str) -> None:
    """Live prompts go to the terminal (stderr: stdout carries the report)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
