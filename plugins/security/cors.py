"""CORS (the Fetch standard's protocol): preflights answered here, actual responses annotated.

Everything that does not depend on the request's ``Origin`` is encoded once. An allowed
origin is echoed (or ``*`` when every origin is allowed without credentials); every answer
that depends on the origin says ``Vary: Origin``, so no shared cache serves one origin's
answer to another. The security middleware runs outside the response cache, so cached
entries never hold these headers: they are added for each request's own origin.
"""

from __future__ import annotations

import re

from fastplug.plugins.security.settings import CorsSettings

Header = tuple[bytes, bytes]
MEMO_SIZE = 1024


def _pattern(origin: str) -> re.Pattern[str]:
    """``https://*.example.com`` (one or more labels) or ``http://localhost:*`` (any port)."""
    scheme, _, rest = origin.partition("://")
    host, colon, _ = rest.rpartition(":") if rest.endswith(":*") else (rest, "", "")
    parts = [re.escape(scheme + "://")]
    if host.startswith("*."):
        parts.append(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*" + re.escape(host[1:]))
    else:
        parts.append(re.escape(host))
    if colon:
        parts.append(r"(?::[0-9]{1,5})?")
    return re.compile("".join(parts) + r"\Z")


class Cors:
    """The compiled ``[security.cors]`` policy."""

    def __init__(self, conf: CorsSettings) -> None:
        origins = conf.allow_origins
        self.enabled = bool(origins)
        self.any_origin = "*" in origins
        self.exact = frozenset(o.encode() for o in origins if "*" not in o)
        self.patterns = tuple(_pattern(o) for o in origins if "*" in o and o != "*")
        self.credentials = conf.allow_credentials
        self.methods = frozenset(conf.allow_methods)
        self.any_header = "*" in conf.allow_headers
        self.allowed_headers = frozenset(conf.allow_headers) | {"accept", "accept-language", "content-language"}
        # "*" without credentials: one answer for everyone; otherwise the origin is echoed
        self.wildcard = self.any_origin and not self.credentials
        common: list[Header] = []
        if self.credentials:
            common.append((b"access-control-allow-credentials", b"true"))
        self.actual: tuple[Header, ...] = (
            *common,
            *(
                [(b"access-control-expose-headers", ", ".join(conf.expose_headers).encode())]
                if conf.expose_headers
                else []
            ),
        )
        self.preflight: tuple[Header, ...] = (
            *common,
            (b"access-control-allow-methods", ", ".join(conf.allow_methods).encode()),
            (b"access-control-max-age", str(conf.max_age).encode()),
        )
        self.listed_headers = ", ".join(sorted(self.allowed_headers)).encode()
        self._seen: dict[bytes, bool] = {}

    def allows(self, origin: bytes) -> bool:
        """Whether pages of ``origin`` may read this app's responses (memoised per value)."""
        if self.any_origin:
            return True
        known = self._seen.get(origin)
        if known is None:
            text = origin.decode("latin-1").lower()
            known = origin.lower() in self.exact or any(p.match(text) for p in self.patterns)
            if len(self._seen) >= MEMO_SIZE:
                self._seen.clear()
            self._seen[origin] = known
        return known

    def allow_origin(self, origin: bytes) -> Header:
        return (b"access-control-allow-origin", b"*" if self.wildcard else origin)

    def response_headers(self, origin: bytes | None) -> tuple[Header, ...]:
        """What an actual (not preflight) response adds for a request from ``origin``; ``Vary``
        is merged separately (:func:`~fastplug.plugins.security.headers.finished`)."""
        if origin is None or not self.enabled or not self.allows(origin):
            return ()
        return (self.allow_origin(origin), *self.actual)

    def preflight_answer(
        self, origin: bytes, method: bytes, requested: bytes | None
    ) -> tuple[int, list[Header], bytes]:
        """The answer to a preflight: 200 with the grants, or 400 naming what is not allowed."""
        problems = []
        if not self.enabled or not self.allows(origin):
            problems.append("origin")
        if method.decode("latin-1").strip().upper() not in self.methods:
            problems.append("method")
        names = [h.strip().lower() for h in requested.decode("latin-1").split(",") if h.strip()] if requested else []
        if not self.any_header and any(name not in self.allowed_headers for name in names):
            problems.append("headers")
        vary = [(b"vary", b"Origin")] if not self.wildcard else []
        if problems:
            body = b'{"detail":"CORS preflight refused: ' + ", ".join(problems).encode() + b' not allowed"}'
            return 400, [(b"content-type", b"application/json"), *vary], body
        allowed = requested if self.any_header and requested else self.listed_headers
        headers = [self.allow_origin(origin), *self.preflight, (b"access-control-allow-headers", allowed), *vary]
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
        return 200, headers, b"OK"
