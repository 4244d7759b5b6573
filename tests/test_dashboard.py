"""The dashboard in real headless Chromium, during a real replay -> pipeline -> service run.

Needs Debian's ``chromium`` (``scripts/ensure-chromium`` installs it); without it the test is
skipped with a reason, unless ``EEGSTREAM_REQUIRE_BROWSER=1`` (CI), where that is a failure.
The screenshot goes to ``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from eegstream.errors import EegstreamError

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SPEED = 4.0  # the demo's first artifact comes after its 30 s baseline: ~8 s at this speed

pytestmark = pytest.mark.browser


def _chromium() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        reason = "Debian chromium is not installed (run scripts/ensure-chromium)"
        if os.environ.get("EEGSTREAM_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + ", and EEGSTREAM_REQUIRE_BROWSER=1 requires the browser test")
        pytest.skip(reason)
    return path


def _page(browser: Any, errors: list[str]) -> Any:
    """A dashboard-sized page whose script errors and console errors land in ``errors``."""
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return page


def _require_model() -> None:
    from eegstream.bundle import ModelBundle
    from eegstream.settings import Settings

    try:
        ModelBundle.load(Settings().model_dir)  # type: ignore[call-arg]
    except EegstreamError as exc:
        pytest.skip(f"the default model bundle is not available yet: {exc}")


def test_dashboard_shows_live_signal_and_events(lsl_name: str, source_id: str) -> None:
    chromium = _chromium()
    _require_model()
    from playwright.sync_api import sync_playwright

    from eegstream.io.emotiv import read_recording
    from eegstream.service import create_app
    from eegstream.service.detection import preload
    from eegstream.service.run import BackgroundServer
    from eegstream.settings import Settings
    from eegstream.simulate import demo_recording_path
    from eegstream.stream.replay import Player

    token = "dash-token"
    settings = Settings(  # type: ignore[call-arg]
        port=0,
        marker_outlet=False,
        stream_name=[lsl_name],
        source_id=source_id,
        backend="onnxruntime",
        token=token,
    )
    recording = read_recording(demo_recording_path())
    errors: list[str] = []
    with Player(recording, name=lsl_name, source_id=source_id, speed=SPEED, markers=False):
        factory = preload(settings)
        with (
            BackgroundServer(create_app(settings, factory), settings) as server,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = _page(browser, errors)
                page.goto(f"{server.url}/?token={token}")
                page.wait_for_selector("#conn.on", timeout=20_000)
                # the signal arrives: the canvas has 10 s of 14 channels to draw
                page.wait_for_function(
                    "() => sig.channels.length === 14 && sig.size > 100", timeout=30_000
                )
                # a real detection appears in the list and as a shaded span
                row = page.wait_for_selector(".event-row", timeout=90_000)
                assert row is not None
                text = row.inner_text()
                assert "blink" in text or "jaw clench" in text, text
                assert page.evaluate("() => spans.size") >= 1
                # reloaded mid-demo, the page backfills the history: the earlier event is
                # listed (once) and shaded at once, not only the next one
                first_id = row.get_attribute("data-id")
                page.reload()
                page.wait_for_selector("#conn.on", timeout=20_000)
                page.wait_for_selector(f'.event-row[data-id="{first_id}"]', timeout=3_000)
                assert page.is_hidden("#no-events")
                # its span is among those drawn shaded (a reload used to leave it unshaded)
                assert page.evaluate(f"() => visibleSpans().includes(spans.get({first_id!r}))")
                assert page.evaluate(
                    "() => { const ids = [...document.querySelectorAll('.event-row')]"
                    ".map(r => r.dataset.id); return ids.length === new Set(ids).size; }"
                )
                # a trace never leaves its lane, however big the sample (+-100 uV scale)
                assert page.evaluate("() => laneY(100, 40, 1000, 100)") == 80
                assert page.evaluate("() => laneY(100, 40, -1000, 100)") == 120
                page.wait_for_function(
                    "() => document.querySelector('#ready').textContent === 'ready'", timeout=20_000
                )
                status: Any = page.inner_text("#status")
                assert "onnxruntime" in status
                assert lsl_name in status
                page.wait_for_timeout(3000)  # a few more seconds of scrolling for the screenshot
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
            finally:
                browser.close()
    assert errors == []
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_dashboard_picks_the_headset_whose_signal_it_shows(lsl_name: str) -> None:
    chromium = _chromium()
    _require_model()
    from playwright.sync_api import sync_playwright

    from eegstream.io.emotiv import read_recording
    from eegstream.service import create_app
    from eegstream.service.detection import preload
    from eegstream.service.run import BackgroundServer
    from eegstream.settings import Settings
    from eegstream.simulate import demo_recording_path
    from eegstream.stream.replay import Player

    names = [f"{lsl_name}-a", f"{lsl_name}-b"]
    settings = Settings(  # type: ignore[call-arg]
        port=0, marker_outlet=False, stream_name=names, backend="onnxruntime"
    )
    recording = read_recording(demo_recording_path())
    errors: list[str] = []
    players = [Player(recording, name=n, source_id=n, speed=SPEED, markers=False) for n in names]
    with players[0], players[1]:
        factory = preload(settings)
        with (
            BackgroundServer(create_app(settings, factory), settings) as server,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = _page(browser, errors)
                page.goto(f"{server.url}/?stream={names[1]}")
                # the picker appears with both headsets; the signal is the one asked for
                page.wait_for_selector("#stream-picker:not([hidden])", timeout=20_000)
                options = page.eval_on_selector_all("#stream option", "os => os.map(o => o.value)")
                assert sorted(options) == sorted(names)
                assert page.input_value("#stream") == names[1]
                page.wait_for_function(
                    f"() => sig.stream === {names[1]!r} && sig.size > 50", timeout=30_000
                )
                # switching headsets reconnects the signal to the other stream
                page.select_option("#stream", names[0])
                page.wait_for_function(
                    f"() => sig.stream === {names[0]!r} && sig.size > 50", timeout=30_000
                )
                assert names[0] in page.evaluate("() => location.search")
                # both headsets' events are listed with their stream; only the shown one's shade
                page.wait_for_function(
                    "() => new Set([...spans.values()].map(s => s.stream)).size === 2",
                    timeout=90_000,
                )
                assert page.evaluate(
                    f"() => visibleSpans().length > 0 && "
                    f"visibleSpans().every(s => s.stream === {names[0]!r})"
                )
                who = page.inner_text(".event-row .who")
                assert who in names
            finally:
                browser.close()
    assert errors == []
