"""Allowed hosts: which ``Host`` values this app answers, decided once per distinct value."""

from __future__ import annotations

import re
from collections.abc import Iterable

HOST_RE = re.compile(r"^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?$")
"""A host name or bracketed IPv6 literal, and an optional port (Django's validation)."""
MEMO_SIZE = 1024


def host_of(value: bytes) -> str | None:
    """The host name of a ``Host`` header value, lower-cased and without port; None if malformed."""
    text = value.decode("latin-1").strip().lower()
    match = HOST_RE.match(text)
    if match is None:
        return None
    return match.group(1).rstrip(".")


class AllowedHosts:
    """``[security] allowed_hosts``: exact names, ``*.example.com`` subdomain wildcards, ``*``."""

    def __init__(self, hosts: Iterable[str], www_redirect: bool = False) -> None:
        hosts = list(hosts)
        self.any = "*" in hosts
        self.exact = frozenset(h for h in hosts if not h.startswith("*"))
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))  # ".example.com"
        self.www_redirect = www_redirect
        self._seen: dict[bytes, str | bool] = {}

    def allows(self, name: str) -> bool:
        """Whether the host name ``name`` (no port) is allowed."""
        return self.any or name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    def decide(self, value: bytes | None) -> str | bool:
        """For a ``Host`` header value: True (allowed), False (400) or the ``www.`` name to
        redirect to. Remembered per distinct value (a bounded memo)."""
        if self.any:
            return True
        if value is None:
            return False
        known = self._seen.get(value)
        if known is not None:
            return known
        name = host_of(value)
        decision: str | bool = False
        if name is not None:
            if self.allows(name):
                decision = True
            elif self.www_redirect and not name.startswith("www.") and self.allows("www." + name):
                decision = "www." + value.decode("latin-1").strip().lower()
        if len(self._seen) >= MEMO_SIZE:
            self._seen.clear()
        self._seen[value] = decision
        return decision
