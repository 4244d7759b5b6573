"""The one settings object and the fixed facts of the Emotiv montage and the model.

Settings come from (highest first) CLI flags, ``EEGSTREAM_*`` environment variables, an optional
TOML/JSON/YAML config file (``EEGSTREAM_CONFIG``), then the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from eegstream.errors import EegstreamError

#: The 14 Emotiv EPOC electrodes in Emotiv's own order (10-20 system).
ELECTRODES: tuple[str, ...] = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip
#: The 10 electrodes the classifier reads (the frontal/temporal ones where blinks and EMG show).
MODEL_ELECTRODES: tuple[str, ...] = (
    "AF3", "F7", "F3", "FC5", "T7", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip
#: Indices of MODEL_ELECTRODES inside ELECTRODES (computed, never hand-written).
MODEL_INDEX: tuple[int, ...] = tuple(ELECTRODES.index(e) for e in MODEL_ELECTRODES)
#: Output classes of the model, in output order.
CLASSES: tuple[str, ...] = ("blink", "jaw_clench", "nothing")
#: The artifact labels (every class but "nothing").
ARTIFACT_LABELS: tuple[str, ...] = CLASSES[:2]
#: Default EmotivPRO marker values.
DEFAULT_MARKER_LABELS: dict[int, str] = {22: "blink", 23: "jaw_clench"}

FS: int = 128  #: model sampling rate (Hz)
WINDOW: int = 64  #: samples per window (0.5 s)
PRE: int = 26  #: samples before the onset inside a window (0.2 s at 128 Hz, rounded)
POST: int = WINDOW - PRE  #: samples from the onset to the window end (0.3 s)
BASELINE_S: float = 30.0  #: seconds averaged for the per-channel baseline
BAND: tuple[float, float] = (1.0, 50.0)  #: band-pass edges (Hz)
FILTER_ORDER: int = 5
N_BINS: int = WINDOW // 2 + 1  #: Welch bins (33)

Backend = Literal["auto", "tensorrt", "onnxruntime", "onnxruntime-cuda", "keras"]
#: Every ``--backend`` / ``EEGSTREAM_BACKEND`` value (the one list; engines.ENGINE_NAMES is it
#: without ``auto``).
BACKENDS: tuple[str, ...] = get_args(Backend)

#: The shipped model bundle: package data (``eegstream/models/default``), so every install has it.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"


def default_model_dir() -> Path:
    """Where the bundled model lives: inside the package, in a checkout and in any install alike.

    Package data rather than a folder beside the package: a wheel (``pip install eegstream``)
    carries only what is inside ``eegstream/``, and ``--model`` must not be needed to start.
    """
    return DEFAULT_MODEL_DIR


class Settings(BaseSettings):
    """Every tunable of the service, detector and stream, validated once."""

    model_config = SettingsConfigDict(env_prefix="EEGSTREAM_", extra="forbid")

    # model and inference
    model_dir: Path = Field(default_factory=default_model_dir)
    backend: Backend = "auto"
    max_batch: int = Field(64, ge=1, le=4096)

    # stream selection
    stream_name: Annotated[list[str], NoDecode] = Field(default_factory=list)
    stream_type: str = "EEG"
    source_id: str | None = None
    resolve_timeout: float = Field(10.0, gt=0)
    discover: bool = False

    # detector
    hop: int = Field(8, ge=1, le=64, description="samples between windows (8 = 62.5 ms)")
    threshold: float = Field(0.6, gt=0, lt=1, description="min class probability for a window")
    class_thresholds: dict[Literal["blink", "jaw_clench"], Annotated[float, Field(gt=0, lt=1)]] = (
        Field(
            default_factory=dict,
            description="per-label threshold overriding `threshold` (a user profile sets them)",
        )
    )
    profile: Path | None = Field(
        None, description="user profile from `eegstream calibrate` (baseline and thresholds)"
    )
    profile_dir: Path = Field(
        Path("profiles"), description="folder the dashboard's calibrations save profiles in"
    )
    min_windows: int = Field(
        3,
        ge=1,
        description="consecutive windows that confirm an event (3 = 125 ms after the first)",
    )
    min_duration: float = Field(0.0, ge=0, description="seconds; shorter events are dropped")
    refractory: float = Field(
        0.25, ge=0, description="seconds after an event's end before the next"
    )
    max_duration: float = Field(3.0, gt=0, description="seconds; longer runs are split")
    fault_limit_uv: float = Field(1000.0, gt=0, description="|x - baseline| that is a signal fault")
    buffer_seconds: float = Field(60.0, ge=30)

    # service
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names served besides loopback and the bound address ('*' = any)",
    )
    history_size: int = Field(10_000, ge=1)
    client_queue: int = Field(1_000, ge=1)
    send_timeout: float = Field(2.0, gt=0)
    event_log: Path | None = None
    marker_outlet: bool = True
    marker_outlet_name: str = "eegstream-artifacts"
    marker_format: Literal["text", "json"] = Field(
        "text",
        description=(
            "LSL marker strings: 'text' = '<label>/onset' stamped at the onset and "
            "'<label>/offset' at the offset (labels blink, jaw_clench, signal_fault); "
            "'json' = each event's JSON, stamped at the onset"
        ),
    )
    # --- added by H7 (service) for the websocket endpoints; lead: keep or move as you see fit ---
    ws_ping_interval: float = Field(
        15.0, gt=0, description="seconds between keep-alive pings (protocol ping + {'type':'ping'})"
    )
    ws_max_message: int = Field(
        4096, ge=64, description="bytes; a larger incoming websocket message closes with 1009"
    )
    signal_rate: int = Field(
        32, ge=1, le=128, description="Hz of the dashboard's decimated signal (divides 128)"
    )
    # --- end of H7 block ---

    @field_validator("stream_name", "cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        """Accept ``a,b`` from the environment as well as lists."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


# --- the one road: flags > EEGSTREAM_* > config file > defaults ----------------------------


_ConfigSource = Callable[[type[BaseSettings], Path], PydanticBaseSettingsSource]
_CONFIG_SOURCES: dict[str, _ConfigSource] = {
    ".toml": TomlConfigSettingsSource,
    ".json": JsonConfigSettingsSource,
    ".yaml": YamlConfigSettingsSource,
    ".yml": YamlConfigSettingsSource,
}


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """The one road to settings, for every command and the Python API.

    Highest first: ``overrides`` (CLI flags), ``EEGSTREAM_*``, the config file (``config``,
    default ``$EEGSTREAM_CONFIG``; TOML, JSON or YAML by its suffix), the defaults. ``None``
    overrides are ignored (a flag that was not given).
    """
    values = {k: v for k, v in overrides.items() if v is not None}
    env_config = os.environ.get("EEGSTREAM_CONFIG")
    path = config if config is not None else (Path(env_config) if env_config else None)
    try:
        if path is None:
            return Settings(**values)
        source, file_path = _config_source(path), path

        class _WithFile(Settings):
            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                return init_settings, env_settings, source(settings_cls, file_path)

        # validate once more as the plain Settings class (no env reading: values are final)
        return Settings.model_validate(_WithFile(**values).model_dump())
    except ValidationError as exc:
        where = f"config file {path}, " if path is not None else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise EegstreamError(
            f"invalid settings ({where}EEGSTREAM_* environment or flags): {problems}; "
            "fix these values (see `eegstream serve --help` and the README's settings table)"
        ) from None


def _config_source(path: Path) -> _ConfigSource:
    """The pydantic-settings source for a config file, after checking that it can be read."""
    if not path.is_file():
        raise EegstreamError(
            f"--config {path}: no such file; give the path of a TOML, JSON or YAML settings file"
        )
    source = _CONFIG_SOURCES.get(path.suffix.lower())
    if source is None:
        raise EegstreamError(
            f"--config {path}: unknown settings format {path.suffix or '(no suffix)'!r}; "
            f"expected one of {', '.join(_CONFIG_SOURCES)}"
        )
    if source is YamlConfigSettingsSource:
        try:
            import yaml  # noqa: F401
        except ImportError:
            raise EegstreamError(
                f"--config {path}: YAML settings need PyYAML; `pip install pyyaml` or use TOML"
            ) from None
    return source
