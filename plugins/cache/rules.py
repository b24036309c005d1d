"""RFC 9111 for a shared cache: whether a response may be stored, for how long, varying on what.

A handler that sends its own ``Cache-Control`` or ``Vary`` is obeyed: ``no-store``,
``private``, ``no-cache``, ``max-age=0``/``s-maxage=0``, an ``Expires`` in the past and
``Vary: *`` are never stored; ``s-maxage``, else ``max-age``, else ``Expires`` is the
freshness; the request headers named in ``Vary`` become part of the key.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

MAX_VARY = 16
"""Request headers one route may vary on; a response naming more is not stored."""
NEVER_STORED = frozenset((b"no-store", b"private", b"no-cache"))


@dataclass(frozen=True, slots=True)
class Storable:
    """How to store one response: its freshness, the ``Cache-Control`` to send on hits
    (None: the route's configured one), the request headers it varies on (lower case), and
    whether it may be served stale."""

    ttl: float
    cache_control: bytes | None
    vary: tuple[bytes, ...]
    may_be_stale: bool


def directives(value: bytes) -> dict[bytes, bytes]:
    """``b'public, max-age=60, no-cache="set-cookie"'`` -> ``{b"public": b"", b"max-age": b"60", ...}``
    (names lower-cased, quoted values unquoted; a comma inside quotes does not split)."""
    out: dict[bytes, bytes] = {}
    parts: list[bytes] = []
    quoted = False
    for piece in value.split(b","):
        if quoted:
            parts[-1] += b"," + piece
        else:
            parts.append(piece)
        if piece.count(b'"') % 2:
            quoted = not quoted
    for part in parts:
        name, _, argument = part.strip().partition(b"=")
        name = name.strip().lower()
        if name:
            out.setdefault(name, argument.strip().strip(b'"'))
    return out


def _seconds(argument: bytes) -> int | None:
    """A delta-seconds argument, or None when it is not one (RFC 9111 1.2.2)."""
    return int(argument) if argument.isdigit() else None


def _expires_in(value: bytes, now: float) -> float | None:
    """Seconds until an ``Expires`` date; None if it is invalid (which means already expired)."""
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def vary_names(value: bytes) -> tuple[bytes, ...]:
    """The lower-cased field names of a ``Vary`` value (``*`` included as it is)."""
    return tuple(name for token in value.split(b",") if (name := token.strip().lower()))


_UNSENDABLE_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_UNSENDABLE_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
"""A header name or value uvicorn refuses to send (line breaks, control bytes, separators)."""


def storable(headers: list[tuple[bytes, bytes]], default_ttl: float) -> Storable | None:
    """How to store a 2xx response with ``headers``, or None when a shared cache must not."""
    control: bytes | None = None
    expires: bytes | None = None
    vary: list[bytes] = []
    for name, value in headers:
        if _UNSENDABLE_NAME.search(name) or _UNSENDABLE_VALUE.search(value):
            return None  # the server refuses to send it: never stored, so never replayed
        name = name.lower()
        if name == b"set-cookie":
            return None
        if name == b"cache-control":
            control = value if control is None else control + b", " + value
        elif name == b"vary":
            vary.extend(vary_names(value))
        elif name == b"expires":
            expires = value
    if b"*" in vary or len(set(vary)) > MAX_VARY:
        return None
    ttl: float = default_ttl
    may_be_stale = True
    if control is not None:
        found = directives(control)
        if NEVER_STORED.intersection(found):
            return None
        for name in (b"s-maxage", b"max-age"):  # a shared cache reads s-maxage first
            if name in found:
                seconds = _seconds(found[name])
                if not seconds:  # 0, or invalid: stale at once
                    return None
                ttl = float(seconds)
                break
        else:
            if expires is not None:
                ttl = _freshness_of_expires(expires)
        may_be_stale = not ({b"must-revalidate", b"proxy-revalidate"} & found.keys())
    elif expires is not None:
        ttl = _freshness_of_expires(expires)
    if ttl <= 0:
        return None
    return Storable(ttl, control, tuple(dict.fromkeys(vary)), may_be_stale)


def _freshness_of_expires(value: bytes) -> float:
    left = _expires_in(value, time.time())
    return 0.0 if left is None else left
