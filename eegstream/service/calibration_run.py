"""One dashboard calibration on a worker thread, and what the page shows while it runs.

:class:`CalibrationRun`'s thread runs :func:`eegstream.calibrate_live.record_protocol` on a
second inlet of the chosen stream (the CLI's live run: same protocol clock, same cue markers on
the LSL stream ``eegstream-calibration``), then :func:`eegstream.calibrate.calibrate_recording`
with the model as shipped on an engine of its own (the pipeline's engine belongs to the
scheduler thread), and saves the profile. Its state is what ``GET /calibration`` returns; the
routes that start and stop it are in :mod:`eegstream.service.calibration`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from eegstream.calibrate import Cue, Protocol
from eegstream.errors import EegstreamError

if TYPE_CHECKING:
    from eegstream.service.state import Service

#: One name for all calibration lines (the routes log under it too), as before the split.
log = logging.getLogger("eegstream.service.calibration")

__all__ = [
    "COUNTDOWN_S",
    "CUE_SHOW_S",
    "CUE_TEXT",
    "CalibrationRequest",
    "CalibrationRun",
    "cue_state",
]

#: What the page shows in big letters at each cue.
CUE_TEXT: dict[str, str] = {"blink": "BLINK NOW", "jaw_clench": "CLENCH YOUR JAW"}
#: Seconds a cue stays on screen after its time (the response comes 0.1-1.5 s after it).
CUE_SHOW_S: float = 1.5
#: Seconds of countdown before each cue (as the terminal's 3-2-1).
COUNTDOWN_S: float = 3.0


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
