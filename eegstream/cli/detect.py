"""``eegstream detect`` and ``evaluate``: the live detector over recording files.

Flags become typed values here (marker and label maps parsed, output paths checked) before any
model loads, so a typo costs a second, not a run; the work is :mod:`eegstream.offline`'s.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from eegstream.errors import EegstreamError

__all__ = ["run_detect", "run_evaluate"]

log = logging.getLogger(__name__)


def run_detect(args: argparse.Namespace) -> int:
    """``eegstream detect FILE [--output PATH|-] [--format jsonl|bids|mne] [--marker-map M]``."""
    from eegstream.io.markers import marker_map_arg
    from eegstream.offline import (
        check_detect_output,
        detect_file,
        detections_text,
        write_detections,
    )

    out = str(args.output)
    marker_map = marker_map_arg(args.marker_map)
    check_detect_output(out, args.format)
    detection = detect_file(args.file, args.settings, marker_map=marker_map)
    if out == "-":
        sys.stdout.write(detections_text(detection, args.format))
        sys.stdout.flush()
    else:
        write_detections(detection, args.format, Path(out))
    log.info("%s: %d blinks, %d jaw clenches -> %s", args.file, *detection.counts().values(), out)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``eegstream evaluate FILE... | --epochs DIR [--plot PNG] [--json PATH]``: tables, stdout."""
    from eegstream.io.epochs import parse_label_map
    from eegstream.io.markers import marker_map_arg
    from eegstream.offline import EpochSelection, check_out_path, evaluate_files, write_outputs

    check_out_path("--json", args.json)
    check_out_path("--plot", args.plot)
    if args.plot is not None and args.epochs is None:
        raise EegstreamError("--plot needs --epochs DIR (it draws the per-gesture evaluation)")
    if not args.files and args.epochs is None:
        raise EegstreamError("nothing to evaluate: pass recording files and/or --epochs DIR")
    marker_map = marker_map_arg(args.marker_map)  # parsed once, before any work
    epochs = None
    if args.epochs is not None:
        epochs = EpochSelection(
            Path(args.epochs),
            label_map=parse_label_map(args.label_map) if args.label_map else None,
            fs=args.epoch_fs,
            part=args.part,
            as_labelled=args.as_labelled,
            plot=args.plot,
        )
    result = evaluate_files(args.files, args.settings, marker_map=marker_map, epochs=epochs)
    if args.json is not None:
        text = json.dumps(result.doc, indent=2) + "\n"
        write_outputs([("--json", Path(args.json), text)])
    print("\n\n".join(result.tables))  # noqa: T201 -- the command's result goes to stdout
    return 0
