"""Stalls, losses and recovery: when a stream stops, search for it again and switch to it.

After ``stall_reset`` seconds without data liblsl's dejitter is reset (see
:mod:`eegstream.stream.inlet`); after ``lost_after`` seconds, or when the outlet closes, the
stream counts as lost and a background thread watches for it again (by source id, else by name
and type). :meth:`~eegstream.stream.inlet.EEGInlet.pull` takes the connection it found over.

:class:`_Recovery` is mixed into :class:`~eegstream.stream.inlet.EEGInlet`: its methods read and
write the inlet's state (declared on the class; set by the inlet).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque

import pylsl
from pylsl.lib import lib as _lsl
from pylsl.util import handle_error

from eegstream.stream.chunks import InletEvent, InletStats, State
from eegstream.stream.connection import _Connection
from eegstream.stream.resolve import StreamDescription, _newest, stream_predicate
from eegstream.stream.timestamps import _Timeline

log = logging.getLogger(__name__)

_FORGET_S = 2.0  #: seconds the background search remembers an outlet that stopped answering
_SEARCH_POLL_S = 0.25  #: seconds between looks at the background search's results


class _Recovery(_Connection, _Timeline):
    """Stall, loss and recovery handling of :class:`~eegstream.stream.inlet.EEGInlet` (a mixin)."""

    # the inlet's state that these methods use
    query: tuple[str | None, str | None, str | None]
    lost_after: float
    stall_reset: float
    processing_flags: int
    stats: InletStats
    description: StreamDescription | None
    _inlet: pylsl.StreamInlet | None
    _state: State
    _events: deque[InletEvent]
    _last_ts: float | None
    _last_counter: float | None
    _last_arrival: float
    _dejitter_reset_done: bool
    _switched: bool
    _lock: threading.Lock
    _found: tuple[pylsl.StreamInlet, pylsl.StreamInfo] | None
    _search_thread: threading.Thread | None
    _search_stop: threading.Event

    def _check_stall(self, now: float) -> None:
        idle = now - self._last_arrival
        if (
            not self._dejitter_reset_done
            and idle > self.stall_reset
            and self.processing_flags & pylsl.proc_dejitter
            and self._inlet is not None
        ):
            # Toggling the flag makes liblsl start a fresh regression at the next sample.
            obj = self._inlet.obj
            handle_error(
                _lsl.lsl_set_postprocessing(obj, self.processing_flags & ~pylsl.proc_dejitter)
            )
            handle_error(_lsl.lsl_set_postprocessing(obj, self.processing_flags))
            self._dejitter_reset_done = True
        if self._state == "connected" and idle > self.lost_after:
            self._lose(f"no data for {idle:.1f} s", dead=False)

    def _lose(self, reason: str, *, dead: bool) -> None:
        if self._state == "lost" and not dead:
            return
        stream = self.description
        if dead:
            if self._inlet is not None:
                self._inlet.close_stream()
            self._inlet = None
            # The resolver may list the dead outlet until it forgets it; skip it until then.
            skip_until = time.monotonic() + _FORGET_S + 0.5
        else:
            skip_until = math.inf  # still connected: only a *new* outlet is worth switching to
        if self._state != "lost":
            self.stats.lost += 1
            when = self._last_ts if self._last_ts is not None else pylsl.local_clock()
            self._events.append(InletEvent("lost", when, stream, reason))
            log.warning("lost %s: %s; searching for it again", stream, reason)
        self._state = "lost"
        self._stop_search()
        self._start_search(stream.uid if stream is not None else None, skip_until)

    def _recovery_query(self) -> tuple[str | None, str | None, str | None]:
        stream = self.description
        if stream is not None and stream.source_id:
            return None, None, stream.source_id
        if stream is not None:
            return stream.name, stream.type, None
        return self.query

    def _start_search(self, skip_uid: str | None, skip_until: float) -> None:
        self._search_stop.clear()
        pred = stream_predicate(*self._recovery_query())
        self._search_thread = threading.Thread(
            target=self._search, args=(pred, skip_uid, skip_until), name="eegstream-inlet-search"
        )
        self._search_thread.daemon = True
        self._search_thread.start()

    def _stop_search(self) -> None:
        self._search_stop.set()
        if self._search_thread is not None:
            self._search_thread.join()
            self._search_thread = None

    def _search(self, pred: str, skip_uid: str | None, skip_until: float) -> None:
        """Background: watch for a matching outlet, open it and hand it over to :meth:`pull`.

        A continuous resolver notices the outlet within about a second of its return; repeated
        one-shot resolves would not (liblsl 1.18 overruns a failed resolve's timeout by up to
        ``UnicastMaxRTT``, 5 s by default).
        """
        resolver = pylsl.ContinuousResolver(pred=pred, forget_after=_FORGET_S)
        while not self._search_stop.wait(_SEARCH_POLL_S):
            skip = skip_uid if time.monotonic() < skip_until else None
            try:
                infos = [i for i in resolver.results() if i.uid() != skip]
                if infos:
                    inlet, full = self._open(_newest(infos))
                    with self._lock:
                        self._found = (inlet, full)
                    return
            except Exception:  # a failed attempt is retried; the log says why
                log.warning("could not reopen the stream (%s); retrying", pred, exc_info=True)

    def _take_found(self) -> None:
        with self._lock:
            found, self._found = self._found, None
        if found is None:
            return
        self._stop_search()
        if self._inlet is not None:
            self._inlet.close_stream()
        self._inlet = None
        self._adopt(*found)  # raises MissingChannelsError if the new stream lacks electrodes
        self._state = "connected"
        self._switched = True
        self._last_counter = None
        self._reset_clock()
        self._last_arrival = pylsl.local_clock()
        self.stats.reconnects += 1
        self._events.append(InletEvent("recovered", self._last_arrival, self.description))
        log.info("reconnected to %s", self.description)
