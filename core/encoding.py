"""``Accept-Encoding``: one parser and one ranking, shared by compression and the cache key.

The cache keys a response by the coding the compressor will pick; if the two read the
header differently, a body in one coding is stored under another's key. Both call
:func:`negotiate`, so the stored coding is always the key's coding.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_ACCEPT_ENCODING = 1024
"""Longer values are ignored (identity is sent): no real client sends more, and parsing a
hostile megabyte would block the worker."""

ALIASES = {"x-gzip": "gzip", "x-compress": "compress"}  # RFC 9110 8.4.1: same coding


def parse_accept_encoding(value: str | bytes) -> dict[str, float]:
    """``"gzip;q=0.5, br"`` -> ``{"gzip": 0.5, "br": 1.0}``.

    Codings are lower-cased, aliases folded (``x-gzip`` is ``gzip``; the higher q wins), a
    malformed q-value counts as 0 and q is clamped to [0, 1]. Empty for a value longer
    than :data:`MAX_ACCEPT_ENCODING`.
    """
    if len(value) > MAX_ACCEPT_ENCODING:
        return {}
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    accepted: dict[str, float] = {}
    for part in text.split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        coding = ALIASES.get(coding, coding)
        q = 1.0
        for param in params.split(";"):
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(raw.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
                if q != q:  # NaN
                    q = 0.0
        accepted[coding] = max(q, accepted[coding]) if coding in accepted else q
    return accepted


def negotiate(value: str | bytes, codings: Sequence[str]) -> str | None:
    """The coding of ``codings`` (server preference first on equal q) the client ranks
    highest with q > 0, or None (send identity).

    ``*`` stands for every coding not named; ``q=0`` refuses one.
    """
    accepted = parse_accept_encoding(value)
    star = accepted.get("*", 0.0)
    best, best_q = None, 0.0
    for coding in codings:
        q = accepted.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    return best
