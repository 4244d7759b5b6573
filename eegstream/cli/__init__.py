"""The ``eegstream`` command: one parser, one handler per subcommand, typed calls into the library.

``parser.py`` holds every flag; each handler module (``detect.py``: detect and evaluate,
``serve.py``: serve and demo, ``train.py``, ``calibrate.py``, ``bench.py``, ``recordings.py``:
info, simulate and replay) turns the parsed flags into settings, paths and numbers and calls a
library function that takes those, so no ``argparse.Namespace`` reaches the library. Handlers
import the library when they run: ``eegstream --help`` loads neither TensorFlow nor uvicorn.
"""

from eegstream.cli.parser import build_parser, command_settings
from eegstream.cli.run import main

__all__ = ["build_parser", "command_settings", "main"]
