"""The container files: hadolint-clean, and the compose file names real Dockerfiles and CLI commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eegstream.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "docker" / "Dockerfile.gpu"]


def _hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install 'eegstream[dev]'")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_names_existing_dockerfiles_and_valid_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    parser = build_parser()
    services = compose["services"]
    assert {"replay", "serve", "serve-gpu"} <= set(services)
    for name, service in services.items():
        build = service["build"]
        context = (ROOT / "docker" / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file(), f"{name}: missing {build['dockerfile']}"
        parser.parse_args(service["command"])  # SystemExit(2) if the CLI rejects it


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_the_cli_entry_point(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert 'ENTRYPOINT ["eegstream"]' in text
    cmd = next(line for line in text.splitlines() if line.startswith("CMD "))
    args = yaml.safe_load(cmd[4:])
    build_parser().parse_args(args)
    for line in text.splitlines():  # every COPY source exists in the build context
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src} does not exist"
