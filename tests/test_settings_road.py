"""One road for settings: every command reads flags > EEGSTREAM_* > config file > defaults (#14).

Before, ``serve`` read a config file's ``threshold = 0.9`` and ``detect`` used 0.6: offline and
live disagreed on the same recording.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eegstream.cli import build_parser, command_settings, main
from eegstream.engines import ENGINE_NAMES
from eegstream.settings import BACKENDS, Settings


def _settings(*argv: str) -> Settings:
    return command_settings(build_parser().parse_args(list(argv)))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "eegstream.toml"
    path.write_text("threshold = 0.9\nmin_windows = 4\n", encoding="utf-8")
    return path


COMMANDS = (
    ("detect", "rec.csv"),
    ("evaluate", "rec.csv"),
    ("serve",),
    ("demo",),
    ("calibrate", "rec.csv", "--out", "p.profile"),
)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_detecting_command_reads_the_file_then_env_then_flags(
    command: tuple[str, ...], config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EEGSTREAM_THRESHOLD", raising=False)
    monkeypatch.delenv("EEGSTREAM_CONFIG", raising=False)
    assert _settings(*command).threshold == 0.6  # the default
    file_only = _settings(*command, "--config", str(config))
    assert (file_only.threshold, file_only.min_windows) == (0.9, 4)
    monkeypatch.setenv("EEGSTREAM_CONFIG", str(config))  # the file named by the environment
    assert _settings(*command).threshold == 0.9
    monkeypatch.setenv("EEGSTREAM_THRESHOLD", "0.8")  # the environment beats the file
    env = _settings(*command)
    assert (env.threshold, env.min_windows) == (0.8, 4)
    flag = _settings(*command, "--threshold", "0.7")  # a flag beats both
    assert (flag.threshold, flag.min_windows) == (0.7, 4)


def test_detect_results_follow_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same file that sets serve's threshold changes what detect reports."""
    from eegstream.io.emotiv import write_recording
    from eegstream.simulate import simulate_recording

    monkeypatch.delenv("EEGSTREAM_CONFIG", raising=False)
    monkeypatch.delenv("EEGSTREAM_THRESHOLD", raising=False)
    rec = tmp_path / "rec.csv"
    write_recording(simulate_recording(60.0, 9301), rec)
    strict = tmp_path / "strict.toml"
    strict.write_text("min_windows = 40\n", encoding="utf-8")  # 2.5 s of agreeing windows

    def events(*extra: str) -> list[dict[str, object]]:
        assert main(["detect", str(rec), *extra]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]

    default = events()
    assert len(default) >= 5
    assert len(events("--config", str(strict))) < len(default)
    monkeypatch.setenv("EEGSTREAM_CONFIG", str(strict))
    assert len(events()) < len(default)
    assert len(events("--min-windows", "3")) == len(default)  # the flag wins over the file


def test_a_bad_value_anywhere_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EEGSTREAM_CONFIG", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("threshold = 3\n", encoding="utf-8")
    assert main(["detect", str(tmp_path / "rec.csv"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "config file" in err[0]
    assert "threshold" in err[0]
    monkeypatch.setenv("EEGSTREAM_BACKEND", "cuda")
    assert main(["detect", str(tmp_path / "rec.csv")]) == 2
    assert "backend" in capsys.readouterr().err


def test_one_backend_list() -> None:
    assert BACKENDS[0] == "auto"
    assert ENGINE_NAMES == BACKENDS[1:]
    choices = {
        a.dest: a.choices
        for sub in build_parser()._subparsers._group_actions[0].choices.values()  # type: ignore[union-attr]
        for a in sub._actions
        if a.dest == "backend"
    }
    assert choices["backend"] == BACKENDS
