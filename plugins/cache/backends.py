"""Where entries live: process memory (LRU, bounded) or Redis (shared, with a breaker).

Fills are guarded by generations. Every invalidation takes the next value of one clock
(per process in memory, one ``INCR`` counter in Redis, one shared slot across the workers
of ``serve --workers N``, see :mod:`fastplug.plugins.cache.shared`) and gives it to each tag
and key it names. A miss reads the clock *before* its handler runs (with the fill lock, in
the same round trip): that is its snapshot. The store is a compare-and-set: an entry is not
stored if any of its tags or its key got a generation above the snapshot, i.e. was
invalidated while the answer was computed. Tags a handler adds once it knows what it read
(``CacheTags``, e.g. the product ids on a page) are checked the same way.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from fastplug.config import mask_secrets
from fastplug.plugins.cache.entry import Entry
from fastplug.plugins.cache.pending import PendingInvalidations

T = TypeVar("T")
Snapshot = int
"""The invalidation clock as read before a fill's handler ran."""
GENERATION_TTL_MS = 24 * 3600 * 1000
"""How long Redis remembers a tag's last invalidation (longer than any fill can take)."""
FLUSH = "flush:"
"""The generation name every entry is checked against: a flush of the whole namespace."""
INVALIDATE_CHUNK = 256
"""Names per invalidation script when pending ones are applied."""
log = logging.getLogger("fastplug.cache")


class BackendUnavailable(Exception):  # noqa: N818 - names the condition
    """The backend failed, timed out, or its circuit is open."""


class Backend(Protocol):
    """Storage for entries, with tag indexes and a cross-process fill lock."""

    async def get(self, key: str) -> Entry | None: ...
    async def set(self, key: str, entry: Entry, tags: Sequence[str], snapshot: Snapshot | None = None) -> bool:
        """Store (unless ``snapshot`` is given and a tag or the key was invalidated since): stored?"""
        ...

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int: ...
    async def snapshot(self) -> Snapshot:
        """The invalidation clock now."""
        ...

    async def lock(self, key: str, ttl: float) -> tuple[str | None, Snapshot]:
        """Try the fill lock; with the clock read at the same time."""
        ...

    async def unlock(self, key: str, token: str) -> None: ...
    async def close(self) -> None: ...


ROUTE_TAG = "route:"
"""The tag every entry of a route has (``route:<name>``): what ``max_keys_per_route`` counts."""


def route_tag(tags: Sequence[str]) -> int:
    """The position of the route tag in ``tags``, or -1."""
    for position, tag in enumerate(tags):
        if tag.startswith(ROUTE_TAG):
            return position
    return -1


def thaw(stored: tuple[Any, ...]) -> Entry:
    """The :class:`Entry` of a stored plain tuple (one allocation, no per-field work)."""
    return tuple.__new__(Entry, stored)


def entry_cost(entry: Entry, tags: Sequence[str]) -> int:
    """The bytes an entry holds in process memory: body, headers, tags, and a fixed overhead."""
    headers = sum(len(k) + len(v) + 64 for k, v in entry.head) + sum(len(k) + len(v) + 64 for k, v in entry.headers)
    return len(entry.body) + headers + sum(len(tag) + 64 for tag in tags) + 512


class MemoryBackend:
    """Per-process LRU bounded by entry count and bytes (bodies, headers and tag indexes
    counted), and optionally by entries per route. Invalidation is per process."""

    def __init__(self, max_entries: int, max_bytes: int, max_keys_per_route: int = 0) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.max_keys_per_route = max_keys_per_route
        self._entries: OrderedDict[str, tuple[Any, ...]] = OrderedDict()  # plain tuples: untracked by the GC
        self._tags: dict[str, dict[str, None]] = {}  # insertion-ordered: oldest key first
        self._costs: dict[str, int] = {}
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
        stored = self._entries.get(key)
        if stored is None:
            return None
        entry = thaw(stored)
        if not entry.is_usable(time.time()):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def get(self, key: str) -> Entry | None:
        return self.get_now(key)

    async def snapshot(self) -> Snapshot:
        return self._clock

    def _unchanged_since(self, snapshot: Snapshot, key: str, tags: Sequence[str]) -> bool:
        generations, floor = self._generations, self._floor
        if floor > snapshot:
            return False
        return all(generations.get(name, floor) <= snapshot for name in (*tags, f"key:{key}"))

    async def set(self, key: str, entry: Entry, tags: Sequence[str], snapshot: Snapshot | None = None) -> bool:
        # compare-and-set: nothing awaited between the check and the store (one event loop)
        if snapshot is not None and not self._unchanged_since(snapshot, key, tags):
            return False
        self._store(key, entry, tags)
        return True

    def _store(self, key: str, entry: Entry, tags: Sequence[str]) -> None:
        self._drop(key)
        self._entries[key] = tuple(entry)
        self._key_tags[key] = tuple(tags)
        for tag in tags:
            self._tags.setdefault(tag, {})[key] = None
        cost = self._costs[key] = entry_cost(entry, tags)
        self.size += cost
        if self.max_keys_per_route and (position := route_tag(tags)) >= 0:
            route_keys = self._tags[tags[position]]
            while len(route_keys) > self.max_keys_per_route:
                self._drop(next(iter(route_keys)))  # the route's oldest entry (never this one)
        while self._entries and (len(self._entries) > self.max_entries or self.size > self.max_bytes):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self.size -= self._costs.pop(key, 0)
        for tag in self._key_tags.pop(key, ()):
            keys = self._tags.get(tag)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._tags[tag]
        return True

    def _drop_tagged(self, tags: Sequence[str], keys: Sequence[str]) -> int:
        doomed = set(keys)
        for tag in tags:
            doomed.update(self._tags.get(tag, ()))
        return sum(self._drop(key) for key in doomed)

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int:
        keys, tags = list(keys), list(tags)
        names = [*tags, *(f"key:{key}" for key in keys)]
        if len(self._generations) + len(names) > self.max_generations:
            self._generations.clear()
            self._floor = self._clock
        self._clock += 1
        for name in names:
            self._generations[name] = self._clock
        return self._drop_tagged(tags, keys)

    async def lock(self, key: str, ttl: float) -> tuple[str | None, Snapshot]:
        # one process: the in-process single flight is enough
        return "local", self._clock

    async def unlock(self, key: str, token: str) -> None:
        return None

    async def close(self) -> None:
        return None


# KEYS: entry, its n tag indexes, then the m generations to check (if conditional)
# ARGV: value, px, expiry score, now ms, n, the route index's position in KEYS (0: no cap),
# the cap, then the snapshot (if conditional). Past the cap, the route's entries that expire
# first (the oldest, for one ttl) are deleted.
_SET = """
local n = tonumber(ARGV[5])
if #KEYS > n + 1 then
  local snapshot = tonumber(ARGV[8])
  for i = n + 2, #KEYS do
    if tonumber(redis.call('GET', KEYS[i]) or '0') > snapshot then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, n + 1 do
  redis.call('ZADD', KEYS[i], ARGV[3], KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[4])
  local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[i], last[2])
end
local capped = tonumber(ARGV[6])
if capped > 0 then
  local over = redis.call('ZCARD', KEYS[capped]) - tonumber(ARGV[7])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[capped], over)
    for i = 1, #popped, 2 do
      if popped[i] ~= KEYS[1] then redis.call('DEL', popped[i]) end
    end
  end
end
return 1
"""
# KEYS: the clock, then n (tag index, tag generation) pairs, then k (entry, entry
# generation) pairs. ARGV: n, k, generation ttl ms.
# Every name gets the clock's next value: unique and increasing, never seen by a fill before.
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
# KEYS: the clock, the flush generation. ARGV: generation ttl ms. No fill in flight stores.
_FLUSH = """
local generation = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], generation, 'PX', ARGV[1])
return generation
"""
# KEYS: the lock, the clock. ARGV: token, px. Returns {locked, clock}.
_LOCK = """
local locked = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
return {locked, redis.call('GET', KEYS[2]) or ''}
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_GLOB = re.compile(r"([*?\[\]\\])")


def _reason(exc: BaseException, op_timeout: float) -> str:
    """Why an operation failed, on one line, credentials in URLs masked."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {op_timeout:g}s (op_timeout)"
    text = mask_secrets(" ".join(str(exc).split()))[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # shared by callers that may all be gone: never "never retrieved"


class RedisBackend:
    """Entries in Redis (shared by every process), each operation under ``op_timeout``.

    Tags are sorted sets of keys scored by expiry (pruned on write, expiring with their
    last member). A circuit breaker stops calling a failing Redis for ``cooldown``
    seconds after ``failures`` consecutive errors, then lets calls through again; its
    opening is logged at WARNING (with the reason), its closing at INFO.

    An invalidation that fails is kept (:class:`PendingInvalidations`, bounded: past it, a
    flush of the namespace) and applied before this process uses Redis for anything else
    (a get, a fill): the process that wrote never serves the old entry. A background retry
    applies it every ``retry_interval`` seconds until Redis answers, through an open circuit
    (its success closes it), so other processes, reading the shared Redis, stop seeing the
    old entries at most ``retry_interval + op_timeout`` after Redis answers again.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        op_timeout: float,
        failures: int,
        cooldown: float,
        retry_interval: float = 0.5,
        max_keys_per_route: int = 0,
    ) -> None:
        self.client, self.prefix, self.op_timeout = client, prefix, op_timeout
        self.max_keys_per_route = max_keys_per_route
        self.max_failures, self.cooldown, self.retry_interval = failures, cooldown, retry_interval
        self.failures = 0
        self.open_until = 0.0  # non-zero while the circuit is open (or letting calls try again)
        self.errors = 0
        self.pending = PendingInvalidations()
        self.clock_key = f"{prefix}:gen"
        self._opened_at = 0.0
        self._applying: asyncio.Future[None] | None = None
        self._retrying: asyncio.Task[None] | None = None
        self._entries = _GLOB.sub(r"\\\1", prefix) + ":" + "[0-9a-f]" * 64  # keys.request_key's
        self._batch: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._set = client.register_script(_SET)
        self._invalidate = client.register_script(_INVALIDATE)
        self._flush_script = client.register_script(_FLUSH)
        self._unlock = client.register_script(_UNLOCK)
        self._lock = client.register_script(_LOCK)

    def tag_key(self, tag: str) -> str:
        """Where a tag's keys are listed."""
        return f"{self.prefix}:tag:{tag}"

    def generation_key(self, name: str) -> str:
        """Where a tag's (or ``key:<key>``'s) generation is kept."""
        return f"{self.prefix}:gen:{name}"

    async def _call(self, operation: Callable[[], Awaitable[T]], probe: bool = False) -> T:
        if not probe and self.open_until and time.monotonic() < self.open_until:
            raise BackendUnavailable("circuit open")
        try:
            async with asyncio.timeout(self.op_timeout):
                result = await operation()
        except Exception as exc:
            raise self._failed(exc) from exc
        self.failures = 0
        if self.open_until:
            self.open_until = 0.0
            log.info("cache: Redis answers again after %.1fs; circuit closed", time.monotonic() - self._opened_at)
        return result

    def _failed(self, exc: Exception) -> BackendUnavailable:
        reason = _reason(exc, self.op_timeout)
        self.errors += 1
        self.failures += 1
        if self.failures >= self.max_failures:
            if not self.open_until:
                self._opened_at = time.monotonic()
                log.warning(
                    "cache: Redis circuit open after %d failure(s) in a row (%s); requests bypass the cache for %gs",
                    self.failures,
                    reason,
                    self.cooldown,
                )
            self.open_until = time.monotonic() + self.cooldown
        return BackendUnavailable(reason)

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
        try:
            entry = Entry.decode(raw)
        except (ValueError, TypeError, KeyError, IndexError):  # not an entry this version reads: a miss refills it
            log.warning("cache: unreadable entry %s in Redis; treated as a miss", key)
            return None
        return entry if entry.is_usable(time.time()) else None

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.get_running_loop().create_task(self._mget(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mget(self, batch: list[tuple[str, asyncio.Future[bytes | None]]]) -> None:
        keys = [key for key, _ in batch]
        try:
            if self.pending.active:  # no entry is read before the kept invalidations are applied
                await self._settle()
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
        if self.pending.active:
            await self._settle()
        lifetime = entry.ttl + entry.stale
        expires_ms = int((entry.stored_at + lifetime) * 1000)
        position = route_tag(tags) if self.max_keys_per_route else -1
        args: list[Any] = [
            entry.encode(),
            max(int(lifetime * 1000), 1),
            expires_ms,
            int(time.time() * 1000),
            len(tags),
            position + 2 if position >= 0 else 0,  # KEYS is 1-based, the entry first
            self.max_keys_per_route,
        ]
        keys = [key, *(self.tag_key(t) for t in tags)]
        if snapshot is not None:  # checked and stored atomically, inside the script
            keys += [self.generation_key(name) for name in (*tags, f"key:{key}", FLUSH)]
            args.append(snapshot)
        return bool(await self._call(lambda: self._set(keys=keys, args=args)))

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int:
        """Drop the entries of ``tags`` and ``keys``; if Redis fails, they are kept and
        applied later (see the class), and :class:`BackendUnavailable` is raised."""
        tags, plain = list(tags), list(keys)
        if not tags and not plain:
            return 0
        try:
            if self.pending.active:
                await self._settle()
            return await self._invalidate_now(tags, plain)
        except BackendUnavailable:
            self.pending.add(tags, plain)
            self._retry_soon()
            raise

    async def _invalidate_now(self, tags: Sequence[str], plain: Sequence[str], probe: bool = False) -> int:
        script_keys = [self.clock_key]
        for tag in tags:
            script_keys += [self.tag_key(tag), self.generation_key(tag)]
        for key in plain:
            script_keys += [key, self.generation_key(f"key:{key}")]
        args = [len(tags), len(plain), GENERATION_TTL_MS]
        return int(await self._call(lambda: self._invalidate(keys=script_keys, args=args), probe))

    async def _settle(self, probe: bool = False) -> None:
        """Apply the kept invalidations (one application at a time, shared by its callers)."""
        applying = self._applying
        if applying is None or applying.done():
            applying = self._applying = asyncio.ensure_future(self._apply_pending(probe))
            applying.add_done_callback(_retrieve)
        await asyncio.shield(applying)

    async def _apply_pending(self, probe: bool) -> None:
        flush, tags, keys = self.pending.take()
        if not (flush or tags or keys):  # applied by a call that ended meanwhile
            return
        if flush:
            await self._flush_namespace(probe)
            self.pending.done(flush, tags, keys)
        else:
            for i in range(0, len(tags), INVALIDATE_CHUNK):
                chunk = tags[i : i + INVALIDATE_CHUNK]
                await self._invalidate_now(chunk, (), probe)
                self.pending.done(0, chunk, ())
            for i in range(0, len(keys), INVALIDATE_CHUNK):
                chunk = keys[i : i + INVALIDATE_CHUNK]
                await self._invalidate_now((), chunk, probe)
                self.pending.done(0, (), chunk)
        log.info(
            "cache: invalidations kept during the outage applied (%s)",
            "every entry dropped" if flush else f"{len(tags)} tags, {len(keys)} keys",
        )

    async def _flush_namespace(self, probe: bool) -> None:
        """Every entry of this prefix goes; fills in flight are not stored (the flush generation)."""
        flush_keys = [self.clock_key, self.generation_key(FLUSH)]
        await self._call(lambda: self._flush_script(keys=flush_keys, args=[GENERATION_TTL_MS]), probe)
        cursor = 0
        while True:
            cursor, found = await self._call(
                lambda at=cursor: self.client.scan(at, match=self._entries, count=1000), probe
            )
            if found:
                await self._call(lambda doomed=found: self.client.unlink(*doomed), probe)
            if not cursor:
                return

    def _retry_soon(self) -> None:
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        while self.pending.active:
            await asyncio.sleep(self.retry_interval)
            try:
                await self._settle(probe=True)
            except BackendUnavailable as exc:
                log.debug("cache: kept invalidations not applied yet: %s", exc)

    async def snapshot(self) -> Snapshot:
        if self.pending.active:
            await self._settle()
        return int(await self._call(lambda: self.client.get(self.clock_key)) or 0)

    async def lock(self, key: str, ttl: float) -> tuple[str | None, Snapshot]:
        """One round trip: SET NX of the lock, and the clock (whether locked or not)."""
        if self.pending.active:
            await self._settle()
        token = uuid.uuid4().hex
        keys = [f"{key}:lock", self.clock_key]
        locked, clock = await self._call(lambda: self._lock(keys=keys, args=[token, max(int(ttl * 1000), 1)]))
        return (token if locked else None), int(clock or 0)

    async def unlock(self, key: str, token: str) -> None:
        await self._call(lambda: self._unlock(keys=[f"{key}:lock"], args=[token]))

    async def close(self) -> None:
        """Stop retrying; say what could not be applied."""
        for task in (self._retrying, self._applying):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.pending.active:
            log.warning(
                "cache: invalidations kept during the outage not applied at shutdown (%s); their entries expire "
                "on their ttl",
                "a flush" if self.pending.flush else f"{len(self.pending)} tags and keys",
            )
