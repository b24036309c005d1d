"""Invalidations that could not reach the backend, kept until they can (bounded).

A write that commits during a cache outage still has to drop what the cache holds, or the
old answer is served again once the backend recovers. Its tags and keys are kept here; past
``MAX_PENDING`` names they are replaced by one *flush* (every entry of this cache's
namespace goes), which bounds the memory an outage can take whatever is written meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MAX_PENDING = 4096
"""Tags and keys kept during an outage; beyond it, the whole namespace is flushed instead."""

log = logging.getLogger("fastplug.cache")


class PendingInvalidations:
    """The tags and keys still to invalidate, and whether a flush is; ``active`` while any is."""

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self.limit = limit
        self.tags: set[str] = set()
        self.keys: set[str] = set()
        self.flush = 0  # flushes asked for (a counter: one asked while applying stays asked)
        self.active = False

    def __len__(self) -> int:
        return len(self.tags) + len(self.keys)

    def add(self, tags: Iterable[str], keys: Iterable[str]) -> None:
        """Keep these; past ``limit`` names, ask for a flush instead."""
        self.tags.update(tags)
        self.keys.update(keys)
        self.active = True
        if len(self) > self.limit:
            if not self.flush:
                log.warning(
                    "cache: more than %d invalidations pending; every entry will be dropped when the backend answers",
                    self.limit,
                )
            self.tags.clear()
            self.keys.clear()
            self.flush += 1

    def take(self) -> tuple[int, list[str], list[str]]:
        """What to apply now: ``(flush, tags, keys)``, a flush first (it covers the names
        kept before it starts). They stay pending until :meth:`done`."""
        return self.flush, sorted(self.tags), sorted(self.keys)

    def done(self, flush: int, tags: Iterable[str], keys: Iterable[str]) -> None:
        """What :meth:`take` gave was applied; anything kept since stays pending."""
        if flush and self.flush == flush:
            self.flush = 0
        self.tags.difference_update(tags)
        self.keys.difference_update(keys)
        self.active = bool(self.flush or self.tags or self.keys)
