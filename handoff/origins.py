"""Which web pages may use the relay: the relay's own pages always, other sites only when listed in
``WARMLINE_ALLOWED_ORIGINS``. Browsers send ``Origin`` on every cross-site socket and API call; non-browser
clients (a site's backend, the tests' Socket.IO clients) send none and are judged by their credentials alone."""

from __future__ import annotations

from urllib.parse import urlsplit

from common.errors import RelayError


class OriginNotAllowed(RelayError):
    status = 403
    code = "origin_not_allowed"
    message = "This site may not use this chat: its origin is not in the relay's WARMLINE_ALLOWED_ORIGINS."


def parse_origins(setting: str | list[str]) -> frozenset[str]:
    items = setting.split(",") if isinstance(setting, str) else setting
    return frozenset(item.strip().rstrip("/").lower() for item in items if item.strip())


def check_socket(environ: dict[str, object], allowed_origins: frozenset[str]) -> None:
    """A socket's handshake (both namespaces): refused unless its page's origin is allowed."""
    origin, host = environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST")
    if not allowed(
        origin if isinstance(origin, str) else None, host if isinstance(host, str) else None, allowed_origins
    ):
        raise OriginNotAllowed()


def allowed(origin: str | None, host: str | None, allowed_origins: frozenset[str]) -> bool:
    """``host`` is the request's Host header: a page served by the relay itself is same-origin."""
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    if "*" in allowed_origins or origin in allowed_origins:
        return True
    return bool(host) and urlsplit(origin).netloc == str(host).lower()
