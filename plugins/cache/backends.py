"""Where entries live: process memory (LRU, bounded) or Redis (shared, with a breaker).

Fills are guarded by generations: every invalidation gives each tag (and each key) it
names a new generation. A miss snapshots the generations of its entry's tags and key
*before* the handler runs (with the fill lock, in the same round trip), and the store is
a compare-and-set against that snapshot: an entry whose data may predate an invalidation
that happened while it was being computed is not stored.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from fastplug.plugins.cache.entry import Entry

T = TypeVar("T")
Snapshot = Sequence[Any]
"""Generations of an entry's tags and key, as read before its handler ran (opaque)."""
GENERATION_TTL_MS = 24 * 3600 * 1000
"""How long Redis remembers a tag's last invalidation (longer than any fill can take)."""


class BackendUnavailable(Exception):  # noqa: N818 - names the condition
    """The backend failed, timed out, or its circuit is open."""


class Backend(Protocol):
    """Storage for entries, with tag indexes and a cross-process fill lock."""

    async def get(self, key: str) -> Entry | None: ...
    async def set(self, key: str, entry: Entry, tags: Sequence[str], snapshot: Snapshot | None = None) -> bool:
        """Store (unless ``snapshot`` is given and a generation changed since): stored?"""
        ...

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int: ...
    async def snapshot(self, key: str, tags: Sequence[str]) -> Snapshot:
        """The current generations of ``tags`` and ``key``."""
        ...

    async def lock(self, key: str, ttl: float, tags: Sequence[str] = ()) -> tuple[str | None, Snapshot]:
        """Try the fill lock; with the generations snapshot taken at the same time."""
        ...

    async def unlock(self, key: str, token: str) -> None: ...


class MemoryBackend:
    """Per-process LRU bounded by entry count and bytes. Invalidation is per process."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._key_tags: dict[str, tuple[str, ...]] = {}
        self.size = 0
        # generations: a name (tag, or "key:" + key) -> the clock at its last invalidation;
        # names not listed are at ``_floor``. Bounded: when full, it is cleared and the
        # floor raised to the clock, which only makes fills in flight skip their store.
        self._clock = 0
        self._floor = 0
        self._generations: dict[str, int] = {}
        self.max_generations = max(4 * max_entries, 1024)

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

    def _names(self, key: str, tags: Sequence[str]) -> list[str]:
        return [*tags, f"key:{key}"]

    def _current(self, key: str, tags: Sequence[str]) -> list[int]:
        generations, floor = self._generations, self._floor
        return [generations.get(name, floor) for name in self._names(key, tags)]

    async def snapshot(self, key: str, tags: Sequence[str]) -> Snapshot:
        return self._current(key, tags)

    async def set(self, key: str, entry: Entry, tags: Sequence[str], snapshot: Snapshot | None = None) -> bool:
        # compare-and-set: nothing awaited between the check and the store (one event loop)
        if snapshot is not None and list(snapshot) != self._current(key, tags):
            return False
        self._drop(key)
        self._entries[key] = entry
        self._key_tags[key] = tuple(tags)
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)
        self.size += len(entry.body) + 512
        while self._entries and (len(self._entries) > self.max_entries or self.size > self.max_bytes):
            self._drop(next(iter(self._entries)))
        return True

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
        keys, tags = list(keys), list(tags)
        names = [*tags, *(f"key:{key}" for key in keys)]
        if len(self._generations) + len(names) > self.max_generations:
            self._generations.clear()
            self._floor = self._clock
        self._clock += 1
        for name in names:
            self._generations[name] = self._clock
        doomed = set(keys)
        for tag in tags:
            doomed |= self._tags.get(tag, set())
        return sum(self._drop(key) for key in doomed)

    async def lock(self, key: str, ttl: float, tags: Sequence[str] = ()) -> tuple[str | None, Snapshot]:
        # one process: the in-process single flight is enough
        return "local", self._current(key, tags)

    async def unlock(self, key: str, token: str) -> None:
        return None


# KEYS: entry, its n tag indexes, then the m generations of its snapshot (if conditional)
# ARGV: value, px, expiry score, now ms, n, then the m generations expected ('' = none)
_SET = """
local n = tonumber(ARGV[5])
for i = 1, #KEYS - 1 - n do
  if (redis.call('GET', KEYS[1 + n + i]) or '') ~= ARGV[5 + i] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, n + 1 do
  redis.call('ZADD', KEYS[i], ARGV[3], KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[4])
  local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[i], last[2])
end
return 1
"""
# KEYS: the generation counter, then n (tag index, tag generation) pairs, then
# k (entry, entry generation) pairs. ARGV: n, k, generation ttl ms.
# Every name gets the counter's next value: unique, so a generation never comes back.
_INVALIDATE = """
local n, k = tonumber(ARGV[1]), tonumber(ARGV[2])
local generation = redis.call('INCR', KEYS[1])
local removed = 0
for i = 1, n do
  local index = KEYS[2 * i]
  for _, key in ipairs(redis.call('ZRANGE', index, 0, -1)) do removed = removed + redis.call('DEL', key) end
  redis.call('DEL', index)
  redis.call('SET', KEYS[2 * i + 1], generation, 'PX', ARGV[3])
end
for i = n + 1, n + k do
  removed = removed + redis.call('DEL', KEYS[2 * i])
  redis.call('SET', KEYS[2 * i + 1], generation, 'PX', ARGV[3])
end
return removed
"""
# KEYS: the lock, then generations. ARGV: token, px. Returns {locked, generations...}.
_LOCK = """
local result = {redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0}
for i = 2, #KEYS do result[i] = redis.call('GET', KEYS[i]) or '' end
return result
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
        self._lock = client.register_script(_LOCK)

    def tag_key(self, tag: str) -> str:
        """Where a tag's keys are listed."""
        return f"{self.prefix}:tag:{tag}"

    def generation_key(self, name: str) -> str:
        """Where a tag's (or ``key:<key>``'s) generation is kept."""
        return f"{self.prefix}:gen:{name}"

    def _generation_keys(self, key: str, tags: Sequence[str]) -> list[str]:
        return [*(self.generation_key(t) for t in tags), self.generation_key(f"key:{key}")]

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

    async def set(self, key: str, entry: Entry, tags: Sequence[str], snapshot: Snapshot | None = None) -> bool:
        lifetime = entry.ttl + entry.stale
        expires_ms = int((entry.stored_at + lifetime) * 1000)
        args = [entry.encode(), max(int(lifetime * 1000), 1), expires_ms, int(time.time() * 1000), len(tags)]
        keys = [key, *(self.tag_key(t) for t in tags)]
        if snapshot is not None:  # checked and stored atomically, inside the script
            keys += self._generation_keys(key, tags)
            args += list(snapshot)
        return bool(await self._call(lambda: self._set(keys=keys, args=args)))

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int:
        tags, plain = list(tags), list(keys)
        if not tags and not plain:
            return 0
        script_keys = [f"{self.prefix}:gen"]
        for tag in tags:
            script_keys += [self.tag_key(tag), self.generation_key(tag)]
        for key in plain:
            script_keys += [key, self.generation_key(f"key:{key}")]
        args = [len(tags), len(plain), GENERATION_TTL_MS]
        return int(await self._call(lambda: self._invalidate(keys=script_keys, args=args)))

    async def snapshot(self, key: str, tags: Sequence[str]) -> Snapshot:
        values = await self._call(lambda: self.client.mget(self._generation_keys(key, tags)))
        return [b"" if value is None else value for value in values]

    async def lock(self, key: str, ttl: float, tags: Sequence[str] = ()) -> tuple[str | None, Snapshot]:
        """One round trip: SET NX of the lock, and the generations (whether locked or not)."""
        token = uuid.uuid4().hex
        keys = [f"{key}:lock", *self._generation_keys(key, tags)]
        locked, *generations = await self._call(lambda: self._lock(keys=keys, args=[token, max(int(ttl * 1000), 1)]))
        return (token if locked else None), generations

    async def unlock(self, key: str, token: str) -> None:
        await self._call(lambda: self._unlock(keys=[f"{key}:lock"], args=[token]))
