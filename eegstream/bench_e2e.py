"""``eegstream bench --e2e`` and ``--soak``: many simulated headsets through the real service.

How it is measured. Three processes, so that what is measured is the service alone:

* **players**: one ``Player`` thread per headset, each a real LSL outlet on loopback pushing
  8-sample chunks of a simulated recording at 128 Hz (real time for ``--e2e``). Recordings are
  simulated subjects sliced after their 30 s artifact-free baseline and staggered, so headsets
  never blink in step, and looped so they never run out.
* **service**: the real app (``create_app`` + :class:`~eegstream.live.scheduler.MultiStreamPipeline`
  + uvicorn on a free port), the very code ``eegstream serve`` runs.
* **this process**: one websocket client (``/ws/events?since=0``), ``/status`` snapshots, and
  ``/proc`` readings of the service's CPU time and resident memory.

Processing latency is ``client receipt - pulled_unix`` of each artifact message (the moment the
pipeline pulled the last sample of the deciding window; all processes share the machine's
clock). Detection latency is ``client receipt - true artifact onset``, the onset taken from the
simulated recording's markers in the player's LSL clock, over markers matched by an event of
their stream (``eegstream.evaluate.match_events``). A run *keeps up in real time* when the
service classified >= 97 % of the windows the headsets produced (``FS / hop`` per headset per
second), dropped none, lost no stream, and its newest sample was < 1 s old at the end.

liblsl is confined to this machine for the benchmark (a temporary configuration with
``ResolveScope = machine`` and a session id of its own), so the simulated headsets never appear
on the lab network and other programs' streams never disturb the figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eegstream.errors import EegstreamError
from eegstream.settings import FS, Settings

log = logging.getLogger(__name__)

__all__ = [
    "GOAL_DETECTION_P50_S",
    "GOAL_HEADSETS",
    "GOAL_PROCESSING_P99_MS",
    "METHOD",
    "E2EConfig",
    "e2e_benchmark",
    "e2e_config",
    "parse_headsets",
    "soak_benchmark",
]

#: The goals on the 2-core CI machine (reported next to each run): issue #8's latencies, at
#: issue #14's headset count.
GOAL_PROCESSING_P99_MS: float = 20.0
GOAL_DETECTION_P50_S: float = 0.4
GOAL_HEADSETS: int = 128
#: Share of the produced windows a run must classify to count as keeping up.
KEEP_UP_SHARE: float = 0.97
#: Age (s) of the newest sample at the end of a run above which the service is behind.
MAX_LAG_S: float = 1.0

#: How the figures are obtained, for the JSON report (the module docstring has the details).
METHOD = (
    "3 processes: players (one real LSL outlet per simulated headset on loopback, 8-sample "
    "chunks, looped simulated subjects), the service (create_app + MultiStreamPipeline + "
    "uvicorn, as `eegstream serve`), and one websocket client. processing = client receipt - "
    "pulled_unix (pull of the deciding window's last sample); detection = client receipt of the "
    "onset message - true artifact onset (simulation markers); cpu_percent and rss_mb are the "
    "service process's own (/proc, 100 = one core); realtime = >= 97% of the produced windows "
    "classified, none dropped, no stream lost, newest sample < 1 s old, the client never "
    "dropped, no overloaded status, and (real time) >= 97% of the true artifacts detected."
)

_LEAD_IN_S = 28.0  #: simulated baseline skipped (artifacts start at 30 s)
_STAGGER_S = 5.3  #: start offset between headsets sharing a simulated subject
_SUBJECTS = 4  #: distinct simulated subjects, shared round-robin by the headsets
_SETTLE_S = 2.0  #: seconds after a measurement for the events of its last artifacts to arrive
_CHILD_TIMEOUT_S = 300.0  #: simulating and resolving 64 headsets takes a while
_CONNECT_TIMEOUT_S = 120.0
_SOAK_SAMPLE_S = 5.0  #: seconds between soak samples (RSS, status)


@dataclass(frozen=True)
class E2EConfig:
    """What to run (``eegstream bench --e2e/--soak`` flags)."""

    headsets: tuple[int, ...] = (1, 8, 32, 64)
    duration: float = 60.0  #: measured seconds per headset count (e2e)
    warmup: float = 5.0  #: e2e: seconds after every stream delivers, before measuring
    soak_minutes: float | None = None  #: soak instead of e2e
    speed: float | None = None  #: replay speed (default: 1 for e2e, 16 for the soak)
    backend: str = "auto"
    model: Path | None = None
    poll_interval: float = 0.005  #: the service's tick (MultiStreamPipeline)
    blink_rate: float = 20.0  #: per minute, per headset (dense: more latency samples)
    clench_rate: float = 10.0
    seed: int = 8000  #: first simulated subject (subjects the default model never saw)
    progress: bool = True  #: progress lines and the soak's bar on stderr

    @property
    def replay_speed(self) -> float:
        """The speed the players run at."""
        if self.speed is not None:
            return self.speed
        return 16.0 if self.soak_minutes is not None else 1.0


def parse_headsets(text: str) -> tuple[int, ...]:
    """``"1,8,32,64"`` -> ``(1, 8, 32, 64)`` (sorted, unique), or a clear error."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise EegstreamError(
            f"bench --headsets: expected comma-separated numbers of headsets >= 1 such as "
            f"1,8,32,64; got {text!r}"
        )
    return tuple(values)


# --- /proc ----------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (``/proc/<pid>/stat``; psutil is not needed)."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan  # pragma: no cover - every Linux process has VmRSS


def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --- child processes --------------------------------------------------------------------------------


def _lsl_config(folder: Path) -> Path:
    """A liblsl configuration confining the benchmark's streams to this machine."""
    path = folder / "lsl_api.cfg"
    path.write_text(
        # PortRange: liblsl's unicast resolve (KnownPeers) only finds outlets on ports
        # BasePort..BasePort+PortRange, 32 by default: too few for 64 headsets on one machine
        "[ports]\nIPv6 = disable\nPortRange = 512\n"
        "[multicast]\nResolveScope = machine\n"
        "[lab]\nKnownPeers = {127.0.0.1}\n"
        f"SessionID = eegstream-bench-{uuid.uuid4().hex[:12]}\n"
        "[tuning]\nUnicastMaxRTT = 0.5\n"
        "[log]\nlevel = -3\n",  # quiet: the players ending would log an error
        encoding="utf-8",
    )
    return path


def _players_main(conn: multiprocessing.connection.Connection, spec: dict[str, Any]) -> None:
    """Child: publish ``spec["names"]`` as simulated headsets until told to stop."""
    os.environ["LSLAPICFG"] = spec["lsl_config"]  # before liblsl loads
    try:
        import pylsl

        from eegstream.io.recording import Marker, Recording
        from eegstream.simulate import simulate_recording
        from eegstream.stream.replay import Player

        names: list[str] = spec["names"]
        span = float(spec["span_s"])
        subjects = [
            simulate_recording(
                _LEAD_IN_S + span,
                int(spec["seed"]) + k,
                blink_rate=spec["blink_rate"],
                clench_rate=spec["clench_rate"],
            )
            for k in range(min(_SUBJECTS, len(names)))
        ]
        players: list[Player] = []
        headsets: list[dict[str, Any]] = []
        for i, name in enumerate(names):
            rec = subjects[i % len(subjects)]
            a = int(round((_LEAD_IN_S + (i // len(subjects)) * _STAGGER_S % (span / 2)) * rec.fs))
            t0 = float(rec.timestamps[a])
            part = Recording(
                data=rec.data[a:],
                timestamps=rec.timestamps[a:],
                fs=rec.fs,
                markers=[
                    Marker(m.sample - a, m.time, m.value, m.label, m.duration)
                    for m in rec.markers
                    if m.sample >= a
                ],
                source=f"simulated subject {int(spec['seed']) + i % len(subjects)}",
            )
            players.append(
                Player(
                    part,
                    name=name,
                    source_id=name,
                    speed=float(spec["speed"]),
                    loop=True,
                    markers=False,
                )
            )
            headsets.append(
                {
                    "name": name,
                    "period": float(part.timestamps[-1]) - t0 + 1.0 / part.fs,
                    "markers": [
                        [float(rec.timestamps[m.sample + a]) - t0, m.label] for m in part.markers
                    ],
                }
            )
        for p in players:
            p.start()
        deadline = time.monotonic() + 30.0
        while any(p.start_time is None for p in players) and time.monotonic() < deadline:
            time.sleep(0.01)
        for h, p in zip(headsets, players, strict=True):
            h["start_lsl"] = p.start_time
        unix_minus_lsl = time.time() - pylsl.local_clock()
        conn.send(
            {"ok": True, "pid": os.getpid(), "unix_minus_lsl": unix_minus_lsl, "headsets": headsets}
        )
        conn.recv()  # stop
        for p in players:
            p.stop()
        conn.send({"ok": True, "pushed": sum(p.samples_pushed for p in players)})
    except Exception as exc:  # reported to the parent, which raises it as the bench's error
        conn.send({"ok": False, "error": f"players: {type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _service_main(conn: multiprocessing.connection.Connection, spec: dict[str, Any]) -> None:
    """Child: the real service (app + multi-stream pipeline + uvicorn) until told to stop."""
    os.environ["LSLAPICFG"] = spec["lsl_config"]  # before liblsl loads
    try:
        from eegstream.service.api import create_app, get_service
        from eegstream.service.detection import preload
        from eegstream.service.run import BackgroundServer

        overrides: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "stream_name": spec["names"],
            "backend": spec["backend"],
            "resolve_timeout": 60.0,
        }
        if spec["model"] is not None:
            overrides["model_dir"] = Path(spec["model"])
        settings = Settings(**overrides)
        factory = preload(settings, poll_interval=float(spec["poll_interval"]))
        server = BackgroundServer(create_app(settings, factory), settings).start()
        try:
            source = get_service(server.app).source
            engine = source.model.backend if source is not None else spec["backend"]
            conn.send({"ok": True, "pid": os.getpid(), "port": server.port, "engine": engine})
            conn.recv()  # stop
        finally:
            server.stop()
        conn.send({"ok": True})
    except Exception as exc:  # reported to the parent, which raises it as the bench's error
        conn.send({"ok": False, "error": f"service: {type(exc).__name__}: {exc}"})
    finally:
        conn.close()


class _Child:
    """A spawned child process answering on a pipe (``{"ok": ..., ...}`` dictionaries)."""

    def __init__(
        self,
        target: Callable[[multiprocessing.connection.Connection, dict[str, Any]], None],
        spec: dict[str, Any],
    ) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, spec), daemon=True)
        self.proc.start()
        child.close()
        self._answer: dict[str, Any] | None = None
        self._stopped = False

    def reply(self, timeout: float) -> dict[str, Any]:
        """The child's next answer; ``EegstreamError`` with its error if it failed."""
        if not self.conn.poll(timeout):
            raise EegstreamError(f"bench: a child process did not answer within {timeout:g} s")
        try:
            msg: dict[str, Any] = self.conn.recv()
        except EOFError:
            raise EegstreamError(
                f"bench: a child process died (exit code {self.proc.exitcode}); see the log above"
            ) from None
        if not msg.get("ok"):
            raise EegstreamError(f"bench --e2e: {msg.get('error')}")
        return msg

    def stop(self) -> dict[str, Any] | None:
        """Ask the child to stop; return its last answer (None if it was gone already).

        Safe to call twice (the second call returns the first's answer).
        """
        if self._stopped:
            return self._answer
        self._stopped = True
        answer = None
        try:
            if self.proc.is_alive():
                self.conn.send("stop")
                answer = self.reply(60.0)
        except BrokenPipeError:  # it ended already (after reporting its error)
            pass
        except (EegstreamError, OSError) as exc:
            log.warning("bench: stopping a child process: %s", exc)
        finally:
            self.proc.join(10.0)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(10.0)
            self.conn.close()
            self.proc.close()
        self._answer = answer
        return answer


# --- the client side ----------------------------------------------------------------------------------


@dataclass
class _Received:
    """Messages received by the websocket client, with their receipt time (unix)."""

    artifacts: list[tuple[float, dict[str, Any]]] = dataclasses.field(default_factory=list)
    statuses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    count: int = 0  #: every numbered message (artifacts and statuses)
    closed: str | None = None  #: why the service closed the connection before the end, if it did


async def _receive(url: str, got: _Received) -> None:
    """Receive until cancelled (or the server closes)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    try:
        async with connect(url, proxy=None, max_size=2**22) as ws:
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "artifact":
                    got.artifacts.append((now, msg))
                elif kind == "status":
                    got.statuses.append(msg)
                else:
                    continue
                got.count += 1
    except ConnectionClosed as exc:  # the service dropped us (too slow?): the run must say so
        rcvd = exc.rcvd
        got.closed = f"{rcvd.code} {rcvd.reason}" if rcvd is not None else "connection lost"


async def _status(client: Any, base: str) -> dict[str, Any]:
    response = await client.get(base + "/status", timeout=30.0)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def _metric(client: Any, base: str, name: str) -> float:
    """One sample of a Prometheus text metric (``name`` with its labels), 0 when absent."""
    response = await client.get(base + "/metrics", timeout=30.0)
    for line in response.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def _wait_streaming(client: Any, base: str, n: int) -> dict[str, Any]:
    """Until every stream has delivered samples (``EegstreamError`` after a timeout)."""
    deadline = time.monotonic() + _CONNECT_TIMEOUT_S
    while True:
        status = await _status(client, base)
        streams = status["pipeline"].get("streams", {})
        if len(streams) == n and all(s["samples"] > 0 for s in streams.values()):
            return status
        if time.monotonic() > deadline:
            raise EegstreamError(
                f"bench: only {sum(s['samples'] > 0 for s in streams.values())} of {n} streams "
                f"delivered data within {_CONNECT_TIMEOUT_S:g} s"
            )
        await asyncio.sleep(0.25)


async def _wait_caught_up(client: Any, base: str, speed: float) -> None:
    """Until the service has worked off what piled up while the streams were being connected.

    Gives up quietly after ``_CONNECT_TIMEOUT_S``: a service that cannot catch up is measured
    anyway and fails the keep-up test.
    """
    deadline = time.monotonic() + _CONNECT_TIMEOUT_S
    while time.monotonic() < deadline:
        streams = (await _status(client, base))["pipeline"]["streams"].values()
        lags = [s["lag_s"] for s in streams if s["lag_s"] is not None]
        backlog = max((s["backlog_samples"] for s in streams), default=0)
        if backlog <= 32 and (speed != 1.0 or (lags and max(lags) < 0.5)):
            return
        await asyncio.sleep(0.5)


def _snapshot(status: dict[str, Any], service_pid: int, players_pid: int) -> dict[str, Any]:
    streams = status["pipeline"]["streams"].values()
    lags = [s["lag_s"] for s in streams if s["lag_s"] is not None]
    return {
        "unix": time.time(),
        "cpu_service": _cpu_seconds(service_pid),
        "cpu_players": _cpu_seconds(players_pid),
        "cpu_client": time.process_time(),
        "rss_mb": _rss_mb(service_pid),
        "windows": sum(s["windows"] for s in streams),
        "dropped": sum(s["dropped_windows"] for s in streams),
        "lost": sum(s["lost"] for s in streams),
        "gaps": sum(s["gaps"] for s in streams),
        "max_lag_s": max(lags) if lags else None,
        "backlog": max((s["backlog_samples"] for s in streams), default=0),
        "tick_p99_ms": status["pipeline"]["scheduler"]["tick_p99_ms"],  # the last 2000 ticks
        "engine_calls": status["pipeline"]["scheduler"]["engine_calls"],
        "classified": status["pipeline"]["scheduler"]["windows"],
        "overloads": status["pipeline"]["scheduler"].get("overloads", 0),
        "dropped_clients": status["dropped_clients"],
    }


# --- figures ------------------------------------------------------------------------------------------


def _q(values: list[float], q: float, scale: float = 1.0, digits: int = 4) -> float | None:
    if not values:
        return None
    return float(f"{float(np.percentile(values, q)) * scale:.{digits}g}")


def _processing(got: _Received, a: float, b: float) -> list[float]:
    """Pull -> receipt (s) of the artifact messages whose deciding samples were pulled in [a, b]."""
    return [
        t - m["pulled_unix"]
        for t, m in got.artifacts
        if "pulled_unix" in m and a <= m["pulled_unix"] <= b
    ]


def _detection(
    got: _Received, players: dict[str, Any], a: float, b: float
) -> tuple[list[float], int]:
    """Detection latencies (s) of the markers with a true onset in ``[a, b]`` (unix), and their count."""
    from eegstream.evaluate import match_events
    from eegstream.events import ArtifactEvent
    from eegstream.io.recording import Marker

    offset = float(players["unix_minus_lsl"])
    lo, hi = a - offset, b - offset  # the window in the LSL clock
    finals: dict[str, list[ArtifactEvent]] = {}
    onset_seen: dict[str, float] = {}
    for t, m in got.artifacts:
        if m["phase"] == "onset":
            onset_seen[m["id"]] = t - offset
        else:
            finals.setdefault(m["stream_id"], []).append(ArtifactEvent.model_validate(m))
    latencies: list[float] = []
    total = 0
    for h in players["headsets"]:
        start, period = float(h["start_lsl"]), float(h["period"])
        first = max(0, int((lo - start) // period))
        last = int((hi - start) // period) + 1
        markers = [
            Marker(0, start + k * period + rel, 0, label)
            for k in range(first, last + 1)
            for rel, label in h["markers"]
            if lo <= start + k * period + rel <= hi
        ]
        total += len(markers)
        if not markers:
            continue
        events = [e for e in finals.get(h["name"], []) if lo - 1.0 <= e.onset_lsl <= hi + 1.0]
        matches, _ = match_events(events, markers, detected=onset_seen)
        latencies += [m.latency for m in matches if m.latency is not None]
    return latencies, total


# --- one e2e run ----------------------------------------------------------------------------------------


def _names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"eegstream-bench-{tag}-{i:03d}" for i in range(n)]


def _start(
    cfg: E2EConfig, n: int, lsl_config: Path, span_s: float
) -> tuple[_Child, dict[str, Any], _Child, dict[str, Any]]:
    """Players first (the service resolves their streams), then the service."""
    names = _names(n)
    common = {"lsl_config": str(lsl_config), "names": names}
    players = _Child(
        _players_main,
        {
            **common,
            "span_s": span_s,
            "seed": cfg.seed,
            "speed": cfg.replay_speed,
            "blink_rate": cfg.blink_rate,
            "clench_rate": cfg.clench_rate,
        },
    )
    try:
        p_info = players.reply(_CHILD_TIMEOUT_S)
        service = _Child(
            _service_main,
            {
                **common,
                "backend": cfg.backend,
                "model": None if cfg.model is None else str(cfg.model),
                "poll_interval": cfg.poll_interval,
            },
        )
        try:
            s_info = service.reply(_CHILD_TIMEOUT_S)
        except BaseException:
            service.stop()
            raise
    except BaseException:
        players.stop()
        raise
    return players, p_info, service, s_info


def _e2e_run(cfg: E2EConfig, n: int, lsl_config: Path) -> dict[str, Any]:
    """Measure ``n`` headsets for ``cfg.duration`` seconds."""
    span = max(40.0, min(240.0, cfg.duration + 40.0))
    players, p_info, service, s_info = _start(cfg, n, lsl_config, span)
    try:
        got, snaps = asyncio.run(_e2e_client(cfg, n, s_info, p_info))
    finally:
        service.stop()
        players.stop()
    a, b = snaps[0], snaps[1]
    dt = b["unix"] - a["unix"]
    speed = cfg.replay_speed
    hop = Settings().hop  # type: ignore[call-arg]
    expected = n * FS / hop * speed
    windows_per_s = (b["windows"] - a["windows"]) / dt
    processing = _processing(got, a["unix"], b["unix"])
    detection, n_markers = (
        _detection(got, p_info, a["unix"], b["unix"] - 1.0) if speed == 1.0 else ([], 0)
    )
    problems = []
    if windows_per_s < KEEP_UP_SHARE * expected:
        problems.append(f"classified {windows_per_s:.0f} windows/s of {expected:.0f} produced")
    if b["dropped"] > a["dropped"]:
        problems.append(f"{b['dropped'] - a['dropped']} windows dropped")
    if b["lost"] > a["lost"]:
        problems.append(f"{b['lost'] - a['lost']} streams lost")
    if speed == 1.0 and b["max_lag_s"] is not None and b["max_lag_s"] > MAX_LAG_S:
        problems.append(f"newest sample {b['max_lag_s']:.2f} s old at the end")
    if got.closed is not None or b["dropped_clients"] > a["dropped_clients"]:
        problems.append(f"the service dropped the websocket client ({got.closed or 'counted'})")
    if b["overloads"] > a["overloads"]:
        problems.append(
            f"the service reported itself overloaded {b['overloads'] - a['overloads']} times"
        )
    if n_markers and len(detection) < KEEP_UP_SHARE * n_markers:
        problems.append(f"detected {len(detection)} of {n_markers} true artifacts")
    p99 = _q(processing, 99, 1e3)
    p50_det = _q(detection, 50)
    run: dict[str, Any] = {
        "headsets": n,
        "realtime": not problems,
        "processing_p50_ms": _q(processing, 50, 1e3),
        "processing_p99_ms": p99,
        "processing_max_ms": _q(processing, 100, 1e3),
        "processing_messages": len(processing),
        "detection_p50_s": p50_det,
        "detection_p99_s": _q(detection, 99),
        "detected_markers": len(detection),
        "markers": n_markers,
        "windows_per_s": round(windows_per_s, 1),
        "windows_per_s_expected": round(expected, 1),
        "cpu_percent": round(100.0 * (b["cpu_service"] - a["cpu_service"]) / dt, 1),
        "rss_mb": round(b["rss_mb"], 1),
        "players_cpu_percent": round(100.0 * (b["cpu_players"] - a["cpu_players"]) / dt, 1),
        "client_cpu_percent": round(100.0 * (b["cpu_client"] - a["cpu_client"]) / dt, 1),
        "max_lag_s": None if b["max_lag_s"] is None else round(b["max_lag_s"], 3),
        "dropped_windows": b["dropped"] - a["dropped"],
        "mean_batch": round(
            (b["classified"] - a["classified"]) / max(1, b["engine_calls"] - a["engine_calls"]), 2
        ),
        "tick_p99_ms": None if b["tick_p99_ms"] is None else round(b["tick_p99_ms"], 2),
        "engine": s_info["engine"],
        "seconds": round(dt, 1),
        "meets_goal": bool(
            not problems
            and p99 is not None
            and p99 <= GOAL_PROCESSING_P99_MS
            and (speed != 1.0 or (p50_det is not None and p50_det <= GOAL_DETECTION_P50_S))
        ),
    }
    if problems:
        run["behind"] = "; ".join(problems)
    return run


async def _e2e_client(
    cfg: E2EConfig, n: int, s_info: dict[str, Any], p_info: dict[str, Any]
) -> tuple[_Received, list[dict[str, Any]]]:
    import httpx

    base = f"http://127.0.0.1:{s_info['port']}"
    got = _Received()
    receiver = asyncio.create_task(
        _receive(f"ws://127.0.0.1:{s_info['port']}/ws/events?since=0", got)
    )
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            await _wait_streaming(client, base, n)
            await _wait_caught_up(client, base, cfg.replay_speed)
            await asyncio.sleep(cfg.warmup)
            first = _snapshot(await _status(client, base), s_info["pid"], p_info["pid"])
            await asyncio.sleep(cfg.duration)
            last = _snapshot(await _status(client, base), s_info["pid"], p_info["pid"])
            await asyncio.sleep(_SETTLE_S)
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return got, [first, last]


def e2e_benchmark(cfg: E2EConfig) -> dict[str, Any]:
    """Run each headset count in turn, stopping at the first that cannot keep up in real time."""
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="eegstream-bench-") as tmp:
        lsl_config = _lsl_config(Path(tmp))
        for n in cfg.headsets:
            _say(cfg, f"bench --e2e: {n} headset(s), {cfg.duration:.0f} s measured ...")
            run = _e2e_run(cfg, n, lsl_config)
            runs.append(run)
            _say(
                cfg,
                f"bench --e2e: {n} headset(s): realtime {run['realtime']}, processing p50/p99 "
                f"{run['processing_p50_ms']}/{run['processing_p99_ms']} ms, detection p50 "
                f"{run['detection_p50_s']} s, {run['windows_per_s']} windows/s, "
                f"CPU {run['cpu_percent']} %, RSS {run['rss_mb']} MiB",
            )
            if not run["realtime"]:
                break
    realtime = [r["headsets"] for r in runs if r["realtime"]]
    return {
        "benchmark": "e2e",
        "machine": _machine(),
        "config": _config(cfg),
        "max_realtime_headsets": max(realtime, default=0),
        "goal": {
            "processing_p99_ms": GOAL_PROCESSING_P99_MS,
            "detection_p50_s": GOAL_DETECTION_P50_S,
            "headsets": GOAL_HEADSETS,
        },
        "runs": runs,
        "method": METHOD,
    }


def _say(cfg: E2EConfig, line: str) -> None:
    """A progress line on stderr (stdout carries the JSON report)."""
    if cfg.progress:
        tqdm.write(line, file=sys.stderr)


def _config(cfg: E2EConfig) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out["model"] = None if cfg.model is None else str(cfg.model)
    out["speed"] = cfg.replay_speed
    out["headsets"] = list(cfg.headsets)
    out.pop("progress")
    return out


# --- the soak ----------------------------------------------------------------------------------------------


def soak_benchmark(cfg: E2EConfig) -> dict[str, Any]:
    """Replay ``cfg.headsets[0]`` headsets at high speed for ``cfg.soak_minutes``; then drain.

    Reports resident memory and processing latency at the start (after warm-up) and the end,
    messages lost between the detectors, the hub and the client (must be 0), windows dropped
    (must be 0) and the largest backlog seen.
    """
    if cfg.soak_minutes is None or cfg.soak_minutes <= 0:
        raise EegstreamError(
            f"bench --soak: expected a number of minutes > 0; got {cfg.soak_minutes}"
        )
    n = cfg.headsets[0]
    total = cfg.soak_minutes * 60.0
    with tempfile.TemporaryDirectory(prefix="eegstream-soak-") as tmp:
        span = min(600.0, max(60.0, total * cfg.replay_speed / 2))  # each headset loops twice
        players, p_info, service, s_info = _start(cfg, n, _lsl_config(Path(tmp)), span)
        try:
            result = asyncio.run(_soak_client(cfg, n, total, players, s_info, p_info))
        finally:
            service.stop()
            players.stop()
    return {
        "benchmark": "soak",
        "machine": _machine(),
        "config": _config(cfg),
        **result,
    }


async def _soak_client(
    cfg: E2EConfig,
    n: int,
    total: float,
    players: _Child,
    s_info: dict[str, Any],
    p_info: dict[str, Any],
) -> dict[str, Any]:
    import httpx

    base = f"http://127.0.0.1:{s_info['port']}"
    pid = int(s_info["pid"])
    warmup = min(120.0, max(2.0, 0.1 * total))
    window = min(60.0, max(5.0, 0.2 * total))  # latency windows at the start and at the end
    got = _Received()
    receiver = asyncio.create_task(
        _receive(f"ws://127.0.0.1:{s_info['port']}/ws/events?since=0", got)
    )
    samples: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            await _wait_streaming(client, base, n)
            await _wait_caught_up(client, base, cfg.replay_speed)
            t0 = time.time()
            bar = tqdm(
                total=round(total), desc="soak", unit="s", file=sys.stderr, disable=not cfg.progress
            )
            while (elapsed := time.time() - t0) < total:
                await asyncio.sleep(min(_SOAK_SAMPLE_S, total - elapsed))
                snap = _snapshot(await _status(client, base), pid, int(p_info["pid"]))
                snap["t_s"] = round(snap["unix"] - t0, 1)
                samples.append(snap)
                bar.update(min(round(snap["t_s"]), round(total)) - bar.n)
                bar.set_postfix(rss_mib=snap["rss_mb"], backlog=snap["backlog"], refresh=False)
            bar.close()
            end = time.time()
            players.stop()  # the streams end: detectors flush, nothing more comes
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                status = await _status(client, base)
                streams = status["pipeline"]["streams"].values()
                if all(s["state"] == "lost" for s in streams):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(1.0)
            status = await _status(client, base)
            published_artifacts = await _metric(
                client, base, 'eegstream_messages_total{type="artifact"}'
            )
            emitted = sum(s["messages"] for s in status["pipeline"]["streams"].values())
            published = int(status["seq"])
            await asyncio.sleep(1.0)
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    after = [s for s in samples if s["t_s"] >= warmup]
    rss_start = after[0]["rss_mb"] if after else samples[0]["rss_mb"]
    rss_end = samples[-1]["rss_mb"]
    t_start = t0 + warmup
    start_lat = _processing(got, t_start, t_start + window)
    end_lat = _processing(got, end - window, end)
    received_artifacts = len(got.artifacts)
    ids = {m["id"]: m["phase"] for _, m in got.artifacts if m["phase"] == "onset"}
    finals = {m["id"] for _, m in got.artifacts if m["phase"] == "final"}
    dropped = samples[-1]["dropped"] if samples else 0
    return {
        "headsets": n,
        "minutes": round((end - t0) / 60.0, 2),
        "speed": cfg.replay_speed,
        "eeg_hours": round(n * cfg.replay_speed * (end - t0) / 3600.0, 2),
        "warmup_s": warmup,
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_max": round(max(s["rss_mb"] for s in samples), 1),
        "rss_growth_percent": round(100.0 * (rss_end - rss_start) / rss_start, 2),
        "processing_p50_ms_start": _q(start_lat, 50, 1e3),
        "processing_p99_ms_start": _q(start_lat, 99, 1e3),
        "processing_p50_ms_end": _q(end_lat, 50, 1e3),
        "processing_p99_ms_end": _q(end_lat, 99, 1e3),
        "latency_window_s": window,
        "messages_emitted": emitted,
        "messages_published": published,
        "messages_received": got.count,
        "artifact_messages_published": int(published_artifacts),
        "artifact_messages_received": received_artifacts,
        "events_lost": (emitted - published) + (published - got.count),
        "events_without_final": len(set(ids) - finals),
        "windows": samples[-1]["windows"] if samples else 0,
        "windows_dropped": dropped,
        "max_backlog_samples": max((s["backlog"] for s in samples), default=0),
        "gaps": samples[-1]["gaps"] if samples else 0,
        "cpu_percent": round(
            100.0
            * (samples[-1]["cpu_service"] - samples[0]["cpu_service"])
            / max(1e-9, samples[-1]["unix"] - samples[0]["unix"]),
            1,
        )
        if len(samples) > 1
        else None,
        "series": [
            {k: s[k] for k in ("t_s", "rss_mb", "windows", "dropped", "backlog")} for s in samples
        ],
    }


# --- the checked configuration -------------------------------------------------------------------


def e2e_config(
    *,
    soak: float | None = None,
    headsets: str | None = None,
    duration: float | None = None,
    speed: float | None = None,
    backend: str | None = None,
    model: Path | None = None,
) -> E2EConfig:
    """The configuration from ``eegstream bench`` flag values (``None``: not given), checked.

    ``headsets`` is the comma-separated text of ``--headsets``; a bad value is an
    :class:`EegstreamError` naming the flag, before any process starts.
    """
    if soak is not None and not (math.isfinite(soak) and soak > 0):
        raise EegstreamError(f"bench --soak: expected a number of minutes > 0; got {soak}")
    default = "1" if soak is not None else "1,8,32,64"
    counts = parse_headsets(headsets or default)
    seconds = float(duration or 60.0)
    if not (math.isfinite(seconds) and seconds >= 5.0):
        raise EegstreamError(
            f"bench --duration: expected seconds >= 5 per headset count; got {seconds}"
        )
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        raise EegstreamError(
            f"bench --speed: expected a replay speed > 0 (1 = real time); got {speed}"
        )
    return E2EConfig(
        headsets=counts,
        duration=seconds,
        soak_minutes=soak,
        speed=speed,
        backend=backend or "auto",
        model=None if model is None else Path(model),
    )
