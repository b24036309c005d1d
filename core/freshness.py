"""Reads that must be as fresh as the primary database's.

A plugin that keeps a request's answer and serves it to others (the cache filling an entry)
sets :data:`FRESH_READS` while the app answers; a plugin with read replicas (the db plugin's
``[db] read_urls``) reads on the primary while it is set. An answer read on a lagging replica
just after a write would otherwise be stored and served, stale, until its entry expires,
though the write's invalidation had come first.
"""

from __future__ import annotations

from contextvars import ContextVar

FRESH_READS: ContextVar[bool] = ContextVar("fastplug_fresh_reads", default=False)
"""True while the current request's reads must see every acknowledged write."""
