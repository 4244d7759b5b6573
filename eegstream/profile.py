"""A user profile: what ``eegstream calibrate`` learnt about one person, for one model.

One versioned JSON file (``alice.profile``)::

    {"format": "eegstream-profile/1", "name": "alice", "created": "...",
     "model": {"name": "default", "sha256": "<the bundle's content hash>"},
     "baseline": {"loc": [[...]], "spread": [[...]], "electrodes": [...], "rest_s": 48.0},
     "thresholds": {"blink": 0.6, "jaw_clench": 0.5},
     "calibration": {... the report: cues kept and missed, before/after figures, warnings}}

Applied (:func:`apply_profile`), the person baseline of every stream starts at ``baseline``,
warm (no 20 s warm-up, weighted as the calibration's rest), and each label's run starts at its
own threshold (``Settings.class_thresholds``). A profile is tied to the model it was made with:
the baseline is in that model's feature space and the thresholds are on its probabilities, so a
profile for another model is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eegstream.baseline import WARMUP_S, BaselinePrior
from eegstream.errors import EegstreamError
from eegstream.preprocess import F32, FeaturePipeline
from eegstream.settings import ARTIFACT_LABELS, Settings

if TYPE_CHECKING:
    from eegstream.bundle import ModelBundle

__all__ = ["PROFILE_FORMAT", "Profile", "apply_profile", "load_profile"]

PROFILE_FORMAT = "eegstream-profile/1"
#: The longest rest a profile's baseline weighs as (s): beyond it the live stream's own
#: resting windows take over at the baseline's usual pace anyway (its 120 s time constant).
MAX_WEIGHT_S: float = 120.0


@dataclass(frozen=True)
class Profile:
    """One person's calibration for one model (see the module docstring)."""

    name: str
    model_name: str
    model_sha256: str
    loc: F32  #: (electrodes, bins) resting log10 power location
    spread: F32  #: (electrodes, bins) its mean absolute deviation
    electrodes: tuple[str, ...]
    rest_s: float  #: seconds of calibration rest the baseline was measured on
    thresholds: dict[str, float]
    calibration: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def prior(self) -> BaselinePrior:
        """The person baseline's starting state: this person's rest, warm."""
        weight = float(min(max(self.rest_s, WARMUP_S), MAX_WEIGHT_S))
        return BaselinePrior(self.loc, self.spread, weight_s=weight, warm=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {
            "format": PROFILE_FORMAT,
            "name": self.name,
            "created": self.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "model": {"name": self.model_name, "sha256": self.model_sha256},
            "baseline": {
                "loc": np.round(self.loc, 5).tolist(),
                "spread": np.round(self.spread, 5).tolist(),
                "electrodes": list(self.electrodes),
                "rest_s": round(self.rest_s, 2),
                "estimator": "Huber-clipped mean of resting log10 power",
            },
            "thresholds": {k: round(v, 3) for k, v in self.thresholds.items()},
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<profile>") -> Profile:
        """Inverse of :meth:`to_dict`; every problem names the file and the key."""
        if not isinstance(data, Mapping):
            raise EegstreamError(
                f"profile {source} must hold a JSON object; got {type(data).__name__}; "
                "make it with `eegstream calibrate`"
            )
        fmt = data.get("format")
        if fmt != PROFILE_FORMAT:
            raise EegstreamError(
                f"profile {source}: format is {fmt!r}, expected {PROFILE_FORMAT!r}; this "
                "eegstream cannot read it: calibrate again with `eegstream calibrate`"
            )
        try:
            model = data["model"]
            base = data["baseline"]
            loc = np.asarray(base["loc"], np.float32)
            spread = np.asarray(base["spread"], np.float32)
            thresholds = {str(k): float(v) for k, v in dict(data["thresholds"]).items()}
            out = cls(
                name=str(data["name"]),
                model_name=str(model["name"]),
                model_sha256=str(model["sha256"]),
                loc=loc,
                spread=spread,
                electrodes=tuple(str(e) for e in base["electrodes"]),
                rest_s=float(base["rest_s"]),
                thresholds=thresholds,
                calibration=dict(data.get("calibration") or {}),
                created=str(data.get("created", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EegstreamError(
                f"profile {source} is damaged ({type(exc).__name__}: {exc}); expected the keys "
                "format, name, model, baseline, thresholds: calibrate again"
            ) from exc
        bad = [k for k, v in thresholds.items() if k not in ARTIFACT_LABELS or not 0 < v < 1]
        if bad:
            raise EegstreamError(
                f"profile {source}: thresholds {', '.join(f'{k}={thresholds[k]}' for k in bad)} "
                f"are not labels of {', '.join(ARTIFACT_LABELS)} with a value in (0, 1); "
                "calibrate again"
            )
        if loc.ndim != 2 or loc.shape != spread.shape or not np.all(np.isfinite(loc)):
            raise EegstreamError(
                f"profile {source}: baseline loc {loc.shape} and spread {spread.shape} must be "
                "equal finite (electrodes, bins) arrays; calibrate again"
            )
        if not np.all(spread > 0) or not math.isfinite(out.rest_s):
            raise EegstreamError(f"profile {source}: baseline spread must be > 0; calibrate again")
        return out

    def check_model(self, bundle: ModelBundle, source: str = "<profile>") -> None:
        """Refuse a profile made with another model (its numbers mean nothing to this one)."""
        if self.model_sha256 != bundle.sha256:
            raise EegstreamError(
                f"profile {source} was calibrated with model {self.model_name!r} "
                f"(sha256 {self.model_sha256[:12]}...) but the model in use is {bundle.name!r} "
                f"(sha256 {bundle.sha256[:12]}...); calibrate again with this model "
                "(`eegstream calibrate ... --model DIR`) or use the model it was made with"
            )
        if self.electrodes != tuple(bundle.features.electrodes) or self.loc.shape != tuple(
            bundle.scaler.shape
        ):
            raise EegstreamError(
                f"profile {source}: baseline for electrodes {', '.join(self.electrodes)} "
                f"{self.loc.shape} does not fit the model's {bundle.scaler.shape}; calibrate again"
            )

    def save(self, path: Path) -> None:
        """Write the profile whole or not at all (a temporary file renamed)."""
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EegstreamError(
                f"--out {path}: cannot write the profile ({exc.strerror or exc}); choose a "
                "writable file path"
            ) from None


def load_profile(path: Path | str) -> Profile:
    """Read a profile file (``--profile``), checked; not yet tied to a model."""
    p = Path(path)
    if not p.is_file():
        raise EegstreamError(
            f"--profile {p}: no such file; make one with `eegstream calibrate REC.csv --out {p}` "
            "or `eegstream calibrate --stream-name NAME --out FILE`"
        )
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EegstreamError(
            f"--profile {p} is not a readable JSON profile ({exc}); calibrate again"
        ) from exc
    return Profile.from_dict(data, str(p))


def apply_profile(
    profile: Profile | Path | str, bundle: ModelBundle, settings: Settings
) -> tuple[ModelBundle, Settings]:
    """The bundle with the person's baseline as its prior, and settings with their thresholds.

    Raises :class:`EegstreamError` for a profile of another model or a bundle without a person
    baseline (absolute features: there is nothing to start warm).
    """
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    source = str(profile) if not isinstance(profile, Profile) else prof.name
    prof.check_model(bundle, source)
    old = bundle.features
    if old.prior is None:
        raise EegstreamError(
            f"model {bundle.name} has absolute features (no person baseline in model.json), so "
            f"profile {source} cannot be applied; use a model trained with person baselines"
        )
    features = FeaturePipeline(old.scaler, old.electrodes, fs=old.fs, prior=prof.prior())
    new_settings = settings.model_copy(
        update={"class_thresholds": {**settings.class_thresholds, **prof.thresholds}}
    )
    return replace(bundle, features=features), new_settings
