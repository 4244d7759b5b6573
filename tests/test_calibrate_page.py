"""The dashboard's calibration: ``/calibrate`` in headless Chromium and the ``/calibration`` API.

The browser test runs the whole path for real: a simulated person's protocol session replayed
over LSL on loopback, ``create_app`` with the real pipeline under uvicorn, the page in Chromium
pressing start, the service's calibration thread with its own inlet and LSL cue markers, and the
profile it writes. The API tests run a real uvicorn without a pipeline (no stream: the refusals).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import wait_until
from test_dashboard import CHROMIUM_ARGS, _chromium, _page, _require_model

from eegstream.calibrate import CUE_LABELS, Protocol, simulate_protocol
from eegstream.io.recording import Recording
from eegstream.service.calibration_run import COUNTDOWN_S, CUE_SHOW_S, cue_state

#: A short protocol (33 s): 2 blinks, 1 clench, the shortest rests the API accepts (about).
SHORT = Protocol(blinks=2, clenches=1, rest_before_s=15.0, rest_after_s=4.0, seed=5)
SPEED = 4.0
#: Seconds of recording before the session, and of silence between them (see the browser test).
LEAD_S, GAP_S = 2.0, 32.0


def test_cue_state_walks_through_the_protocol() -> None:
    cues = SHORT.cues()
    duration = SHORT.duration
    first = cues[0]
    rest = cue_state(cues, duration, 1.0)
    assert (rest["phase"], rest["text"], rest["cue"]) == ("rest", "RELAX", None)
    assert rest["seconds_left"] == pytest.approx(first.time - COUNTDOWN_S - 1.0)
    down = cue_state(cues, duration, first.time - 2.5)
    assert down["phase"] == "countdown"
    assert down["text"] == f"{first.label.replace('_', ' ')} in 3".upper()
    assert down["cue"] == {"index": 1, "total": 3, "label": first.label}
    show = cue_state(cues, duration, first.time + 0.2)
    assert show["phase"] == "cue"
    assert show["text"] == {"blink": "BLINK NOW", "jaw_clench": "CLENCH YOUR JAW"}[first.label]
    assert show["seconds_left"] == pytest.approx(CUE_SHOW_S - 0.2)
    last = cue_state(cues, duration, cues[-1].time + CUE_SHOW_S + 0.1)
    assert last["phase"] == "rest"
    assert last["seconds_left"] == pytest.approx(duration - cues[-1].time - CUE_SHOW_S - 0.1)
    assert cue_state(cues, duration, duration)["phase"] == "finished"
    progress = [cue_state(cues, duration, t)["progress"] for t in np.arange(0, duration, 0.5)]
    assert progress == sorted(progress)
    assert progress[0] == 0.0
    assert progress[-1] > 0.98


def _with_lead_in(session: Recording) -> Recording:
    """The session after ``LEAD_S`` of its own rest and ``GAP_S`` of silence (no samples).

    The service's pipeline needs a stream before the page can offer it, but the calibration
    anchors its protocol at the first sample its own inlet receives: replayed, the lead-in
    gets the service going, the silence is when the page presses start, and the session's
    first sample is then the first the calibration sees, so its cues fall where the simulated
    person answers them. The lead-in is whole replay chunks (8 samples).
    """
    n = int(LEAD_S * session.fs)
    assert n % 8 == 0
    t0 = float(session.timestamps[0])
    lead_t = t0 - GAP_S - LEAD_S + np.arange(n) / session.fs
    return Recording(
        data=np.concatenate([session.data[:n], session.data]),
        timestamps=np.concatenate([lead_t, session.timestamps]),
        fs=session.fs,
        markers=[],
        source="<simulated calibration with a lead-in>",
    )


@pytest.mark.browser
def test_calibration_page_runs_the_protocol_and_shows_the_result(
    tmp_path: Path, lsl_name: str, source_id: str
) -> None:
    chromium = _chromium()
    _require_model()
    from playwright.sync_api import sync_playwright

    from eegstream.profile import load_profile
    from eegstream.service import create_app
    from eegstream.service.detection import preload
    from eegstream.service.run import BackgroundServer
    from eegstream.settings import Settings
    from eegstream.stream.replay import Player

    token = "cal-token"
    settings = Settings(  # type: ignore[call-arg]
        port=0,
        marker_outlet=False,
        stream_name=[lsl_name],
        source_id=source_id,
        backend="onnxruntime",
        token=token,
    )
    session = simulate_protocol(3301, SHORT)
    player = Player(
        _with_lead_in(session),
        name=lsl_name,
        source_id=source_id,
        speed=SPEED,
        markers=False,
        wait_for_consumer=30,
    )
    query = "&".join(
        f"{k}={v}"
        for k, v in {
            "token": token,
            "name": "alice",
            "blinks": SHORT.blinks,
            "clenches": SHORT.clenches,
            "rest_before_s": SHORT.rest_before_s,
            "rest_after_s": SHORT.rest_after_s,
            "seed": SHORT.seed,
        }.items()
    )
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = _page(browser, errors)
            with player:
                factory = preload(settings)
                app = create_app(settings, factory, profile_dir=tmp_path)
                with BackgroundServer(app, settings) as server:
                    # the replay starts when the service connects: the lead-in, then silence
                    page.goto(f"{server.url}/calibrate?{query}")
                    page.wait_for_selector("#start:not([disabled])", timeout=20_000)
                    assert page.is_hidden("#stream-picker")  # one headset: nothing to pick
                    page.click("#start")
                    seen: set[str] = set()
                    progress: list[float] = []

                    def watch() -> bool:
                        s = page.evaluate("() => cal.state")
                        if s is not None and s["state"] == "running":
                            seen.add(page.inner_text("#cue"))
                            progress.append(float(s["progress"]))
                        return s is not None and s["state"] in ("done", "failed", "cancelled")

                    assert wait_until(watch, timeout=90, interval=0.1)
                    state: Any = page.evaluate("() => cal.state")
                    assert state["state"] == "done", state["error"]
                    page.wait_for_selector("#result:not([hidden])", timeout=5_000)
                    rows = page.eval_on_selector_all(
                        "#classes tbody tr", "rs => rs.map(r => r.dataset.label)"
                    )
                    result_text = page.inner_text("#result")
                    bar = page.evaluate("() => document.getElementById('bar').style.width")
                    saved = page.inner_text("#saved")
                    # the download fetches the profile with the token header
                    with page.expect_download() as dl:
                        page.click("#download")
                    downloaded = Path(dl.value.path()).read_text(encoding="utf-8")
                    with httpx.Client(base_url=server.url) as client:
                        status = client.get(
                            "/status", headers={"Authorization": f"Bearer {token}"}
                        ).json()
        finally:
            browser.close()
    assert errors == []
    # the cues were shown in big letters, with the countdown and the rests between them
    assert {"RELAX", "BLINK NOW", "CLENCH YOUR JAW"} <= seen, seen
    assert any(text.endswith(" IN 3") or text.endswith(" IN 2") for text in seen), seen
    assert progress == sorted(progress)
    assert progress[0] < 0.3
    assert progress[-1] > 0.9
    assert bar == "100%"
    # the result: every cue answered, the figures and where the profile went
    assert rows == ["blink", "jaw_clench"]
    classes = state["result"]["classes"]
    assert classes["blink"]["cues"] == classes["blink"]["kept"] == SHORT.blinks
    assert classes["jaw_clench"]["cues"] == classes["jaw_clench"]["kept"] == SHORT.clenches
    assert "false events per minute" in result_text
    out = tmp_path / "alice.profile"
    assert saved == str(out)
    profile = load_profile(out)
    assert profile.name == "alice"
    assert profile.thresholds == state["result"]["thresholds"]
    assert json.loads(downloaded) == json.loads(out.read_text(encoding="utf-8"))
    assert profile.calibration["source"] == f"<live calibration of {lsl_name}>"
    assert profile.calibration["cue_labels"] == CUE_LABELS
    # calibrating does not change the running service's model (that needs --profile)
    assert status["model"]["profile"] is None


# --- the API's refusals (real uvicorn, no pipeline) ----------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Any:
    from eegstream.service import create_app
    from eegstream.service.run import BackgroundServer
    from eegstream.settings import Settings

    settings = Settings(port=0, marker_outlet=False, token="t0k")  # type: ignore[call-arg]
    with BackgroundServer(create_app(settings, None, profile_dir=tmp_path), settings) as srv:
        yield srv


def test_calibration_api_refusals_each_say_what_to_do(server: Any) -> None:
    auth = {"Authorization": "Bearer t0k"}
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/calibration").status_code == 401
        assert c.post("/calibration", json={}).status_code == 401
        assert c.get("/calibration", headers=auth).json()["state"] == "idle"
        page = c.get("/calibrate")  # the page itself is static, like the dashboard
        assert page.status_code == 200
        assert "calibrate.js" in page.text
        bad_host = c.post("/calibration", json={}, headers={**auth, "Host": "evil.example"})
        assert bad_host.status_code == 400
        assert "DNS rebinding" in bad_host.json()["detail"]
        other_site = c.post(
            "/calibration", json={}, headers={**auth, "Origin": "http://evil.example"}
        )
        assert other_site.status_code == 403
        assert "origin http://evil.example not allowed" in other_site.json()["detail"]
        form = c.post("/calibration", content="name=x", headers={**auth,
                      "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert form.status_code == 415
        assert "application/json" in form.json()["detail"]
        short = c.post("/calibration", json={"rest_before_s": 5}, headers=auth)
        assert short.status_code == 422
        assert short.json()["detail"][0]["loc"] == ["body", "rest_before_s"]
        name = c.post("/calibration", json={"name": "../x"}, headers=auth)
        assert name.status_code == 422
        none = c.post("/calibration", json={"name": "bob"}, headers=auth)
        assert none.status_code == 409
        assert "no stream is connected" in none.json()["detail"]
        cancel = c.delete("/calibration", headers=auth)
        assert cancel.status_code == 404
        assert c.get("/calibration/profile", headers=auth).status_code == 404
