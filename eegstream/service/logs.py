"""Credential-like query values masked in every log line the service writes.

Clients may pass the token as ``?token=`` (browsers cannot set headers on a websocket), and
uvicorn logs each request line with its query: without this, the token would sit in the logs.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

__all__ = ["redact_query", "redact_secrets_in_logs"]

#: Query parameter names (decoded, case-folded) whose values never reach a log line.
_SECRET_NAME = re.compile(r"tok|secret|pass|pwd|auth|key|sig|session|cred")
#: A query parameter in a log line: after ``?``/``&``/``;``, up to ``&``, ``#``, a blank or ``"``.
_QUERY_PARAM = re.compile(r"(?<=[?&;])([^=&#\s\"?]+)=([^&#\s\"]*)")


def _secret_name(name: str) -> bool:
    """Whether a (raw, maybe percent-encoded) parameter name looks like a credential."""
    for _ in range(3):  # %2574oken decodes to %74oken, then to token
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return _SECRET_NAME.search(name.casefold()) is not None


def redact_query(text: str) -> str:
    """``text`` with the whole value of every credential-like query parameter replaced by ``***``.

    Names are matched decoded and case-insensitively (``%74oken``, ``TOKEN``, ``api_key``), so a
    mistyped or disguised parameter is masked too: it may hold the real token.
    """
    if "=" not in text:
        return text
    return _QUERY_PARAM.sub(lambda m: f"{m[1]}=***" if _secret_name(m[1]) else m[0], text)


class _RedactQuery(logging.Filter):
    """Mask credential-like query values in every record (message, arguments and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact_query(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: logging reports it itself
            return True
        if redact_query(message) != message:  # e.g. a URL inside a non-string argument
            record.msg, record.args = redact_query(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_query(logging.Formatter().formatException(record.exc_info))
        return True


_REDACTOR = _RedactQuery()
#: Loggers whose records the service writes: uvicorn's (access log, websocket handshakes and
#: errors) and the service's own. A logger's filter sees only records made on it, not those
#: propagating from its children, hence every name.
_REDACTED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "eegstream",
    "eegstream.service",
    "eegstream.service.api",
    "eegstream.service.state",
    "eegstream.service.websocket",
    "eegstream.service.hub",
    "eegstream.service.run",
    "eegstream.service.detection",
    "eegstream.service.markers_out",
    "eegstream.service.metrics",
)


def redact_secrets_in_logs() -> None:
    """Install the query redaction on the service's loggers and on the root's handlers (once).

    The root's handlers (the CLI's stderr, a test's capture) also see records of loggers not
    listed here (asyncio's, a library's), so every line the process writes is covered.
    """
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
    for handler in logging.getLogger().handlers:
        if _REDACTOR not in handler.filters:
            handler.addFilter(_REDACTOR)
