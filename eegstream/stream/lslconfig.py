"""liblsl's start-up chatter: off by default, unless the user configured liblsl themselves.

liblsl logs INFO lines (config loaded, git build, network interfaces) to stderr when it starts,
before a command has printed anything useful. Its log level is a configuration setting, and a
configuration given as content takes precedence over every ``lsl_api.cfg`` (liblsl's search
order), so it is only set where the user has none: no ``LSLAPICFG`` and no file in the places
liblsl looks. A lab's own configuration (``KnownPeers``, ``ResolveScope``...) is never shadowed.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["QUIET_CONFIG", "quiet_liblsl", "user_config"]

#: Warnings and errors only (liblsl's loguru levels: -1 warning, 0 info).
QUIET_CONFIG = "[log]\nlevel = -1\n"


def user_config() -> Path | None:
    """The configuration liblsl would read on its own (``LSLAPICFG``, cwd, home, /etc), if any."""
    env = os.environ.get("LSLAPICFG")
    if env:
        return Path(env)
    for path in (
        Path.cwd() / "lsl_api.cfg",
        Path.home() / "lsl_api" / "lsl_api.cfg",
        Path("/etc/lsl_api/lsl_api.cfg"),
    ):
        if path.is_file():
            return path
    return None


def quiet_liblsl() -> bool:
    """Silence liblsl's INFO lines where the user has no liblsl configuration; True if done.

    Must run before any other liblsl call in the process (liblsl reads its configuration once).
    """
    found = user_config()
    if found is not None:
        log.debug("liblsl configuration %s is the user's: left as it is", found)
        return False
    import pylsl.lib

    setter = getattr(pylsl.lib.lib, "lsl_set_config_content", None)
    if setter is None:  # liblsl < 1.16
        return False
    setter.argtypes = [ctypes.c_char_p]
    setter.restype = None
    setter(QUIET_CONFIG.encode())
    return True
