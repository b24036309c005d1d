"""Cache keys: sha256 over length-prefixed parts, the same in every process and restart."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode


def digest(parts: Sequence[bytes]) -> str:
    """sha256 of the number of parts, each part's length, then the parts (no two part lists
    collide); the lengths are packed in one call, cheaper than framing part by part."""
    count = len(parts)
    pack = _LENGTHS.get(count)
    if pack is None:
        pack = _LENGTHS.setdefault(count, struct.Struct(f">{count + 1}I").pack)
    return hashlib.sha256(pack(count, *map(len, parts)) + b"".join(parts)).hexdigest()


_LENGTHS: dict[int, Any] = {}


def sorted_query(query_string: bytes) -> bytes:
    """The query with its parameters in a canonical order (``?b=2&a=1`` == ``?a=1&b=2``).

    A query of one parameter is kept as sent: its escapes are not normalised, so ``?a=%41``
    and ``?a=A`` are two entries of the same answer (never one entry for two answers: a
    normalised query parses back to the same parameters)."""
    if b"&" not in query_string:  # one parameter (or none): already in order, kept as sent
        return query_string
    # percent-escapes decode byte for byte (latin-1: any byte sequence, no UnicodeError), and
    # the pairs are re-quoted, so an escaped "&" or "=" inside a value stays part of it
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    # by name only: the sort is stable, so a repeated parameter keeps its order (?a=1&a=2 and
    # ?a=2&a=1 are different requests: FastAPI reads the last value of a scalar parameter)
    return urlencode(sorted(pairs, key=lambda pair: pair[0]), encoding="latin-1").encode("ascii")


def request_key(
    prefix: str,
    version: str,
    method: bytes,
    scheme: str,
    host: bytes,
    route: str,
    path_params: Sequence[tuple[str, str]],
    query: bytes,
    vary: Sequence[bytes],
) -> str:
    """``<prefix>:<sha256>`` for one request variant of one route (``vary``: header names
    and their values, alternating): :func:`digest` of ``[version, method, scheme, host, route,
    *params, query, *vary]``."""
    parts: list[bytes] = [version.encode(), method, scheme.encode(), host, route.encode()]
    for name, value in path_params:
        parts += [name.encode(), value.encode()]
    parts.append(query)
    parts.extend(vary)
    return f"{prefix}:{digest(parts)}"
