"""The dashboard's calibration: ``/calibrate`` (the page) and the ``/calibration`` API it drives.

The service owns at most one running calibration (:class:`Calibrations`, a slot holding a
:class:`~eegstream.service.calibration_run.CalibrationRun` whose thread records, calibrates and
saves the profile in the service's profile folder as ``NAME.profile``).

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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, JSONResponse

from eegstream.errors import EegstreamError
from eegstream.service.calibration_run import CalibrationRequest, CalibrationRun, cue_state
from eegstream.service.security import HostPolicy, origin_ok

if TYPE_CHECKING:
    from eegstream.service.state import Service

log = logging.getLogger(__name__)

__all__ = ["CalibrationRequest", "CalibrationRun", "add_calibration_routes", "cue_state"]

#: Finished states: a new calibration may start.
_FINISHED = frozenset({"idle", "done", "failed", "cancelled"})


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
            from eegstream.offline import check_out_path

            check_out_path("profile", out)
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
