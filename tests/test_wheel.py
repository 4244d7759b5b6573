"""The package as users get it: sdist -> wheel, installed non-editable into a fresh venv.

An editable install reads files from the checkout, so it cannot show what a wheel leaves out
(the default model once lived beside the package and every non-editable install lacked it).
Here the wheel is built the way a release is (``python -m build``: the sdist, then the wheel
from the sdist, so MANIFEST.in counts too), installed with its declared dependencies (from the
pip cache or PyPI) into a new venv, and the commands run from a folder outside the checkout.
The declared pylsl floor is checked against the exact version in a second throwaway venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Building, creating the venv and installing ~30 dependencies take ~1 min on the 2-core machine.
pytestmark = pytest.mark.timeout(900)

#: What is not copied to the build folder: environments, caches, outputs, VCS data.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".hypothesis",
    "test-artifacts", "node_modules",
)  # fmt: skip


def _bin(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def _run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    """Run a command to completion; on failure, fail with its output (never a bare exit code)."""
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _clean_env() -> dict[str, str]:
    """The test environment (liblsl confined by conftest) without anything pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EEGSTREAM_")}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``python -m build`` makes from a copy of the source tree (sdist, then wheel)."""
    src = tmp_path_factory.mktemp("src") / "eegstream"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", out, src], src, _clean_env())
    wheels = list(out.glob("eegstream-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}; got {sorted(out.iterdir())}"
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel and its declared dependencies, nothing from the checkout."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=True, clear=True)
    _run([_bin(env_dir, "python"), "-m", "pip", "install", "-q", wheel], env_dir, _clean_env())
    yield env_dir
    shutil.rmtree(env_dir, ignore_errors=True)


def test_wheel_carries_the_default_model(installed: Path, tmp_path: Path) -> None:
    code = (
        "import json, eegstream, eegstream.settings as s\n"
        "d = s.default_model_dir()\n"
        "print(json.dumps({'pkg': eegstream.__file__, 'model': str(d),\n"
        "    'files': sorted(p.name for p in d.iterdir())}))\n"
    )
    got = json.loads(_run([_bin(installed, "python"), "-c", code], tmp_path, _clean_env()))
    assert Path(got["pkg"]).is_relative_to(installed), f"imported from {got['pkg']}"
    assert Path(got["model"]).is_relative_to(installed)
    assert {"model.onnx", "model.json"} <= set(got["files"])


def test_installed_commands_run_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    """simulate -> detect -> evaluate with no --model: the packaged bundle is found."""
    exe, env = _bin(installed, "eegstream"), _clean_env()
    out = _run([exe, "simulate", "sim.csv", "--duration", "90", "--seed", "3"], tmp_path, env)
    assert "wrote sim.csv" in out
    m = re.search(r"(\d+) blinks \(marker 22\), (\d+) jaw clenches", out)
    assert m is not None, out
    blinks, clenches = int(m[1]), int(m[2])
    assert blinks
    assert clenches

    _run([exe, "detect", "sim.csv", "-o", "events.jsonl"], tmp_path, env)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    labels = [e["label"] for e in events]
    assert labels.count("blink") >= blinks - 1, labels
    assert labels.count("jaw_clench") >= clenches - 1, labels

    table = _run([exe, "evaluate", "sim.csv"], tmp_path, env)
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    for label in ("blink", "jaw_clench"):
        f1 = float(rows[label][6])  # label TP FP FN prec recall F1 ...
        assert f1 >= 0.9, table


def _declared_minimum(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        m = re.fullmatch(rf"{package}\s*>=\s*([\w.]+)", dep.strip())
        if m:
            return m[1]
    raise AssertionError(f"pyproject.toml declares no '{package}>=' floor; got {deps}")


def test_declared_minimum_pylsl_works(installed: Path, tmp_path: Path) -> None:
    """The exact floor of pylsl, over the installed wheel's other dependencies: a loopback round trip.

    pylsl before 1.18 ships no liblsl; ``PYLSL_LIB`` points it at the one the venv's newer
    pylsl carries, as a user of 1.17 points it at their liblsl.
    """
    floor = _declared_minimum("pylsl")
    env_dir = tmp_path / "floor"
    venv.create(env_dir, with_pip=True)
    py, env = _bin(env_dir, "python"), _clean_env()
    site = _run(
        [_bin(installed, "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        tmp_path,
        env,
    ).strip()
    liblsl = sorted(Path(site, "pylsl", "lib").glob("liblsl*"))
    assert liblsl, f"the installed pylsl carries no liblsl in {site}/pylsl/lib"
    _run([py, "-m", "pip", "install", "-q", "--no-deps", f"pylsl=={floor}"], tmp_path, env)
    own = _run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path, env)
    # the wheel's venv after this venv's own packages: pylsl comes from here, the rest from there
    (Path(own.strip()) / "eegstream-deps.pth").write_text(site + "\n")
    env["PYLSL_LIB"] = str(liblsl[0])
    code = (
        "import time, pylsl, numpy as np\n"
        "from eegstream.stream.inlet import EEGInlet\n"
        "from eegstream.settings import ELECTRODES\n"
        f"assert pylsl.__version__ == {floor!r}, pylsl.__version__\n"
        "info = pylsl.StreamInfo('floor-check', 'EEG', 14, 128, 'float32', 'floor-src')\n"
        "chans = info.desc().append_child('channels')\n"
        "for e in ELECTRODES:\n"
        "    chans.append_child('channel').append_child_value('label', e)\n"
        "out = pylsl.StreamOutlet(info)\n"
        "inlet = EEGInlet('floor-check', 'EEG', resolve_timeout=20).connect()\n"
        "got, t0 = 0, time.monotonic()\n"
        "while got < 64 and time.monotonic() - t0 < 20:\n"
        "    out.push_chunk(np.full((8, 14), 4200.0).tolist())\n"
        "    got += inlet.pull(0.05).n\n"
        "inlet.disconnect()\n"
        "print('pulled', got)\n"
    )
    out = _run([py, "-c", code], tmp_path, env)
    assert int(out.split()[-1]) >= 64, out
