"""README figures of ``eegstream calibrate`` on 5 unseen simulated subjects (issue #16).

Each subject is an unseen seed made extreme with ``dataclasses.replace`` (3x muscle tone, half-size
blinks, ...). Calibration runs on a simulated protocol session of that person; the figures come from
a second, 3-minute recording of the same person (another seed: other noise, other events) that
calibration never saw, detected without and with the profile. Run::

    .venv/bin/python scripts/calibration_figures.py
"""

from __future__ import annotations

import math
from dataclasses import replace

from eegstream.bundle import ModelBundle
from eegstream.calibrate import calibrate_recording, simulate_protocol
from eegstream.engines import load_engine
from eegstream.evaluate import evaluate_messages
from eegstream.offline import detect_messages
from eegstream.profile import apply_profile
from eegstream.settings import load_settings
from eegstream.simulate import draw_subject, simulate_with_truth

#: (seed, what is exaggerated, fields multiplied)
SUBJECTS: list[tuple[int, str, dict[str, float]]] = [
    (7001, "3x muscle tone", {"tonic_emg_uv": 3.0}),
    (7002, "half-size blinks", {"blink_amplitude_uv": 0.5}),
    (7003, "3x muscle tone, half-size blinks", {"tonic_emg_uv": 3.0, "blink_amplitude_uv": 0.5}),
    (7004, "3x noise floor, weak clenches", {"noise_floor_uv": 3.0, "clench_rms_uv": 0.5}),
    (7005, "relaxed jaw (tone / 4), 2x blinks", {"tonic_emg_uv": 0.25, "blink_amplitude_uv": 2.0}),
]


def main() -> None:
    """Print one table row per subject: F1 and false alarms without and with the profile."""
    settings = load_settings()
    bundle = ModelBundle.load(settings.model_dir)
    engine = load_engine("onnxruntime", bundle)
    rows = []
    for seed, what, scale in SUBJECTS:
        base = draw_subject(seed)
        subject = replace(base, **{k: getattr(base, k) * v for k, v in scale.items()})
        cal = simulate_protocol(seed, subject=subject)
        result = calibrate_recording(cal, bundle, engine, settings, name=f"sim{seed}")
        test, _ = simulate_with_truth(180.0, seed + 50_000, subject=subject)
        f1s = []
        for b, s in ((bundle, settings), apply_profile(result.profile, bundle, settings)):
            msgs = detect_messages(test, engine, b.features, s, progress=False)
            rep = evaluate_messages(msgs, test.markers, test.duration)
            f1s.append(
                (
                    rep.classes["blink"].f1,
                    rep.classes["jaw_clench"].f1,
                    rep.false_alarms_per_min,
                )
            )
        rows.append((seed, what, result, f1s))
    print(  # noqa: T201
        "| subject | exaggerated | thresholds blink / jaw | F1 blink / jaw before | after | "
        "false alarms/min before / after |"
    )
    print("|---|---|---|---|---|---|")  # noqa: T201
    for seed, what, result, ((b1, j1, fa1), (b2, j2, fa2)) in rows:
        th = result.profile.thresholds
        print(  # noqa: T201
            f"| {seed} | {what} | {th['blink']:.1f} / {th['jaw_clench']:.1f} | "
            f"{_f(b1)} / {_f(j1)} | {_f(b2)} / {_f(j2)} | {fa1:.2f} / {fa2:.2f} |"
        )


def _f(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


if __name__ == "__main__":
    main()
