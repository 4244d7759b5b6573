"""liblsl's INFO chatter is off by default, and a user's own liblsl configuration always wins.

Each case runs in a fresh interpreter (liblsl reads its configuration once per process) with no
``LSLAPICFG`` and a home and working directory of its own, then creates an outlet (which starts
liblsl) and counts liblsl's INFO lines on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from eegstream.stream.lslconfig import quiet_liblsl
if sys.argv[1] == "quiet":
    print(quiet_liblsl())
import pylsl
outlet = pylsl.StreamOutlet(pylsl.StreamInfo("q", "q", 1, 0, "float32", "q"))
"""


def _run(tmp: Path, mode: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "LSLAPICFG"}
    env["HOME"] = str(tmp)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip(), done.stderr.count("INFO|")


def test_liblsl_is_quiet_without_a_user_configuration(tmp_path: Path) -> None:
    _, chatter = _run(tmp_path, "plain")
    assert chatter > 0  # liblsl's default: INFO lines at start-up
    done, quiet = _run(tmp_path, "quiet")
    assert done == "True"
    assert quiet == 0


def test_a_user_configuration_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "lsl_api.cfg").write_text("[log]\nlevel = 0\n", encoding="utf-8")
    done, chatter = _run(tmp_path, "quiet")
    assert done == "False"
    assert chatter > 0  # the user's level 0 (INFO) applies
