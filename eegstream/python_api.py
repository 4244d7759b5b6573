"""The Python API: ``eegstream.detect``, ``eegstream.stream_events``, ``eegstream.to_annotations``.

Thin doors onto what the commands use, so a script gets exactly the CLI's results:
:func:`detect` is ``eegstream detect`` (:func:`eegstream.offline.detect_recording`, the live
detector run over the data), :func:`stream_events` is ``eegstream serve`` without the server
(a :class:`~eegstream.live.scheduler.MultiStreamPipeline` whose sink is a queue), and
:func:`to_annotations` hands the events to MNE. Heavy imports (the engine, pylsl, MNE) happen
inside the calls, so ``import eegstream`` stays light.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import threading
import types
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import numpy.typing as npt

from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage

if TYPE_CHECKING:
    import mne

    from eegstream.bundle import ModelBundle
    from eegstream.engines.base import Engine
    from eegstream.io.recording import Recording
    from eegstream.live.scheduler import MultiStreamPipeline
    from eegstream.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["EventStream", "detect", "stream_events", "to_annotations"]

Backend = Literal["auto", "onnxruntime", "tensorrt", "keras"]
#: Seconds an idle iterator waits before it looks at the pipeline's health again.
_POLL_S: Final = 0.05


class _End:
    """The iterator's end marker (the stream was closed and every message was read)."""


_END: Final = _End()


def _load(
    model: str | os.PathLike[str] | None, backend: Backend | None, settings: Settings | None
) -> tuple[Settings, ModelBundle, Engine]:
    """Settings, bundle and engine, as the commands load them."""
    from eegstream.bundle import ModelBundle
    from eegstream.engines import load_engine
    from eegstream.settings import load_settings

    settings = settings if settings is not None else load_settings()
    bundle = ModelBundle.load(os.fspath(model) if model is not None else settings.model_dir)
    engine = load_engine(backend or settings.backend, bundle, max_batch=settings.max_batch)
    return settings, bundle, engine


def _is_raw(data: object) -> bool:
    """An MNE ``Raw`` (duck-typed, so checking needs no MNE import)."""
    return hasattr(data, "get_data") and hasattr(data, "info") and hasattr(data, "annotations")


def _as_recording(
    data: object,
    fs: float | None,
    channels: Sequence[str] | None,
    marker_map: Mapping[int, str] | None,
) -> Recording:
    """Whatever :func:`detect` was given, as a recording at the model rate."""
    from eegstream.io.recording import Recording

    if isinstance(data, Recording):
        return data
    if isinstance(data, str | os.PathLike):
        if channels is not None:
            raise EegstreamError(
                "channels: not used with a recording file (its header names the channels); "
                "drop the argument"
            )
        from eegstream.io.emotiv import read_recording

        return read_recording(data, fs=fs, marker_map=marker_map)
    if _is_raw(data):
        if fs is not None or channels is not None:
            raise EegstreamError(
                "fs/channels: not used with an MNE Raw (raw.info has the rate and channel "
                "names); drop them"
            )
        from eegstream.io.mne_io import raw_to_recording

        return raw_to_recording(data, marker_map=marker_map)  # type: ignore[arg-type]
    if fs is None:
        raise EegstreamError(
            "fs: required with an array; give the sampling rate in Hz (128 or 256), "
            "e.g. eegstream.detect(data, fs=128, channels=[...])"
        )
    from eegstream.io.arrays import recording_from_array
    from eegstream.settings import ELECTRODES

    shape: tuple[int, ...] = tuple(getattr(data, "shape", ()))
    if channels is None:
        if len(shape) == 2 and shape[1] == len(ELECTRODES):
            channels = ELECTRODES  # 14 columns: Emotiv's own order
        else:
            raise EegstreamError(
                f"channels: required for an array of shape {shape}; name each column "
                "(e.g. channels=['AF3', 'F7', ...]); only a 14-column array may omit it "
                f"(then in the order {', '.join(ELECTRODES)})"
            )
    return recording_from_array(data, fs, channels, source="data")  # type: ignore[arg-type]


def detect(
    data: npt.ArrayLike | mne.io.BaseRaw | str | os.PathLike[str],
    fs: float | None = None,
    channels: Sequence[str] | None = None,
    *,
    model: str | os.PathLike[str] | None = None,
    backend: Backend | None = None,
    settings: Settings | None = None,
    marker_map: Mapping[int, str] | None = None,
) -> list[ArtifactEvent]:
    """Blinks and jaw clenches in a recording, as ``eegstream detect`` finds them.

    Parameters
    ----------
    data
        A numpy array ``(n_samples, n_channels)`` in **microvolts**; an MNE ``Raw`` (volts,
        as MNE keeps EEG; rate, channel names and measurement date from ``raw.info``); or a
        recording path (EmotivPRO CSV, or EDF/BDF/FIF with the ``mne`` extra).
    fs
        Sampling rate of an array in Hz: 128, or 256 (resampled to 128 as live streams are).
    channels
        Column names of an array (``AF3`` or ``EEG.AF3``, any order; others are ignored).
        May be omitted for a 14-column array in Emotiv's order.
    model, backend, settings
        The model bundle folder (default: the bundled model), the engine (default: the
        settings' ``backend``) and the detector settings (default: ``load_settings()``:
        ``EEGSTREAM_*`` variables, the config file, defaults).
    marker_map
        Only for files: marker value -> label (not needed for detection itself).

    Returns
    -------
    list[ArtifactEvent]
        Final-phase events in time order. Onsets are in the data's clock: seconds from the
        first sample for arrays and undated files, unix seconds for EmotivPRO CSVs and
        EDF/FIF/``Raw`` with a measurement date (``onset_unix`` is unix time where known).
    """
    from eegstream.offline import detect_recording

    rec = _as_recording(data, fs, channels, marker_map)
    settings, bundle, engine = _load(model, backend, settings)
    try:
        return detect_recording(rec, engine, bundle, settings, progress=False)
    finally:
        engine.close()


def to_annotations(
    messages: Iterable[Message],
    *,
    orig_time: datetime | Literal["auto"] | None = "auto",
) -> mne.Annotations:
    """Events (and ``signal_fault`` statuses) as ``mne.Annotations`` (``BAD_blink``, ...).

    See :func:`eegstream.io.mne_io.to_annotations` for the ``orig_time`` rules; the default
    lines the annotations up with the ``Raw`` (or file) the events were detected on.
    """
    from eegstream.io.mne_io import to_annotations as _to_annotations

    return _to_annotations(messages, orig_time=orig_time)


class EventStream:
    """Live messages of one LSL stream: iterate (or ``async for``) until :meth:`close`.

    Runs a :class:`~eegstream.live.scheduler.MultiStreamPipeline` (the service's) whose sink is a
    bounded queue. Artifact events come twice (``phase="onset"`` when confirmed, ``"final"`` when
    over), with status messages (``connected``, ``gap``, ``signal_fault``, ..., ``stopped``)
    between them unless ``include_status=False``. :meth:`close` flushes the detector, so the
    messages it produced are still read, then the iteration ends. A failure in the pipeline
    thread (or of the stream) is raised by the iteration after the messages before it.
    If the reader falls behind by ``max_queue`` messages the oldest are dropped and counted in
    :attr:`dropped` (the detector never waits for a slow reader).
    """

    def __init__(
        self,
        name: str | None = None,
        source_id: str | None = None,
        *,
        stream_type: str = "EEG",
        model: str | os.PathLike[str] | None = None,
        backend: Backend | None = None,
        settings: Settings | None = None,
        include_status: bool = True,
        max_queue: int = 10_000,
    ) -> None:
        if name is None and source_id is None:
            raise EegstreamError(
                "stream_events: give name=... or source_id=... (the LSL stream to detect on); "
                "list the streams with pylsl.resolve_streams()"
            )
        if not (isinstance(max_queue, int) and max_queue >= 1):
            raise EegstreamError(f"max_queue: expected a whole number >= 1, got {max_queue!r}")
        self.name, self.source_id, self.stream_type = name, source_id, stream_type
        self.include_status = include_status
        self.dropped = 0  #: messages dropped because the reader fell behind
        self._model, self._backend, self._settings = model, backend, settings
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()  # set once close() has flushed everything into the queue
        self._failed = False
        self._pipeline: MultiStreamPipeline | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Resolve the stream and start detecting (errors such as "no such stream" raise here)."""
        if self._pipeline is not None:
            return self
        from eegstream.live.scheduler import MultiStreamPipeline, StreamSpec

        settings, bundle, engine = _load(self._model, self._backend, self._settings)
        spec = StreamSpec(name=self.name, stype=self.stream_type, source_id=self.source_id)
        pipeline = MultiStreamPipeline(
            engine, bundle.features, settings, self._put, streams=[spec], owns_engine=True
        )
        try:
            pipeline.start()
        except BaseException:
            pipeline.stop()  # closes the engine; the start error is what the caller sees
            raise
        self._pipeline = pipeline
        return self

    @property
    def running(self) -> bool:
        """True while the pipeline thread runs."""
        return self._pipeline is not None and self._pipeline.running

    @property
    def stream_ids(self) -> list[str]:
        """The attached stream's id (the LSL name, as in every message's ``stream_id``)."""
        return [] if self._pipeline is None else self._pipeline.stream_ids

    def close(self) -> None:
        """Stop detecting; messages already produced (and the flush) can still be read.

        Safe to call twice and from another thread than the reader's. Raises the pipeline's
        failure if the reader has not seen it yet.
        """
        if self._closed.is_set():
            return
        try:
            if self._pipeline is not None:
                self._pipeline.stop()
        finally:
            self._closed.set()

    stop = close

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    # --- the sink (pipeline thread) ---------------------------------------------------------------

    def _put(self, message: Message) -> None:
        if not self.include_status and isinstance(message, StatusMessage):
            return
        while True:
            try:
                self._queue.put_nowait(message)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the oldest goes: the detector must not wait
                except queue.Empty:
                    continue
                self.dropped += 1
                if self.dropped == 1 or math.log2(self.dropped).is_integer():
                    log.warning(
                        "stream_events: the reader is behind; %d message(s) dropped so far",
                        self.dropped,
                    )

    # --- reading ----------------------------------------------------------------------------------

    def _poll(self, timeout: float) -> Message | _End | None:
        """The next message, :data:`_END`, or None if nothing came within ``timeout``."""
        if self._failed:
            return _END
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            pass
        pipeline = self._pipeline
        if pipeline is None:
            if self._closed.is_set():
                return _END
            raise EegstreamError(
                "EventStream: not started; use eegstream.stream_events(...) or call start()"
            )
        if pipeline.error is not None and self._queue.empty():
            self._failed = True
            pipeline.check()  # raises the scheduler's exception (once)
        if self._closed.is_set() and self._queue.empty():
            return _END  # close() set the flag after its flush reached the queue
        failed = self._stream_failure(pipeline)
        if failed is not None and self._queue.empty():
            self._failed = True
            raise failed
        return None

    @staticmethod
    def _stream_failure(pipeline: MultiStreamPipeline) -> EegstreamError | None:
        """The stream's own failure (it was detached; nothing more will come), if any."""
        status: dict[str, Any] = pipeline.status()
        if status["attached"]:
            return None
        for sid, s in status["streams"].items():
            if s.get("last_error"):
                return EegstreamError(f"stream {sid} failed: {s['last_error']}")
        return None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Message:
        while True:
            item = self._poll(_POLL_S)
            if isinstance(item, _End):
                raise StopIteration
            if item is not None:
                return item

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        while True:
            item: Message | _End | None
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = await asyncio.to_thread(self._poll, _POLL_S)
            if isinstance(item, _End):
                raise StopAsyncIteration
            if item is not None:
                return item


def stream_events(
    name: str | None = None,
    source_id: str | None = None,
    *,
    stream_type: str = "EEG",
    model: str | os.PathLike[str] | None = None,
    backend: Backend | None = None,
    settings: Settings | None = None,
    include_status: bool = True,
    max_queue: int = 10_000,
) -> EventStream:
    """Detect on a live LSL stream (by ``name`` or ``source_id``) and iterate its messages.

    No server is involved: the service's pipeline runs in a thread of this process. The stream
    is resolved before this returns (waiting up to ``settings.resolve_timeout``, 10 s by
    default). Use it with ``with`` (or ``async with``), or call :meth:`EventStream.close`.
    """
    return EventStream(
        name,
        source_id,
        stream_type=stream_type,
        model=model,
        backend=backend,
        settings=settings,
        include_status=include_status,
        max_queue=max_queue,
    ).start()
