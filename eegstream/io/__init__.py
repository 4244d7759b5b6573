"""Recordings in and out: EmotivPRO CSV reader/writer and the shared Recording type."""

from eegstream.io.emotiv import read_recording, write_recording
from eegstream.io.recording import Marker, Recording

__all__ = ["Marker", "Recording", "read_recording", "write_recording"]
