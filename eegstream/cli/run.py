"""Run one command: parse, set up logging, work out the settings, call the handler, map errors.

The only place that turns a user error into an exit status: an :class:`EegstreamError` anywhere
below is one line on stderr and exit 2, Ctrl-C is 130, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from eegstream.cli.parser import build_parser, command_settings
from eegstream.errors import EegstreamError

__all__ = ["main"]

#: Commands that talk to liblsl (the others never load it).
_LSL_COMMANDS = frozenset({"replay", "serve", "demo", "bench", "calibrate"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line on stderr and exit 2."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command in _LSL_COMMANDS and not args.verbose:
        from eegstream.stream.lslconfig import quiet_liblsl

        quiet_liblsl()  # before liblsl starts: its INFO lines only with -v
    try:
        args.settings = command_settings(args)
        return int(args.handler(args))
    except EegstreamError as exc:
        print(f"eegstream {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130
