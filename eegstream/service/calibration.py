"""The dashboard's calibration: ``/calibrate`` (the page) and the ``/calibration`` API it drives.

The service owns at most one running calibration (:class:`CalibrationRun`), a background task
whose thread runs :func:`eegstream.calibrate_live.record_protocol` on a second inlet of the chosen
stream (the CLI's live run: same protocol clock, same cue markers on the LSL stream
``eegstream-calibration``), then :func:`eegstream.calibrate.calibrate_recording` with the model as
shipped on an engine of its own (the pipeline's engine belongs to the scheduler thread), and
saves the profile in the service's profile folder as ``NAME.profile``.

- ``POST /calibration`` starts one (JSON body :class:`CalibrationRequest`: stream id, profile
  name, and a shorter protocol within bounds); 409 while one runs.
- ``GET /calibration``: the state (phase, cue, seconds left, progress, the report at the end).
- ``DELETE /calibration`` cancels the running one (nothing is written).
- ``GET /calibration/profile`` downloads the profile the last calibration wrote.

They sit behind the app's ``Host`` allow-list and token like every data endpoint; the two that
change state also refuse a browser ``Origin`` that the websockets would refuse, and any body
that is not ``application/json`` (an HTML form of another site cannot send one without CORS).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from eegstream.calibrate import Cue, Protocol
from eegstream.errors import EegstreamError
from eegstream.service.security import HostPolicy, origin_ok

if TYPE_CHECKING:
    from eegstream.service.state import Service

log = logging.getLogger(__name__)

__all__ = ["CalibrationRequest", "CalibrationRun", "add_calibration_routes", "cue_state"]

#: What the page shows in big letters at each cue.
CUE_TEXT: dict[str, str] = {"blink": "BLINK NOW", "jaw_clench": "CLENCH YOUR JAW"}
#: Seconds a cue stays on screen after its time (the response comes 0.1-1.5 s after it).
CUE_SHOW_S: float = 1.5
#: Seconds of countdown before each cue (as the terminal's 3-2-1).
COUNTDOWN_S: float = 3.0
#: Default folder of the profiles the dashboard writes (relative to the service's directory).
#: Finished states: a new calibration may start.
_FINISHED = frozenset({"idle", "done", "failed", "cancelled"})


def cue_state(cues: Sequence[Cue], duration: float, now: float) -> dict[str, Any]:
    """What the page shows ``now`` seconds into the protocol (pure: tested without threads).

    ``phase`` is ``rest`` (RELAX), ``countdown`` (the next cue in ``seconds_left``), ``cue``
    (BLINK NOW / CLENCH YOUR JAW, ``seconds_left`` of showing it) or ``finished``.
    """
    progress = min(max(now / duration, 0.0), 1.0) if duration > 0 else 1.0
    base = {"elapsed_s": round(max(now, 0.0), 2), "progress": round(progress, 4)}
    for i, cue in enumerate(cues):
        where = {"index": i + 1, "total": len(cues), "label": cue.label}
        if cue.time <= now < cue.time + CUE_SHOW_S:
            left = cue.time + CUE_SHOW_S - now
            return {
                **base,
                "phase": "cue",
                "text": CUE_TEXT[cue.label],
                "cue": where,
                "seconds_left": round(left, 2),
            }
        if now < cue.time:
            left = cue.time - now
            if left <= COUNTDOWN_S:
                text = f"{cue.label.replace('_', ' ')} in {math.ceil(left)}".upper()
                return {
                    **base,
                    "phase": "countdown",
                    "text": text,
                    "cue": where,
                    "seconds_left": round(left, 2),
                }
            return {
                **base,
                "phase": "rest",
                "text": "RELAX",
                "cue": None,
                "seconds_left": round(left - COUNTDOWN_S, 2),
            }
    if now < duration:
        return {
            **base,
            "phase": "rest",
            "text": "RELAX",
            "cue": None,
            "seconds_left": round(duration - now, 2),
        }
    return {**base, "phase": "finished", "text": "DONE", "cue": None, "seconds_left": 0.0}


class CalibrationRequest(BaseModel):
    """``POST /calibration``: which stream, the profile's name, and the protocol (bounded)."""

    model_config = ConfigDict(extra="forbid")

    stream: str | None = Field(
        None, max_length=256, description="stream id from /status (default: the only one)"
    )
    name: str = Field(
        "profile",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="the person's name; the profile is saved as NAME.profile",
    )
    blinks: int = Field(10, ge=1, le=30, description="blink cues")
    clenches: int = Field(6, ge=0, le=30, description="jaw-clench cues")
    rest_before_s: float = Field(30.0, ge=15.0, le=120.0, description="relaxed start (s)")
    rest_after_s: float = Field(20.0, ge=2.0, le=120.0, description="relaxed end (s)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="cue order and spacing")


class CalibrationRun:
    """One calibration: its thread records the protocol, calibrates and saves the profile.

    The state is written by the thread and read by the event loop under one lock.
    """

    def __init__(
        self,
        request: CalibrationRequest,
        stream_id: str,
        stream: dict[str, Any],
        out: Path,
        service: Service,
    ) -> None:
        self.request = request
        self.stream_id = stream_id
        self.lsl_name = str(stream["name"])
        self.source_id = str(stream.get("source_id") or "") or None
        self.stype = str(stream.get("type") or service.settings.stream_type)
        self.out = out
        self.settings = service.settings
        self.protocol = Protocol(
            blinks=request.blinks,
            clenches=request.clenches,
            rest_before_s=request.rest_before_s,
            rest_after_s=request.rest_after_s,
            seed=request.seed,
        )
        self.cues = self.protocol.cues()
        self.duration = self.protocol.duration
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._state = "connecting"
        self._now: float | None = None
        self._error: str | None = None
        self._result: dict[str, Any] | None = None
        self._started = time.time()

    # --- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        """Record, calibrate, save; every failure is stored (shown by ``GET /calibration``)."""
        from eegstream.calibrate_live import CalibrationCancelled, record_protocol

        try:
            rec = record_protocol(
                self.lsl_name,
                self.protocol,
                self._prompt,
                stype=self.stype,
                source_id=self.source_id,
                resolve_timeout=self.settings.resolve_timeout,
                progress=self._progress,
                cancel=self.cancel,
            )
            self._set(state="computing")
            result = self._calibrate(rec)
            with self._lock:
                self._state, self._result = "done", result
            log.info("calibration of %s saved to %s", self.stream_id, self.out)
        except CalibrationCancelled as exc:
            self._set(state="cancelled", error=str(exc))
        except EegstreamError as exc:
            log.warning("calibration of %s failed: %s", self.stream_id, exc)
            self._set(state="failed", error=str(exc))
        except Exception as exc:  # stored and shown, never lost with the thread
            log.exception("calibration of %s failed", self.stream_id)
            self._set(state="failed", error=f"{type(exc).__name__}: {exc}")

    def _calibrate(self, rec: Any) -> dict[str, Any]:
        from eegstream.bundle import ModelBundle
        from eegstream.calibrate import calibrate_recording
        from eegstream.engines import load_engine

        # the model as shipped, on an engine of its own (the pipeline's is the scheduler's)
        settings = self.settings.model_copy(update={"profile": None, "class_thresholds": {}})
        bundle = ModelBundle.load(settings.model_dir)
        engine = load_engine(settings.backend, bundle, settings.max_batch)
        try:
            result = calibrate_recording(rec, bundle, engine, settings, name=self.request.name)
        finally:
            engine.close()
        result.profile.save(self.out)
        return {
            **result.summary(),
            "thresholds": result.profile.thresholds,
            "report": result.table(),
        }

    def _prompt(self, text: str) -> None:
        log.debug("calibration of %s: %s", self.stream_id, text)

    def _progress(self, now: float) -> None:
        with self._lock:
            if self._state == "connecting":
                self._state = "running"
            self._now = now

    def _set(self, *, state: str, error: str | None = None) -> None:
        with self._lock:
            self._state, self._error = state, error

    # --- the event loop --------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """connecting, running, computing, done, failed or cancelled."""
        with self._lock:
            return self._state

    def snapshot(self) -> dict[str, Any]:
        """``GET /calibration``."""
        with self._lock:
            state, now, error, result = self._state, self._now, self._error, self._result
        if state == "running" and now is not None:
            show = cue_state(self.cues, self.duration, now)
        elif state == "connecting":
            show = {
                "phase": "connecting",
                "text": "CONNECTING",
                "cue": None,
                "seconds_left": None,
                "progress": 0.0,
                "elapsed_s": 0.0,
            }
        else:
            text = {"computing": "COMPUTING THE PROFILE", "done": "DONE"}.get(state, state.upper())
            progress = 1.0 if state in ("computing", "done") else (now or 0.0) / self.duration
            show = {
                "phase": state,
                "text": text,
                "cue": None,
                "seconds_left": None,
                "progress": round(min(progress, 1.0), 4),
                "elapsed_s": round(now or 0.0, 2),
            }
        return {
            "state": state,
            **show,
            "stream": self.stream_id,
            "name": self.request.name,
            "duration_s": round(self.duration, 2),
            "cues": len(self.cues),
            "protocol": self.request.model_dump(exclude={"stream", "name"}),
            "started_unix": round(self._started, 3),
            "error": error,
            "result": result,
            "profile": (
                {"file": str(self.out), "download": "/calibration/profile"}
                if state == "done"
                else None
            ),
        }


class Calibrations:
    """The service's one calibration slot: start, state, cancel; closed with the service."""

    def __init__(self, service: Service, profile_dir: Path) -> None:
        self.service = service
        self.profile_dir = profile_dir
        self.current: CalibrationRun | None = None
        self._task: asyncio.Future[None] | None = None

    def start(self, request: CalibrationRequest) -> CalibrationRun:
        """Begin a calibration in the background; :class:`HTTPException` says what is wrong."""
        if self.current is not None and self.current.state not in _FINISHED:
            raise HTTPException(
                409,
                f"a calibration of {self.current.stream_id} is already running "
                f"({self.current.state}); wait for it or cancel it with DELETE /calibration",
            )
        sid, stream = self._stream(request.stream)
        out = self.profile_dir / f"{request.name}.profile"
        try:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            from eegstream.offline import _check_out_path

            _check_out_path("profile", out)
        except (OSError, EegstreamError) as exc:
            raise HTTPException(
                500,
                f"cannot write profiles to {self.profile_dir.resolve()} ({exc}); set profile_dir "
                "(--profile-dir, EEGSTREAM_PROFILE_DIR) to a writable folder",
            ) from None
        run = CalibrationRun(request, sid, stream, out, self.service)
        self.current = run
        self._task = asyncio.ensure_future(asyncio.to_thread(run.run))
        log.info("calibration of %s started (%d cues, %.0f s)", sid, len(run.cues), run.duration)
        return run

    def _stream(self, wanted: str | None) -> tuple[str, dict[str, Any]]:
        streams = self.service.source_status().get("streams") or {}
        live = {
            sid: st["stream"]
            for sid, st in streams.items()
            if st.get("running") and isinstance(st.get("stream"), dict)
        }
        if not live:
            raise HTTPException(
                409, "no stream is connected: wait until /ready says ready, then start again"
            )
        if wanted is None:
            if len(live) > 1:
                raise HTTPException(
                    422, f"stream: several are connected; choose one of {', '.join(sorted(live))}"
                )
            wanted = next(iter(live))
        if wanted not in live:
            raise HTTPException(
                422,
                f"stream {wanted!r} is not connected; connected: {', '.join(sorted(live))}",
            )
        return wanted, live[wanted]

    async def cancel(self) -> CalibrationRun | None:
        """Stop the running calibration and wait for its thread."""
        run = self.current
        if run is None:
            return None
        run.cancel.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        return run

    async def close(self) -> None:
        """Cancel and wait (the service's shutdown)."""
        await self.cancel()


def add_calibration_routes(
    app: FastAPI,
    service: Service,
    policy: HostPolicy,
    auth: Sequence[Any],
    static_dir: Path,
    profile_dir: Path,
) -> Calibrations:
    """Register ``/calibrate`` and ``/calibration``; the slot, for the app's lifespan to close."""
    slot = Calibrations(service, profile_dir)
    settings = service.settings

    def same_site(request: Request) -> None:
        """State changes: JSON only, and a browser page of an allowed host or CORS origin."""
        if not origin_ok(request, settings, policy):
            raise HTTPException(
                403,
                f"origin {request.headers.get('origin')} not allowed: add its host to "
                "EEGSTREAM_ALLOWED_HOSTS",
            )
        if request.method == "POST":
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise HTTPException(
                    415, f"send the body as application/json (got {ctype or 'no content type'})"
                )

    guarded = [*auth, Depends(same_site)]

    @app.get("/calibrate", include_in_schema=False)
    def calibrate_page() -> FileResponse:
        """The calibration page (static; like the dashboard it reads ``?token=`` itself)."""
        return FileResponse(static_dir / "calibrate.html", headers={"Cache-Control": "no-cache"})

    @app.post("/calibration", dependencies=guarded, tags=["calibration"], status_code=202)
    async def start(body: CalibrationRequest) -> JSONResponse:
        """Start a calibration on a stream (one at a time); poll ``GET /calibration``."""
        return JSONResponse(slot.start(body).snapshot(), status_code=202)

    @app.get("/calibration", dependencies=auth, tags=["calibration"])
    async def state() -> JSONResponse:
        """The running (or last) calibration: phase, cue, seconds left, progress, result."""
        run = slot.current
        if run is None:
            return JSONResponse(
                {"state": "idle", "phase": "idle", "profile_dir": str(profile_dir.resolve())}
            )
        return JSONResponse(run.snapshot())

    @app.delete("/calibration", dependencies=guarded, tags=["calibration"])
    async def cancel() -> JSONResponse:
        """Cancel the running calibration (nothing is written)."""
        run = await slot.cancel()
        if run is None:
            raise HTTPException(404, "no calibration to cancel: start one with POST /calibration")
        return JSONResponse(run.snapshot())

    @app.get("/calibration/profile", dependencies=auth, tags=["calibration"])
    def profile() -> FileResponse:
        """The profile the last calibration wrote (a download)."""
        run = slot.current
        if run is None or run.state != "done":
            raise HTTPException(404, "no profile yet: finish a calibration first")
        return FileResponse(
            run.out,
            media_type="application/json",
            filename=run.out.name,
            headers={"Cache-Control": "no-store"},
        )

    return slot
