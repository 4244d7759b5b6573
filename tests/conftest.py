"""Shared test setup: liblsl confined to this machine, unique LSL names, deadline loops.

liblsl reads its configuration once per process, the first time it needs it, from the file named
by ``LSLAPICFG``. Setting it here, before any test module imports pylsl, keeps every test (and
every subprocess a test starts with the inherited environment) on loopback: IPv4 only, resolve
scope ``machine``, unicast to 127.0.0.1, and a session id of its own so that streams of other
programs (or of another pytest run on the same machine) are invisible. Subprocesses must be given
``os.environ`` (or a copy of it), not a bare environment, to stay in the same session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest

# None of these loads liblsl (which must see LSLAPICFG first, below)
from eegstream.bundle import ModelBundle
from eegstream.engines import load_engine
from eegstream.engines.base import Engine
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.settings import Settings

if TYPE_CHECKING:
    from eegstream.io.recording import Recording
    from eegstream.preprocess import FeaturePipeline

#: Data shared beside the checkout (CI has it; a fresh clone does not: tests skip with a reason).
SHARED = Path(__file__).resolve().parents[2] / "shared"
#: Real labelled EPOC+ epochs (MusEEG trainbatch1), read in place, never copied.
EPOCHS_DIR = SHARED / "data" / "museeg-epocplus-trainbatch1"
needs_epochs = pytest.mark.skipif(
    not EPOCHS_DIR.is_dir(),
    reason=f"the real EPOC+ epochs are not beside the checkout ({EPOCHS_DIR}); CI provides shared/",
)

LSL_SESSION_ID = f"eegstream-tests-{uuid.uuid4().hex[:12]}"
_LSL_DIR = Path(tempfile.mkdtemp(prefix="eegstream-lsl-"))
LSL_CONFIG = _LSL_DIR / "lsl_api.cfg"
LSL_CONFIG.write_text(
    "[ports]\n"
    "IPv6 = disable\n"
    # Each outlet takes a port from this range and unicast resolves (KnownPeers) probe only
    # the range: the default 32 runs out when other LSL programs hold outlets on the machine,
    # and an outlet outside the range cannot be found by name.
    "PortRange = 256\n"
    "[multicast]\n"
    "ResolveScope = machine\n"
    "[lab]\n"
    "KnownPeers = {127.0.0.1}\n"
    f"SessionID = {LSL_SESSION_ID}\n"
    "[tuning]\n"
    # liblsl 1.18 lets a resolve that finds nothing overrun its timeout by UnicastMaxRTT
    # (default 5 s); on loopback answers take microseconds, so 0.5 s keeps such tests short.
    "UnicastMaxRTT = 0.5\n"
    "[log]\n"
    # -1 = warnings and errors only (liblsl logs INFO lines to stderr by default)
    "level = -1\n"
)
os.environ["LSLAPICFG"] = str(LSL_CONFIG)


def stop_process(
    proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 10
) -> None:
    """Kill ``proc`` if it still runs, wait for it and close its pipes.

    Every subprocess a test starts goes through this in a ``finally``: a process never waited
    for, or its pipes left open, becomes a ResourceWarning (an error here) in a later test.
    """
    if proc.poll() is None:
        proc.kill()
    try:
        proc.communicate(timeout=timeout)
    except (subprocess.TimeoutExpired, ValueError):  # ValueError: pipes already read and closed
        proc.wait(timeout)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.02
) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass; return its last truth.

    Tests assert on the result, so a slow (loaded) machine only makes a test slower, never flaky,
    and nothing waits a fixed time.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


@pytest.fixture
def lsl_name(request: pytest.FixtureRequest) -> str:
    """A stream name no other test (or program) uses."""
    test = request.node.name.replace("[", "-").replace("]", "")[:40]
    return f"eegstream-test-{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def source_id() -> str:
    """A random LSL source id, so recovery by source id cannot pick up another test's stream."""
    return f"eegstream-test-src-{uuid.uuid4().hex}"


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def lsl_config() -> Path:
    """The liblsl configuration file every test process uses."""
    return LSL_CONFIG


#: Frequencies (Hz) of the synthetic recording's channels: each electrode is recognisable.
SYNTH_FREQS = 3.0 + 1.5 * np.arange(14)
SYNTH_START = 1_700_000_000.0  #: unix-like first timestamp of synthetic recordings


def synthetic_recording(
    duration: float = 10.0,
    fs: float = 128.0,
    *,
    markers: Sequence[tuple[float, str]] = (),
    start: float = SYNTH_START,
) -> Recording:
    """Sinusoids on a 4,200 uV offset (like Emotiv raw data), one frequency per electrode.

    ``markers`` are ``(seconds, label)``; values follow EmotivPRO's (22 blink, 23 jaw clench).
    Known, smooth values let a test check what arrived (and the resampler's phase).
    """
    from eegstream.io.recording import Marker, Recording

    n = int(round(duration * fs))
    t = np.arange(n) / fs
    data = 4200.0 + 20.0 * np.sin(2 * np.pi * SYNTH_FREQS[None, :] * t[:, None] + np.arange(14))
    values = {"blink": 22, "jaw_clench": 23}
    marks = [
        Marker(int(round(s * fs)), start + int(round(s * fs)) / fs, values.get(lab, 0), lab)
        for s, lab in markers
    ]
    return Recording(data=data, timestamps=start + t, fs=fs, markers=marks, source="synthetic")


@pytest.fixture
def make_recording() -> Callable[..., Recording]:
    """Factory for :func:`synthetic_recording`."""
    return synthetic_recording


@pytest.fixture
def wait_for() -> Callable[..., bool]:
    """:func:`wait_until` as a fixture (``wait_for(predicate, timeout)``)."""
    return wait_until


class Collected:
    """Everything an :class:`~eegstream.stream.inlet.EEGInlet` delivered, concatenated."""

    def __init__(self) -> None:
        self.data: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.raw: list[np.ndarray] = []
        self.gaps: list[object] = []
        self.nonfinite = 0
        self.n = 0

    def add(self, chunk: object) -> None:
        """Copy one chunk (its arrays are views into the inlet's buffers)."""
        n = chunk.n  # type: ignore[attr-defined]
        if n:
            self.data.append(chunk.data.copy())  # type: ignore[attr-defined]
            self.times.append(chunk.timestamps.copy())  # type: ignore[attr-defined]
            self.raw.append(chunk.raw.copy())  # type: ignore[attr-defined]
            self.n += n
        self.gaps += list(chunk.gaps)  # type: ignore[attr-defined]
        self.nonfinite += chunk.nonfinite  # type: ignore[attr-defined]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(data, timestamps, raw)`` of everything collected."""
        if not self.data:
            return np.empty((0, 14)), np.empty(0), np.empty((0, 0))
        return np.concatenate(self.data), np.concatenate(self.times), np.concatenate(self.raw)


def collect_from(
    inlet: object, n: int, timeout: float = 30.0, into: Collected | None = None
) -> Collected:
    """Pull from ``inlet`` until ``n`` samples arrived or ``timeout`` s passed."""
    got = into or Collected()
    deadline = time.monotonic() + timeout
    while got.n < n and time.monotonic() < deadline:
        got.add(inlet.pull(0.05))  # type: ignore[attr-defined]
    return got


@pytest.fixture
def collect() -> Callable[..., Collected]:
    """:func:`collect_from` as a fixture: ``collect(inlet, n, timeout)``."""
    return collect_from


class CountingEngine:
    """The real ONNX Runtime engine, counting its calls and windows (not a mock)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.name
        self.max_batch = engine.max_batch
        self.calls = 0
        self.windows = 0

    def infer(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        self.windows += int(features.shape[0])
        return self.engine.infer(features)

    def warmup(self) -> None:
        self.engine.warmup()

    def close(self) -> None:
        self.engine.close()


class Messages:
    """A thread-safe sink that keeps every message (what pipelines hand to the service)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Message] = []

    def __call__(self, message: Message) -> None:
        with self._lock:
            self.items.append(message)

    def of(self, stream: str | None = None) -> list[Message]:
        """Every message so far, or those of one stream."""
        with self._lock:
            return [m for m in self.items if stream is None or m.stream_id == stream]

    def statuses(
        self, kind: str | None = None, *, stream: str | None = None
    ) -> list[StatusMessage]:
        """Status messages, of one kind and/or one stream."""
        return [
            m
            for m in self.of(stream)
            if isinstance(m, StatusMessage) and (kind is None or m.status == kind)
        ]

    def events(self, phase: str = "final", *, stream: str | None = None) -> list[ArtifactEvent]:
        """Artifact events of one phase (default: final), of one stream or all."""
        return [m for m in self.of(stream) if isinstance(m, ArtifactEvent) and m.phase == phase]


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    """The default model bundle (tests that need it skip when it is absent)."""
    return ModelBundle.load(Settings().model_dir)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def engine(bundle: ModelBundle) -> Iterator[Engine]:
    """The real ONNX Runtime engine of the default bundle, warmed up."""
    eng = load_engine("onnxruntime", bundle)
    eng.warmup()
    yield eng
    eng.close()


def replay_through_pipeline(
    rec: Recording,
    engine: Engine,
    features: FeaturePipeline,
    settings: Settings,
    name: str,
    source_id: str,
    *,
    timeout: float = 60.0,
) -> tuple[list[ArtifactEvent], dict[str, object], float]:
    """Stream ``rec`` at 16x through a real LSL outlet into one pipeline until every sample
    arrived: its final events, the stream's status and the replay's start time (LSL clock)."""
    from eegstream.live.scheduler import MultiStreamPipeline, StreamSpec
    from eegstream.stream.replay import Player

    sink = Messages()
    # 16x real time: 8-sample chunks as from a headset
    player = Player(rec, name=name, source_id=source_id, speed=16, wait_for_consumer=30)
    spec = StreamSpec(name=name, source_id=source_id)
    pipeline = MultiStreamPipeline(engine, features, settings, sink, streams=[spec])
    with player, pipeline:
        assert wait_until(
            lambda: pipeline.status()["streams"][name]["samples"] >= rec.n_samples,
            timeout=timeout,
        )
        status = pipeline.status()["streams"][name]
    assert player.start_time is not None
    return sink.events(), status, player.start_time
