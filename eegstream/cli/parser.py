"""The ``eegstream`` argument parser: every flag of every command, and the flags' settings.

In one place so the commands share their flags and help texts. The handler modules it names
import the library only when a handler runs, so ``eegstream --help`` loads no engine, no
TensorFlow and no uvicorn.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eegstream import __version__
from eegstream.cli import bench, calibrate, detect, recordings, serve, train
from eegstream.settings import BACKENDS, Settings, load_settings

__all__ = ["RECORDING_HELP", "build_parser", "command_settings"]


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="inference engine; auto = TensorRT when it can run, else ONNX Runtime "
        "(default: EEGSTREAM_BACKEND, the config file, else auto)",
    )
    p.add_argument(
        "--model", type=Path, default=None, help="model bundle folder (default: the bundled model)"
    )


def _add_settings(p: argparse.ArgumentParser) -> None:
    """The settings flags every detecting command shares (flags > env > config file > defaults)."""
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (TOML, JSON or YAML; default: $EEGSTREAM_CONFIG)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="min class probability for a window (default: 0.6)",
    )
    p.add_argument(
        "--min-windows",
        type=int,
        default=None,
        help="consecutive windows that confirm an event (default: 3)",
    )


#: Flag (argparse dest) -> Settings field, for every flag that is a setting. A flag a command
#: does not have, or did not get, leaves the field to the environment, the file and the defaults.
_SETTING_FLAGS: dict[str, str] = {
    "backend": "backend",
    "model": "model_dir",
    "profile": "profile",
    "threshold": "threshold",
    "min_windows": "min_windows",
    "stream_name": "stream_name",
    "stream_type": "stream_type",
    "source_id": "source_id",
    "resolve_timeout": "resolve_timeout",
    "host": "host",
    "port": "port",
    "allowed_host": "allowed_hosts",
    "event_log": "event_log",
    "marker_format": "marker_format",
    "profile_dir": "profile_dir",
}


def command_settings(args: argparse.Namespace) -> Settings:
    """The settings of one command: its flags over ``EEGSTREAM_*`` over the config file.

    Every command goes through here (``main`` stores the result as ``args.settings``, where
    the handlers read it), so ``detect`` and ``serve`` given the same file, variables and flags
    agree.
    """
    overrides: dict[str, Any] = {
        field: getattr(args, flag, None) for flag, field in _SETTING_FLAGS.items()
    }
    if args.command == "bench":  # bench --backend picks engines to compare, not a setting
        overrides["backend"] = None
    if getattr(args, "discover", False):
        overrides["discover"] = True
    return load_settings(getattr(args, "config", None), **overrides)


def _add_epoch_folder(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--epochs",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"folder of labelled epochs <gesture>_<n>.csv: {what}",
    )
    p.add_argument(
        "--label-map",
        default=None,
        metavar="G=CLASS,...",
        help="gesture -> blink|jaw_clench|nothing (default: the MusEEG gestures, "
        "hardblink=blink,bitelowerlip=jaw_clench, the rest nothing)",
    )
    p.add_argument(
        "--epoch-fs",
        type=float,
        default=256.0,
        help="sampling rate of the epoch files (128 or 256)",
    )


#: What an offline command reads (help text).
RECORDING_HELP = "EmotivPRO CSV (.csv/.csv.gz), or EDF/BDF/FIF through MNE (eegstream[mne])"


def _add_marker_map(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--marker-map",
        default=None,
        metavar="CODE=LABEL,...",
        help="your own marker labels, e.g. 33024=blink,33025=jaw_clench (win over the "
        "_intervalMarker.csv type column and the default codes 22=blink, 23=jaw_clench)",
    )


def _add_stream_select(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stream-name", action="append", default=None, help="LSL stream name (repeatable)"
    )
    p.add_argument("--stream-type", default=None, help="LSL stream type (default: EEG)")
    p.add_argument("--source-id", default=None, help="LSL source id")
    p.add_argument(
        "--resolve-timeout", type=float, default=None, help="seconds to wait for the stream"
    )


def _add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="user profile from `eegstream calibrate` (the person's baseline and thresholds)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by tests to check every ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="eegstream",
        description="Realtime blink / jaw-clench detection for Emotiv EEG over LSL.",
    )
    parser.add_argument("--version", action="version", version=f"eegstream {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(handler=handler)
        return p

    p = add(
        "info",
        recordings.run_info,
        "Summarise a recording: rate, channels, markers, signal quality.",
    )
    p.add_argument("file", type=Path, help=f"{RECORDING_HELP}, or a plain CSV of channel columns")
    p.add_argument("--fs", type=float, default=None, help="sampling rate when the file lacks one")

    p = add(
        "simulate",
        recordings.run_simulate,
        "Write a realistic simulated EmotivPRO recording with markers.",
    )
    p.add_argument("out", type=Path, help="output CSV path")
    p.add_argument("--duration", type=float, default=300.0, help="seconds (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same file")
    p.add_argument("--fs", type=int, default=128, choices=(128, 256), help="sampling rate (Hz)")
    p.add_argument("--blink-rate", type=float, default=None, help="blinks per minute")
    p.add_argument("--clench-rate", type=float, default=None, help="jaw clenches per minute")
    p.add_argument(
        "--subject-variability", type=float, default=1.0, help="0 = average subject, 1 = realistic"
    )
    p.add_argument(
        "--no-confounders", action="store_true", help="no eye movements, pops, drop-outs"
    )

    p = add(
        "train", train.run_train, "Train the CNN on marker-labelled recordings and export a bundle."
    )
    p.add_argument(
        "recordings", type=Path, nargs="*", help=f"recordings with markers: {RECORDING_HELP}"
    )
    _add_marker_map(p)
    p.add_argument("--simulate", type=int, default=0, help="also train on N simulated subjects")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    _add_epoch_folder(p, "train on its training part (every epoch but each third), mixed in")
    p.add_argument(
        "--max-epochs", type=int, default=60, help="maximum training epochs (early stopping)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--sim-duration", type=float, default=240.0, help="seconds per simulated subject"
    )

    p = add("detect", detect.run_detect, "Detect artifacts in a recording, as fast as possible.")
    p.add_argument("file", type=Path, help=f"recording: {RECORDING_HELP}")
    _add_backend(p)
    _add_settings(p)
    p.add_argument("--output", "-o", default="-", help="output file, or - for stdout (default)")
    p.add_argument(
        "--format",
        choices=("jsonl", "bids", "mne"),
        default="jsonl",
        help="output format; mne = an annotations file (-o NAME.fif, .txt or .csv) that "
        "mne.read_annotations reads (default: jsonl)",
    )
    _add_marker_map(p)
    _add_profile(p)

    p = add("evaluate", detect.run_evaluate, "Compare detections with the recordings' markers.")
    p.add_argument(
        "files", type=Path, nargs="*", help=f"marker-labelled recordings: {RECORDING_HELP}"
    )
    _add_backend(p)
    _add_settings(p)
    _add_marker_map(p)
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    _add_epoch_folder(p, "report per gesture and on a session joined from its held-out part")
    p.add_argument(
        "--part",
        choices=("held-out", "train", "all"),
        default="held-out",
        help="which epochs of --epochs (default: the held-out third no training sees)",
    )
    p.add_argument(
        "--plot", type=Path, default=None, help="with --epochs: draw the table and a timeline (PNG)"
    )
    p.add_argument(
        "--as-labelled",
        action="store_true",
        help="with --epochs: keep rest epochs that hold a spontaneous blink as rest (default: "
        "they count as blinks, gesture neutral_blink)",
    )
    _add_profile(p)

    p = add(
        "calibrate",
        calibrate.run_calibrate,
        "Calibrate to a person: a two-minute protocol of cued blinks and jaw clenches -> profile.",
    )
    p.add_argument(
        "file",
        type=Path,
        nargs="?",
        default=None,
        help="recording of the protocol with cue markers (cue_blink / cue_jaw_clench, 41 / 42)",
    )
    p.add_argument("--out", type=Path, required=True, help="profile file to write")
    p.add_argument("--name", default=None, help="the person's name (default: --out's stem)")
    _add_stream_select(p)
    p.add_argument(
        "--epochs",
        type=Path,
        default=None,
        metavar="DIR",
        help="labelled epochs: join their training part into a protocol session",
    )
    p.add_argument("--epoch-fs", type=float, default=256.0, help="sampling rate of the epoch files")
    p.add_argument("--blinks", type=int, default=10, help="blink cues (default: 10)")
    p.add_argument("--clenches", type=int, default=6, help="jaw-clench cues (default: 6)")
    p.add_argument("--seed", type=int, default=0, help="cue order and spacing")
    p.add_argument(
        "--marker-name",
        default="eegstream-calibration",
        help="live: LSL marker stream the cues are pushed on (for XDF recordings)",
    )
    p.add_argument("--save-recording", type=Path, default=None, help="live: also write the CSV")
    _add_backend(p)
    _add_settings(p)

    p = add(
        "replay",
        recordings.run_replay,
        "Publish a recording as a live LSL stream (plus its markers).",
    )
    p.add_argument(
        "file", type=Path, nargs="?", default=None, help=f"{RECORDING_HELP} (default: demo)"
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="1 = real time, 0 = as fast as possible"
    )
    p.add_argument("--loop", action="store_true", help="start again at the end")
    p.add_argument("--name", default="EmotivDataStream-EEG", help="LSL stream name")
    p.add_argument("--type", default="EEG", help="LSL stream type")
    p.add_argument("--source-id", default=None, help="LSL source id (default: from the file)")

    p = add(
        "serve",
        serve.run_serve,
        "Detect artifacts on live LSL streams and serve them over HTTP/websocket.",
    )
    _add_stream_select(p)
    p.add_argument(
        "--discover",
        action="store_true",
        help="also attach every stream of --stream-type that appears (detached 30 s after it goes)",
    )
    p.add_argument("--host", default=None, help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: 8000)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="also answer requests for this Host name (repeatable; '*' = any; loopback names and "
        "the --host address always work)",
    )
    p.add_argument("--event-log", type=Path, default=None, help="append events to this JSONL file")
    p.add_argument(
        "--marker-format",
        choices=("text", "json"),
        default=None,
        help="LSL marker stream: text (blink/onset, blink/offset, ...) or json (default: text)",
    )
    p.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="folder the dashboard's /calibrate saves profiles in (default: ./profiles)",
    )
    _add_settings(p)
    _add_profile(p)
    _add_backend(p)

    p = add("demo", serve.run_demo, "Replay the bundled demo recording and serve its detections.")
    p.add_argument("--host", default=None, help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: 8000)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="also answer requests for this Host name (repeatable; '*' = any; loopback names and "
        "the --host address always work)",
    )
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed")
    _add_backend(p)
    _add_settings(p)

    p = add(
        "bench",
        bench.run_bench,
        "Measure features, every engine and the original pipeline; print JSON.",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--calls", type=int, default=1000, help="batch-1 calls per engine")
    p.add_argument("--e2e", action="store_true", help="end-to-end multi-headset benchmark")
    p.add_argument(
        "--soak", type=float, default=None, help="soak: replay at high speed for N minutes"
    )
    p.add_argument(
        "--headsets",
        default=None,
        help="--e2e: headset counts to try, comma-separated (default: 1,8,32,64; --soak: 1)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="--e2e: measured seconds per count (default: 60)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="replay speed (default: 1 for --e2e, 16 for --soak)",
    )
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tests: few calls
    _add_backend(p)
    return parser
