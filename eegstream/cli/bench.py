"""``eegstream bench``: the per-engine benchmark, or the end-to-end and soak runs.

Both print their JSON report on stdout and write it to ``--json``, whose path is checked before
the measuring (minutes), not after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from eegstream.errors import EegstreamError

if TYPE_CHECKING:
    from eegstream.bench_e2e import E2EConfig

__all__ = ["config_from_args", "run_bench"]


def run_bench(args: argparse.Namespace) -> int:
    """``eegstream bench``: print the JSON report on stdout and write it to ``--json``."""
    if args.e2e or args.soak is not None:
        return _run_e2e(args)
    from eegstream.bench import BenchConfig, benchmark
    from eegstream.bundle import ModelBundle

    cfg = BenchConfig(args.calls, quick=args.quick)
    out: Path | None = args.json
    if out is not None:
        _write(out, "", mode="a")  # fail on an unwritable path now, not after the measuring
    bundle = ModelBundle.load(args.model)
    text = json.dumps(benchmark(bundle, backend=args.backend or "auto", cfg=cfg), indent=2) + "\n"
    sys.stdout.write(text)
    if out is not None:
        _write(out, text)
    return 0


def _write(path: Path, text: str, mode: str = "w") -> None:
    """Write the report (``mode="a"`` with no text: only check that it can be written)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open(mode, encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise EegstreamError(
            f"bench --json {path}: cannot write the report ({exc}); choose a writable path"
        ) from exc


def config_from_args(args: argparse.Namespace) -> E2EConfig:
    """The end-to-end configuration from ``eegstream bench`` flags, checked."""
    from eegstream.bench_e2e import e2e_config

    return e2e_config(
        soak=args.soak,
        headsets=args.headsets,
        duration=args.duration,
        speed=args.speed,
        backend=args.backend,
        model=args.model,
    )


def _run_e2e(args: argparse.Namespace) -> int:
    """``bench --e2e`` / ``--soak``: multi-headset latency and soak (:mod:`eegstream.bench_e2e`)."""
    from eegstream.bench_e2e import e2e_benchmark, soak_benchmark

    cfg = config_from_args(args)
    out: Path | None = args.json
    if out is not None:
        _write(out, "", mode="a")  # fail on an unwritable path now, not after the measuring
    report = soak_benchmark(cfg) if cfg.soak_minutes is not None else e2e_benchmark(cfg)
    text = json.dumps(report, indent=2) + "\n"
    sys.stdout.write(text)
    if out is not None:
        _write(out, text)
    return 0
