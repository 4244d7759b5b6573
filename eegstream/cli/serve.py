"""``eegstream serve`` and ``demo``: the live service, on the named streams or on the demo replay.

FastAPI and uvicorn load only when one of these runs (:mod:`eegstream.service.run`).
"""

from __future__ import annotations

import argparse

from eegstream.errors import EegstreamError

__all__ = ["run_demo", "run_serve"]


def run_serve(args: argparse.Namespace) -> int:
    """``eegstream serve``: detect on live LSL streams and serve the events until stopped."""
    from eegstream.service.run import serve

    return serve(args.settings)


def run_demo(args: argparse.Namespace) -> int:
    """``eegstream demo``: replay the bundled demo recording through LSL and serve it."""
    from eegstream.service.run import demo_service, serve_app, serve_for

    if args.speed <= 0:
        raise EegstreamError(
            f"--speed {args.speed}: the demo is live, so it needs a positive speed (1 = real time)"
        )
    if args.duration is not None and args.duration <= 0:
        raise EegstreamError(f"--duration {args.duration}: expected a number of seconds > 0")
    with demo_service(args.settings, speed=args.speed) as demo:
        if args.duration is None:
            return serve_app(demo.app, demo.settings, banner=demo.banner)
        published = serve_for(demo.app, demo.settings, demo.banner, args.duration)
        print(  # noqa: T201 - the command's last word
            f"stopped after {args.duration:g} s; {published} messages published", flush=True
        )
    return 0
