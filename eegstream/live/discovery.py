"""Discovery: attach every stream of a type that appears, from a thread of its own.

Opening a stream can take seconds (resolve, metadata), so it never happens on the scheduler
thread: :class:`Discovery` opens a newly seen stream (or a detached one that came back, matched by
source id) and hands its session over through ``attach``. A stream that fails to open (missing
electrodes) is *rejected* and left alone for a while; a dead outlet that the resolver still
lists is *gone* and skipped quietly for as long.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pylsl

from eegstream.errors import EegstreamError, StreamGoneError
from eegstream.live.ports import SYSTEM_CLOCK, Clock, Inlet
from eegstream.live.registry import StreamRegistry, stream_key
from eegstream.live.session import StreamSession
from eegstream.stream.inlet import EEGInlet, StreamDescription, stream_predicate, types_match

log = logging.getLogger(__name__)

__all__ = ["Discovery"]

#: Seconds a stream that failed to open during discovery is left alone before another try.
_RETRY_REJECTED_S = 30.0


@dataclass(frozen=True)
class _Skipped:
    """A stream discovery leaves alone until ``at + _RETRY_REJECTED_S`` (monotonic)."""

    at: float
    what: str  #: the stream, as the status names it
    why: str | None  #: why it was rejected; None: its outlet had closed (not listed)


class Discovery:
    """Watches for streams of ``stream_type``; ``run`` is the thread's body, ``consider`` one look.

    Parameters
    ----------
    registry
        The scheduler's streams: which headsets are attached; builds a new stream's session.
    attach
        Hands an opened session to the scheduler (called from the discovery thread).
    stream_type
        LSL type to watch (matched in any case).
    interval
        Seconds between looks at the resolver's results.
    resolve_timeout, max_chunk
        Passed to each :class:`~eegstream.stream.inlet.EEGInlet`.
    open_inlet
        Builds the (not yet connected) inlet of a stream seen by the resolver; default: an
        :class:`~eegstream.stream.inlet.EEGInlet` on it. Tests pass in-memory inlets.
    """

    def __init__(
        self,
        registry: StreamRegistry,
        attach: Callable[[StreamSession], None],
        *,
        stream_type: str,
        interval: float,
        resolve_timeout: float,
        max_chunk: int,
        clock: Clock = SYSTEM_CLOCK,
        open_inlet: Callable[[pylsl.StreamInfo, StreamDescription], Inlet] | None = None,
    ) -> None:
        self.registry = registry
        self.attach = attach
        self.stream_type = stream_type
        self.interval = interval
        self.resolve_timeout = resolve_timeout
        self.max_chunk = max_chunk
        self.clock = clock
        self.open_inlet = open_inlet or self._eeg_inlet
        #: uid -> why it is left alone for a while: rejected (listed in the status) or gone
        self._skipped: dict[str, _Skipped] = {}

    def rejected(self) -> dict[str, str]:
        """Streams that failed to open: ``{stream: why}`` (any thread)."""
        return {s.what: s.why for s in list(self._skipped.values()) if s.why is not None}

    def run(self, stop: threading.Event) -> None:
        """Look every ``interval`` seconds until ``stop`` is set (never blocks ticks)."""
        pred = stream_predicate(None, self.stream_type, None)  # the type in any case
        resolver = pylsl.ContinuousResolver(pred=pred, forget_after=2.0)
        try:
            while not stop.wait(self.interval):
                try:
                    infos = resolver.results()
                except Exception:  # liblsl hiccup: try again next round
                    log.warning("stream discovery failed; retrying", exc_info=True)
                    continue
                for info in infos:
                    if stop.is_set():
                        return
                    self.consider(info)
        finally:
            del resolver

    def consider(self, info: pylsl.StreamInfo) -> None:
        """Open a newly seen stream (or a detached one that came back) and hand it over."""
        desc = StreamDescription.from_info(info)
        if not types_match(desc.type, self.stream_type):  # "EEG" finds MNE-LSL's "eeg" too
            return
        if self.registry.claimed(stream_key(desc)):
            return  # attached (or failed: left alone) - its inlet handles recovery
        # by uid: a dead outlet that the resolver still lists must not hold up its successor
        seen = self._skipped.get(desc.uid)
        if seen is not None and self.clock.monotonic() - seen.at < _RETRY_REJECTED_S:
            return
        inlet = self.open_inlet(info, desc)
        try:
            inlet.connect()
            entry = self.registry.entry(inlet, None)
        except StreamGoneError as exc:  # a dead outlet the resolver still lists: not rejected
            log.debug("not attaching %s: %s", desc, exc)
            self._skip(desc, None)
            return
        except EegstreamError as exc:
            if seen is None or seen.why is None:
                log.warning("not attaching %s: %s", desc, exc)
            self._skip(desc, str(exc))
            return
        self._skipped.pop(desc.uid, None)
        self.attach(entry)

    def _eeg_inlet(self, info: pylsl.StreamInfo, desc: StreamDescription) -> Inlet:
        """The default inlet: an :class:`EEGInlet` opening the stream the resolver found."""
        return EEGInlet(
            desc.name,
            desc.type,
            desc.source_id or None,
            info=info,
            resolve_timeout=self.resolve_timeout,
            max_chunk=self.max_chunk,
        )

    def _skip(self, desc: StreamDescription, why: str | None) -> None:
        """Leave ``desc`` alone for a while: rejected (``why``) or gone (``None``, not listed).

        Gone outlets are forgotten once their time is up (the resolver drops them soon after
        they close); rejected ones stay listed until they open.
        """
        now = self.clock.monotonic()
        self._skipped = {
            u: s
            for u, s in self._skipped.items()
            if s.why is not None or now - s.at < _RETRY_REJECTED_S
        }
        self._skipped[desc.uid] = _Skipped(now, str(desc), why)
