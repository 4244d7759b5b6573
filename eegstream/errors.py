"""The one exception type users see: the CLI prints its message on one line and exits 2."""


class EegstreamError(Exception):
    """A problem with the user's input or environment, worded so the user can act on it.

    Messages name the argument or file, what was expected, what was received and what to do.
    """


class MissingChannelsError(EegstreamError):
    """A recording or stream lacks electrodes the model needs."""

    def __init__(self, source: str, missing: list[str], found: list[str]) -> None:
        self.missing = missing
        self.found = found
        super().__init__(
            f"{source} has no channel {', '.join(missing)} (detection needs "
            f"{', '.join(missing)}); it has: {', '.join(found) or 'no EEG channels'}"
        )


class StreamGoneError(EegstreamError):
    """A resolved stream's outlet closed before it could be opened (not a faulty stream)."""


class BackendUnavailableError(EegstreamError):
    """An inference backend was asked for by name but cannot run here."""
