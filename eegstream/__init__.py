"""eegstream: realtime blink / jaw-clench detection for Emotiv EEG streamed over LSL."""

import logging

from eegstream.errors import EegstreamError

__version__ = "0.1.0"
__all__ = ["EegstreamError", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
