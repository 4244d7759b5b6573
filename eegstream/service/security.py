"""Who may talk to the service: the ``Host`` allow-list, browser origins and the token.

A page on any site whose name resolves to 127.0.0.1 can reach a service bound to loopback
(DNS rebinding): every request and websocket handshake must name an allowed ``Host``; a browser
websocket's ``Origin`` must be an allowed host or a configured CORS origin (never compared with
``Host``, which the page controls); with a token, every data endpoint needs it, compared in
constant time.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit

from fastapi import WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from eegstream.errors import EegstreamError
from eegstream.settings import Settings

log = logging.getLogger(__name__)

#: Websocket close reasons are limited to 123 bytes (of UTF-8) by RFC 6455.
_MAX_REASON_BYTES = 123
#: Host names that always reach this machine only (a page cannot own them).
LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
#: Listening addresses that mean "every interface" (no host name of their own).
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
CLOSE_FORBIDDEN_HOST = 1008  #: policy violation: a ``Host`` outside the allow-list


def token_ok(presented: str | None, expected: str | None) -> bool:
    """Constant-time token check; no token configured means open."""
    if expected is None:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def close_reason(text: str) -> str:
    """``text`` cut to a valid websocket close reason: at most 123 bytes of whole UTF-8 characters.

    A longer reason (a non-ASCII query value echoed back, say) makes the websocket library
    refuse the close frame, and the client would get no reason and no close code at all.
    """
    raw = text.encode("utf-8")
    if len(raw) <= _MAX_REASON_BYTES:
        return text
    return raw[:_MAX_REASON_BYTES].decode("utf-8", errors="ignore")


def _host_port(value: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a ``Host`` header or an allow-list entry, normalised; None if invalid.

    Names are compared case-insensitively and without a trailing dot; IPv6 literals without
    their brackets.
    """
    value = value.strip()
    if value.count(":") > 1 and not value.startswith("["):
        value = f"[{value}]"  # a bare IPv6 address (an allow-list entry such as ::1)
    try:
        parts = urlsplit(f"//{value}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, an unclosed bracket
        return None
    if not host or parts.username is not None or parts.password is not None or parts.path:
        return None
    return host.rstrip("."), port


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` names the service answers (its defence against DNS rebinding).

    A page on ``evil.example`` whose name is rebound to 127.0.0.1 talks to this service with
    ``Host: evil.example``: refusing unknown hosts stops it reading events, status and signal.
    An entry without a port allows any port.
    """

    entries: frozenset[tuple[str, int | None]]
    any_host: bool = False  #: ``*`` in the allow-list: the check is off

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        """Loopback names, the bound address (unless a wildcard), and ``settings.allowed_hosts``."""
        names = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
        if settings.host not in _WILDCARD_HOSTS:
            names.append(settings.host)
        entries: set[tuple[str, int | None]] = set()
        for name in names:
            if name == "*":
                continue
            parsed = _host_port(name)
            if parsed is None:
                raise EegstreamError(
                    f"allowed_hosts: {name!r} is not a host name (expected e.g. eeg.lab.local, "
                    "192.168.1.20, [fe80::1] or eeg.lab.local:8000, or * for any host)"
                )
            entries.add(parsed)
        return cls(frozenset(entries), "*" in settings.allowed_hosts)

    def allows(self, host: str | None) -> bool:
        """Whether a ``Host`` header (or an origin's ``host[:port]``) is one of the allowed."""
        if self.any_host:
            return True
        parsed = _host_port(host) if host else None
        if parsed is None:
            return False
        name, port = parsed
        return (name, None) in self.entries or (port is not None and parsed in self.entries)

    @staticmethod
    def refusal(host: str | None) -> str:
        """What to tell a client whose ``Host`` was refused (and its user what to change)."""
        if not host:
            return "request without a Host header refused: send the Host you connect to"
        parsed = _host_port(host)
        name = parsed[0] if parsed is not None else host
        return (
            f"host {host!r} is not allowed (protection against DNS rebinding): if you reach the "
            f"service by this name, start it with --allowed-host {name} "
            f"(or EEGSTREAM_ALLOWED_HOSTS={name}, or allowed_hosts in the config file)"
        )


class HostGuard:
    """ASGI middleware refusing requests whose ``Host`` the policy does not allow.

    REST gets 400 with a JSON ``detail``; a websocket is accepted, then closed with 1008 and the
    reason (a browser shows a close reason, not the body of a refused handshake).
    """

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an allowed request on; answer any other one here."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host")
        if self.policy.allows(host):
            await self.app(scope, receive, send)
            return
        detail = self.policy.refusal(host)
        log.warning("refused a %s request for %s: %s", scope["type"], scope["path"], detail)
        if scope["type"] == "http":
            await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send(
            {
                "type": "websocket.close",
                "code": CLOSE_FORBIDDEN_HOST,
                "reason": close_reason(detail),
            }
        )


def origin_ok(websocket: HTTPConnection, settings: Settings, policy: HostPolicy) -> bool:
    """Browsers send ``Origin``: accept an allowed host's page and the configured CORS origins.

    This stops another website open in the lab's browser from reading the events (websockets are
    not covered by CORS). ``Origin`` is never compared with ``Host``: a DNS-rebinding page sets
    both. Clients that send no ``Origin`` (scripts) are not browsers. With ``allowed_hosts``
    ``*`` (the host check off) the page's own origin (``Origin`` matching ``Host``) is accepted.
    """
    origin = websocket.headers.get("origin")
    if origin is None or "*" in settings.cors_origins or origin in settings.cors_origins:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    if policy.any_host:
        return netloc == websocket.headers.get("host")
    return policy.allows(netloc)


def query_token(websocket: WebSocket) -> str | None:
    """The value of the exact ``token`` query parameter (first one), percent-decoded.

    Only a parameter literally named ``token`` counts: a name that merely decodes to it
    (``%74oken``) or differs in case (``TOKEN``) does not authenticate, so that what the logs
    mask and what the server accepts are the same thing.
    """
    query: bytes = websocket.scope.get("query_string", b"")
    for part in query.split(b"&"):
        name, sep, value = part.partition(b"=")
        if name == b"token" and sep:
            return unquote_plus(value.decode("ascii", errors="replace"))
    return None
