"""A stored response: status, headers, body bytes, and when it was stored."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(slots=True)
class Entry:
    """A cached response. ``head`` is the response-start headers, ready to send on a hit;
    ``guard`` is what a shared-memory backend checks on a hit (a getter of the entry's slots
    and their generations when stored), and ``checked`` the shared clock when they last
    matched (unchanged since: nothing to check)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes
    stored_at: float
    ttl: float
    stale: float = 0.0
    head: list[tuple[bytes, bytes]] = field(default_factory=list)
    guard: tuple[Any, Any] | None = None
    checked: int = -1

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
        pairs = lambda items: [(k.encode("latin-1"), v.encode("latin-1")) for k, v in items]  # noqa: E731
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
    kept = [(k.lower(), v) for k, v in headers if k.lower() not in UNSTORED and k.lower() != b"vary"]
    etag = strong_etag(body)
    head = [
        *kept,
        (b"content-length", str(len(body)).encode()),
        (b"etag", etag),
        (b"cache-control", cache_control),
    ]
    if vary:
        head.append((b"vary", vary))
    return Entry(status, kept, body, etag, time.time(), ttl, stale, head)
