"""The Python API (issue #17, part 2): detect, stream_events, to_annotations, the README example.

Real parts: the bundled model through ONNX Runtime, real MNE objects, a real LSL outlet on
loopback (conftest confines liblsl to this machine) for the live iterator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import eegstream
from eegstream.errors import EegstreamError
from eegstream.events import ArtifactEvent, Message, StatusMessage
from eegstream.io.emotiv import write_recording
from eegstream.io.recording import Recording
from eegstream.settings import ELECTRODES, Settings
from eegstream.stream.replay import Player

pytestmark = pytest.mark.skipif(
    not (Settings().model_dir / "model.onnx").is_file(),  # type: ignore[call-arg]
    reason="no model bundle: eegstream/models/default (or EEGSTREAM_MODEL_DIR) has not been trained yet",
)
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def simulated() -> Recording:
    from eegstream.simulate import simulate_recording

    return simulate_recording(60.0, 8401, blink_rate=18.0, clench_rate=6.0)


def test_import_is_light_and_all_names_resolve() -> None:
    code = (
        "import sys, eegstream\n"
        "heavy = [m for m in ('tensorflow', 'mne', 'pylsl', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(sorted(n for n in eegstream.__all__ if getattr(eegstream, n, None) is None))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert {"detect", "stream_events", "to_annotations", "ArtifactEvent"} <= set(eegstream.__all__)


def test_detect_on_array_raw_and_file_gives_the_offline_events(
    simulated: Recording, tmp_path: Path
) -> None:
    mne = pytest.importorskip("mne")
    csv = tmp_path / "sim.csv"
    write_recording(simulated, csv)
    from_file = eegstream.detect(csv)
    assert len(from_file) >= 8
    assert {e.label for e in from_file} == {"blink", "jaw_clench"}
    t0 = simulated.timestamps[0]
    # columns in another order, with a prefix and an unused channel
    order = list(reversed(range(14)))
    data = np.column_stack([simulated.data[:, order], np.zeros(simulated.n_samples)])
    names = [f"EEG.{ELECTRODES[i]}" for i in order] + ["Counter"]
    from_array = eegstream.detect(data, fs=128, channels=names)
    assert [e.label for e in from_array] == [e.label for e in from_file]
    np.testing.assert_allclose(
        [e.onset_lsl for e in from_array], [e.onset_lsl - t0 for e in from_file], atol=1e-4
    )
    raw = mne.io.RawArray(
        simulated.data.T * 1e-6, mne.create_info(list(ELECTRODES), 128.0, "eeg"), verbose="error"
    )
    meas = dt.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=dt.UTC)
    raw.set_meas_date(meas)
    from_raw = eegstream.detect(raw)
    assert [e.label for e in from_raw] == [e.label for e in from_file]
    np.testing.assert_allclose(  # volts -> microvolts: a wrong scale would find nothing
        [e.onset_unix - meas.timestamp() for e in from_raw],
        [e.onset_lsl for e in from_array],
        atol=1e-4,
    )


def test_detect_errors_name_the_argument(simulated: Recording) -> None:
    data = simulated.data
    with pytest.raises(EegstreamError, match=r"^fs: required with an array"):
        eegstream.detect(data)
    with pytest.raises(
        EegstreamError, match=r"channels: 14 name\(s\) .* the array looks transposed"
    ):
        eegstream.detect(data.T, fs=128, channels=list(ELECTRODES))
    with pytest.raises(
        EegstreamError, match=r"channels: required for an array of shape \(7680, 3\)"
    ):
        eegstream.detect(data[:, :3], fs=128)
    with pytest.raises(EegstreamError, match=r"data has no channel .*AF4.*; it has: AF3"):
        eegstream.detect(data[:, :13], fs=128, channels=list(ELECTRODES[:13]))
    with pytest.raises(EegstreamError, match=r"is sampled at 250 Hz"):
        eegstream.detect(data, fs=250, channels=list(ELECTRODES))
    with pytest.raises(EegstreamError, match=r"^data: expected a 2-D array"):
        eegstream.detect(data[:, 0], fs=128, channels=["AF3"])


def bad_samples(
    raw: object, onsets: npt.NDArray[np.float64], durations: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Samples inside [onset, onset + duration] of each span (seconds from the first sample)."""
    n = int(raw.n_times)  # type: ignore[attr-defined]
    t = np.arange(n) / 128.0
    bad = np.zeros(n, dtype=bool)
    for a, d in zip(onsets, durations, strict=True):
        bad |= (t >= a - 0.5 / 128) & (t <= a + d + 0.5 / 128)
    return bad


def test_annotations_make_mne_epochs_drop_exactly_the_artifact_epochs(simulated: Recording) -> None:
    mne = pytest.importorskip("mne")
    raw = mne.io.RawArray(
        simulated.data.T * 1e-6, mne.create_info(list(ELECTRODES), 128.0, "eeg"), verbose="error"
    )
    meas = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    raw.set_meas_date(meas)
    events = eegstream.detect(raw)
    ann = eegstream.to_annotations(events)
    assert ann.orig_time is not None
    assert list(ann.description) == [f"BAD_{e.label}" for e in events]
    if "extras" in ann.__dict__ or hasattr(ann, "extras"):
        assert [x["id"] for x in ann.extras] == [e.id for e in events]
    raw.set_annotations(ann)
    # where MNE put them: seconds from the first sample, as detected
    rel = raw.annotations.onset - raw.first_time
    np.testing.assert_allclose(rel, [e.onset_unix - meas.timestamp() for e in events], atol=1e-5)

    length = 128  # 1 s epochs, back to back
    starts = np.arange(0, raw.n_times - length, length)
    ev = np.column_stack([starts, np.zeros_like(starts), np.ones_like(starts)])
    epochs = mne.Epochs(
        raw,
        ev,
        tmin=0.0,
        tmax=(length - 1) / 128,
        baseline=None,
        reject_by_annotation=True,
        preload=True,
        verbose="error",
    )
    dropped = {i for i, why in enumerate(epochs.drop_log) if why}
    # expected: every epoch holding a sample of an artifact span (away from the span edges by
    # half a sample either way, so rounding at an edge cannot decide)
    inside = bad_samples(raw, rel, raw.annotations.duration)
    core = ~bad_samples(raw, rel + 1 / 128, np.maximum(raw.annotations.duration - 2 / 128, 0))
    expected = {i for i, s in enumerate(starts) if inside[s : s + length].any()}
    must = {i for i, s in enumerate(starts) if (~core[s : s + length]).any()}
    assert must <= dropped <= expected
    assert len(dropped) >= len(events) // 2
    assert len(epochs) == len(starts) - len(dropped)
    assert all(set(epochs.drop_log[i]) <= {"BAD_blink", "BAD_jaw_clench"} for i in dropped)


def test_to_annotations_clock_rules_and_fault_spans() -> None:
    mne = pytest.importorskip("mne")
    ev = ArtifactEvent(
        id="s-1",
        phase="final",
        stream_id="s",
        label="jaw_clench",
        onset_lsl=10.0,
        offset_lsl=10.5,
        onset_unix=10.0,
        offset_unix=10.5,
        duration=0.5,
        confidence=0.9,
        n_windows=4,
        detected_lsl=10.6,
        detected_unix=10.6,
    )
    onset_only = ev.model_copy(
        update={
            "id": "s-2",
            "phase": "onset",
            "onset_lsl": 20.0,
            "offset_lsl": 20.25,
            "onset_unix": 20.0,
        }
    )
    superseded = ev.model_copy(update={"phase": "onset"})  # its final is in the list
    fault = StatusMessage(
        stream_id="s", status="signal_fault", start_lsl=30.0, end_lsl=31.5, unix_time=31.6
    )
    ann = eegstream.to_annotations([superseded, ev, onset_only, fault])
    assert ann.orig_time is None  # seconds from the first sample: MNE's orig_time=None
    assert list(ann.description) == ["BAD_jaw_clench", "BAD_jaw_clench", "BAD_signal_fault"]
    np.testing.assert_allclose(ann.onset, [10.0, 20.0, 30.0])
    np.testing.assert_allclose(ann.duration, [0.5, 0.25, 1.5])
    unix = 1_700_000_000.25
    live = [e.model_copy(update={"onset_unix": e.onset_lsl + unix}) for e in (ev, onset_only)]
    ann = eegstream.to_annotations([*live, fault])
    assert ann.orig_time == dt.datetime.fromtimestamp(unix, dt.UTC)
    np.testing.assert_allclose(ann.onset, [10.0, 20.0, 30.0], atol=1e-6)
    when = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    ann = eegstream.to_annotations(live, orig_time=when)
    np.testing.assert_allclose(
        ann.onset, [e.onset_unix - when.timestamp() for e in live], atol=1e-6
    )
    with pytest.raises(EegstreamError, match=r"orig_time: expected 'auto', None or a datetime"):
        eegstream.to_annotations(live, orig_time="now")  # type: ignore[arg-type]
    assert isinstance(ann, mne.Annotations)


def collect_until_final(stream: eegstream.EventStream) -> list[Message]:
    got: list[Message] = []
    for m in stream:
        got.append(m)
        if isinstance(m, ArtifactEvent) and m.phase == "final":
            break
    return got


def test_stream_events_iterates_live_messages_until_closed(
    simulated: Recording, lsl_name: str, source_id: str
) -> None:
    with Player(simulated, name=lsl_name, source_id=source_id, speed=4.0, loop=True, markers=False):
        with pytest.raises(EegstreamError, match=r"give name=\.\.\. or source_id=\.\.\."):
            eegstream.stream_events()
        with eegstream.stream_events(source_id=source_id) as live:
            assert live.running
            assert live.stream_ids == [lsl_name]
            got = collect_until_final(live)
            live.close()
            rest = list(live)  # the flush after close, then the end
            live.close()  # twice is fine
        assert not live.running
        assert isinstance(got[0], StatusMessage)
        assert got[0].status == "connected"
        final = got[-1]
        assert isinstance(final, ArtifactEvent)
        assert any(
            isinstance(m, ArtifactEvent) and m.phase == "onset" and m.id == final.id for m in got
        )
        assert isinstance(rest[-1], StatusMessage)
        assert rest[-1].status == "stopped"
        assert list(live) == []

        async def read_async() -> list[Message]:
            async with eegstream.stream_events(name=lsl_name, include_status=False) as s:
                out: list[Message] = []
                async for m in s:
                    out.append(m)
                    if isinstance(m, ArtifactEvent) and m.phase == "final":
                        break
                return out

        got_async = asyncio.run(read_async())
        assert got_async
        assert all(isinstance(m, ArtifactEvent) for m in got_async)


class FailingEngine:
    """A real engine that breaks after a few calls: a fault injected into the pipeline thread."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.name = "failing"
        self.max_batch = 64
        self.calls = 0

    def infer(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("engine fell over")
        return self.engine.infer(features)  # type: ignore[attr-defined,no-any-return]

    def warmup(self) -> None:
        pass

    def close(self) -> None:
        self.engine.close()  # type: ignore[attr-defined]


def test_a_failure_in_the_pipeline_thread_surfaces_in_the_iterator(
    simulated: Recording, lsl_name: str, source_id: str
) -> None:
    with Player(simulated, name=lsl_name, source_id=source_id, speed=4.0, loop=True, markers=False):
        live = eegstream.EventStream(source_id=source_id).start()
        try:
            pipeline = live._pipeline
            assert pipeline is not None
            pipeline.engine = FailingEngine(pipeline.engine)  # type: ignore[assignment]
            seen: list[Message] = []

            def read_all() -> None:
                seen.extend(live)

            with pytest.raises(RuntimeError, match="engine fell over"):
                read_all()
            stopped = [m for m in seen if isinstance(m, StatusMessage) and m.status == "stopped"]
            assert stopped
            assert "engine fell over" in stopped[-1].detail["error"]
            assert list(live) == []  # raised once, then the iteration is over
        finally:
            live.close()


def readme_block(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, f"no python block under '## {title}'"
    return "\n".join(blocks)


def test_readme_use_from_python_runs(
    simulated: Recording,
    lsl_name: str,
    source_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("mne")
    code = readme_block("Use from Python")
    assert "eegstream.detect(" in code
    assert "eegstream.stream_events(" in code
    assert "eegstream.to_annotations(" in code
    monkeypatch.chdir(tmp_path)
    # the live part reads the stream the README names; give it one to read
    code = code.replace('"EmotivDataStream-EEG"', repr(lsl_name))
    with Player(simulated, name=lsl_name, source_id=source_id, speed=4.0, loop=True, markers=False):
        namespace: dict[str, object] = {}
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    assert isinstance(namespace["events"], list)
    assert namespace["events"]
    assert len(namespace["epochs"]) > 0  # type: ignore[arg-type]
