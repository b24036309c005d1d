"""A stored response: status, headers, body bytes, and when it was stored."""

from __future__ import annotations

import hashlib
import json
import time
from typing import NamedTuple

# Never stored (hop-by-hop, per request, or recomputed on every hit).
UNSTORED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"date",
        b"server",
        b"set-cookie",
        b"age",
        b"etag",
        b"x-cache",
        b"cache-control",
        b"server-timing",
        b"x-process-time",
        b"x-db-queries",
    }
)


Headers = tuple[tuple[bytes, bytes], ...]


class Entry(NamedTuple):
    """A cached response. ``head`` is the response-start headers, ready to send on a hit.

    Immutable, and made only of tuples, bytes and numbers: the memory backend keeps it as a
    plain ``tuple``, which the garbage collector stops tracking, so 100,000 cached responses
    add nothing to a full collection's pause (an object per entry, or a list of headers,
    would be traversed by every one)."""

    status: int
    headers: Headers
    body: bytes
    etag: bytes
    stored_at: float
    ttl: float
    stale: float = 0.0
    head: Headers = ()

    def age(self, now: float) -> float:
        """Seconds since the entry was stored."""
        return max(now - self.stored_at, 0.0)

    def is_fresh(self, now: float) -> bool:
        """Within its ttl."""
        return now - self.stored_at < self.ttl

    def is_usable(self, now: float) -> bool:
        """Fresh, or stale but within the stale-while-revalidate window."""
        return now - self.stored_at < self.ttl + self.stale

    def encode(self) -> bytes:
        """Bytes for a remote backend: a JSON head line, then the body."""
        meta = {
            "s": self.status,
            "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "e": self.etag.decode(),
            "t": self.stored_at,
            "l": self.ttl,
            "w": self.stale,
            "c": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.head],
        }
        return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        """The inverse of :meth:`encode`."""
        line, _, body = raw.partition(b"\n")
        meta = json.loads(line)
        pairs = lambda items: tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in items)  # noqa: E731
        return cls(
            meta["s"], pairs(meta["h"]), body, meta["e"].encode(), meta["t"], meta["l"], meta["w"], pairs(meta["c"])
        )


def strong_etag(body: bytes) -> bytes:
    """A strong validator from the body bytes."""
    return b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


def build_entry(
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    ttl: float,
    stale: float,
    cache_control: bytes,
    vary: bytes,
) -> Entry:
    """An entry with its hit headers precomputed (ETag, Cache-Control, Vary, Content-Length)."""
    kept = tuple((k.lower(), v) for k, v in headers if k.lower() not in UNSTORED and k.lower() != b"vary")
    etag = strong_etag(body)
    head = (
        *kept,
        (b"content-length", str(len(body)).encode()),
        (b"etag", etag),
        (b"cache-control", cache_control),
        *(((b"vary", vary),) if vary else ()),
    )
    return Entry(status, kept, body, etag, time.time(), ttl, stale, head)
