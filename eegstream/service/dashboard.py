"""The dashboard: its static page at ``/`` and ``/static``, and the filter of its signal view.

``/ws/signal`` (in :mod:`eegstream.service.websocket`) sends each client a few small frames a
second: the raw signal block-averaged down to ``settings.signal_rate`` and with a slow moving
baseline removed (:class:`SignalState`), so that the page draws drift-free traces without doing
any filtering itself.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from scipy.signal import lfilter

from eegstream.settings import FS

__all__ = [
    "SIGNAL_FRAMES_PER_S",
    "SIGNAL_WINDOW_S",
    "STATIC_DIR",
    "SignalState",
    "add_dashboard",
    "dashboard",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Seconds of signal the dashboard shows (and gets in its first frame).
SIGNAL_WINDOW_S = 10.0
#: Dashboard frames per second: small frames, smooth enough scrolling.
SIGNAL_FRAMES_PER_S = 8.0
#: Time constant (s) of the moving baseline subtracted from the dashboard signal (drift removal).
SIGNAL_BASELINE_TAU_S = 2.0


class SignalState:
    """Per-connection decimation and drift removal of the dashboard signal."""

    def __init__(self, decimation: int) -> None:
        self.decimation = decimation
        rate = FS / decimation
        self.alpha = math.exp(-1.0 / (rate * SIGNAL_BASELINE_TAU_S))
        self.last_time = -math.inf
        self.zi: npt.NDArray[np.float64] | None = None

    def frame(
        self, data: npt.NDArray[np.float64], times: npt.NDArray[np.float64]
    ) -> dict[str, Any] | None:
        """Block-average the new samples by ``decimation`` and subtract the moving baseline."""
        new = times > self.last_time
        data, times = data[new], times[new]
        n = (times.shape[0] // self.decimation) * self.decimation
        if n == 0:
            return None
        self.last_time = float(times[n - 1])  # the remainder waits for the next frame
        d = self.decimation
        blocks = data[:n].reshape(n // d, d, data.shape[1]).mean(axis=1)
        block_times = times[:n].reshape(n // d, d).mean(axis=1)
        bad = ~np.isfinite(blocks)
        a = self.alpha
        if self.zi is None:  # start the baseline at the mean of the first frame
            counts = (~bad).sum(axis=0)
            sums = np.where(bad, 0.0, blocks).sum(axis=0)
            start = np.divide(sums, counts, out=np.zeros(blocks.shape[1]), where=counts > 0)
            self.zi = (a * start)[None, :]
        previous = self.zi[0] / a  # the baseline so far fills missing samples
        filled = np.where(bad, previous[None, :], blocks)
        baseline, self.zi = lfilter([1.0 - a], [1.0, -a], filled, axis=0, zi=self.zi)
        out = np.round(np.where(bad, 0.0, filled - baseline), 1)
        return {
            "type": "signal",
            "t0": float(block_times[0]),
            "dt": d / FS,
            "data": out.T.tolist(),
        }


def dashboard() -> FileResponse:
    """The live dashboard (static; it reads the token from its own ``?token=``)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def add_dashboard(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files at ``/static`` (no token: they carry no data)."""
    app.add_api_route("/", dashboard, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
