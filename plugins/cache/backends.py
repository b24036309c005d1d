"""Where entries live: process memory (LRU, bounded) or Redis (shared, with a breaker)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from plugins.cache.entry import Entry

T = TypeVar("T")


class BackendUnavailable(Exception):  # noqa: N818 - names the condition
    """The backend failed, timed out, or its circuit is open."""


class Backend(Protocol):
    """Storage for entries, with tag indexes and a cross-process fill lock."""

    async def get(self, key: str) -> Entry | None: ...
    async def set(self, key: str, entry: Entry, tags: Sequence[str]) -> None: ...
    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int: ...
    async def lock(self, key: str, ttl: float) -> str | None: ...
    async def unlock(self, key: str, token: str) -> None: ...


class MemoryBackend:
    """Per-process LRU bounded by entry count and bytes. Invalidation is per process."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._key_tags: dict[str, tuple[str, ...]] = {}
        self.size = 0

    def get_now(self, key: str) -> Entry | None:
        """The entry if still usable (the hit path calls this without awaiting)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not entry.is_usable(time.time()):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def get(self, key: str) -> Entry | None:
        return self.get_now(key)

    async def set(self, key: str, entry: Entry, tags: Sequence[str]) -> None:
        self._drop(key)
        self._entries[key] = entry
        self._key_tags[key] = tuple(tags)
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)
        self.size += len(entry.body) + 512
        while self._entries and (len(self._entries) > self.max_entries or self.size > self.max_bytes):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self.size -= len(entry.body) + 512
        for tag in self._key_tags.pop(key, ()):
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        return True

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int:
        doomed = set(keys)
        for tag in tags:
            doomed |= self._tags.get(tag, set())
        return sum(self._drop(key) for key in doomed)

    async def lock(self, key: str, ttl: float) -> str | None:
        return "local"  # one process: the in-process single flight is enough

    async def unlock(self, key: str, token: str) -> None:
        return None


_SET = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[3], KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[4])
  local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[i], last[2])
end
return 1
"""
_INVALIDATE = """
local n = 0
for i = 1, #KEYS do
  for _, key in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do n = n + redis.call('DEL', key) end
  redis.call('DEL', KEYS[i])
end
return n
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisBackend:
    """Entries in Redis (shared by every process), each operation under ``op_timeout``.

    Tags are sorted sets of keys scored by expiry (pruned on write, expiring with their
    last member). A circuit breaker stops calling a failing Redis for ``cooldown``
    seconds after ``failures`` consecutive errors, then lets one call through.
    """

    def __init__(self, client: Any, prefix: str, op_timeout: float, failures: int, cooldown: float) -> None:
        self.client, self.prefix, self.op_timeout = client, prefix, op_timeout
        self.max_failures, self.cooldown = failures, cooldown
        self.failures = 0
        self.open_until = 0.0
        self.errors = 0
        self._batch: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._set = client.register_script(_SET)
        self._invalidate = client.register_script(_INVALIDATE)
        self._unlock = client.register_script(_UNLOCK)

    def tag_key(self, tag: str) -> str:
        """Where a tag's keys are listed."""
        return f"{self.prefix}:tag:{tag}"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        if self.open_until and time.monotonic() < self.open_until:
            raise BackendUnavailable("circuit open")
        try:
            async with asyncio.timeout(self.op_timeout):
                result = await operation()
        except Exception as exc:
            self.errors += 1
            self.failures += 1
            if self.failures >= self.max_failures:
                self.open_until = time.monotonic() + self.cooldown
            raise BackendUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.failures = 0
        self.open_until = 0.0
        return result

    async def get(self, key: str) -> Entry | None:
        """Reads are pipelined automatically: the gets of one event-loop turn go to Redis as
        one MGET (one round trip and one command's overhead for all the requests in flight)."""
        if self.open_until and time.monotonic() < self.open_until:
            raise BackendUnavailable("circuit open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._batch.append((key, future))
        if len(self._batch) == 1:
            loop.call_soon(self._flush)
        raw = await future
        if raw is None:
            return None
        entry = Entry.decode(raw)
        return entry if entry.is_usable(time.time()) else None

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.get_running_loop().create_task(self._mget(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mget(self, batch: list[tuple[str, asyncio.Future[bytes | None]]]) -> None:
        keys = [key for key, _ in batch]
        try:
            values = await self._call(lambda: self.client.mget(keys))
        except BackendUnavailable as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), value in zip(batch, values, strict=True):
            if not future.done():
                future.set_result(value)

    async def set(self, key: str, entry: Entry, tags: Sequence[str]) -> None:
        lifetime = entry.ttl + entry.stale
        expires_ms = int((entry.stored_at + lifetime) * 1000)
        args = [entry.encode(), max(int(lifetime * 1000), 1), expires_ms, int(time.time() * 1000)]
        keys = [key, *(self.tag_key(t) for t in tags)]
        await self._call(lambda: self._set(keys=keys, args=args))

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int:
        tag_keys = [self.tag_key(t) for t in tags]
        plain = list(keys)
        removed = 0
        if tag_keys:
            removed += int(await self._call(lambda: self._invalidate(keys=tag_keys)))
        if plain:
            removed += int(await self._call(lambda: self.client.delete(*plain)))
        return removed

    async def lock(self, key: str, ttl: float) -> str | None:
        token = uuid.uuid4().hex
        ok = await self._call(lambda: self.client.set(f"{key}:lock", token, nx=True, px=max(int(ttl * 1000), 1)))
        return token if ok else None

    async def unlock(self, key: str, token: str) -> None:
        await self._call(lambda: self._unlock(keys=[f"{key}:lock"], args=[token]))
