"""Every subcommand has working help, and user errors exit 2 with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eegstream.cli import build_parser, main

SUBCOMMANDS = [
    "info",
    "simulate",
    "train",
    "detect",
    "evaluate",
    "calibrate",
    "replay",
    "serve",
    "demo",
    "bench",
]


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: eegstream " + name in capsys.readouterr().out


def test_parser_knows_exactly_these_subcommands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)  # type: ignore[arg-type]


def test_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eegstream", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("eegstream ")


def test_serving_install_does_not_import_tensorflow() -> None:
    code = (
        "import sys, eegstream.cli, eegstream.settings, eegstream.events;"
        "import eegstream.engines;"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
