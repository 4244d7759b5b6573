"""``eegstream train``: recordings, simulated subjects and/or labelled epochs -> a model bundle.

Every flag is checked and parsed before TensorFlow loads (seconds, not minutes, for a typo);
the training is :func:`eegstream.train.train_from_sources`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eegstream.errors import EegstreamError

__all__ = ["run_train"]


def run_train(args: argparse.Namespace) -> int:
    """``eegstream train``: train, write the bundle to ``--out``, print the held-out reports."""
    if args.max_epochs < 1:
        raise EegstreamError(f"--max-epochs must be at least 1; got {args.max_epochs}")
    if args.simulate < 0:
        raise EegstreamError(f"--simulate must be 0 or a number of subjects; got {args.simulate}")
    if not args.recordings and not args.simulate and args.epochs is None:
        raise EegstreamError(
            "nothing to train on: pass marker-labelled recordings, --epochs DIR and/or "
            "--simulate N (e.g. eegstream train --simulate 40 --out models/mine)"
        )
    from eegstream.io.markers import marker_map_arg
    from eegstream.train import TrainingSources, TrainOptions, format_report, train_from_sources

    label_map = None
    if args.epochs is not None and args.label_map:
        from eegstream.io.epochs import parse_label_map

        label_map = parse_label_map(args.label_map)
    sources = TrainingSources(
        files=tuple(Path(p) for p in args.recordings),
        marker_map=marker_map_arg(args.marker_map),  # once, before TensorFlow
        simulate=args.simulate,
        seed=args.seed,
        sim_duration=args.sim_duration,
        epochs=args.epochs,
        label_map=label_map,
        epoch_fs=args.epoch_fs,
    )
    verbose = 1 if sys.stdout.isatty() else 2
    bundle, metrics = train_from_sources(
        sources,
        Path(args.out),
        options=TrainOptions(epochs=args.max_epochs, seed=args.seed, verbose=verbose),
    )
    report = format_report("held-out windows (random 4-s blocks)", metrics["held_out_windows"])
    report += format_report("held-out subjects (never seen)", metrics["held_out_subjects"])
    report += (
        f"bundle {bundle.dir} ({bundle.sha256[:12]}), {metrics['epochs_run']} epochs, "
        f"{metrics['train_seconds']} s\n"
    )
    print(report, end="")  # noqa: T201 - the report is the command's output
    return 0
