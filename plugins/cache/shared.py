"""Invalidation across the workers of ``serve --workers N`` on the memory backend.

Each worker keeps its own entries; invalidations must reach all of them. Before the fork,
the serve process (``serve_starting``) creates a file of :data:`SLOTS` 64-bit generations
(512 KiB, in /dev/shm when there is one, removed at exit) and exports its path in
``FASTPLUG_CACHE_SHARED``; every worker maps it (``mmap``, shared).

Slot 0 is a clock. An invalidation, in any worker, takes the clock's next value under an
``fcntl.flock`` of the file (writes are rare) and writes it to the slot of each tag and key
it names (``1 + crc32(name) % (SLOTS - 1)``, the same in every process; two names sharing a
slot only cost extra misses), then to the clock. A fill reads the clock before its handler
runs and stores only if none of its slots went past it; the entry keeps its slots' values
(``guard``) and the clock it read (``checked``). A hit reads the clock (an aligned 8-byte
read of the mapping: no syscall, no lock); if it moved since the entry was last checked, it
compares the entry's slots too (O(tags) reads) and treats any change as a miss.

The order (slots, then the clock; the clock, then the slots) is what makes this correct
without a lock on the read side; it relies on stores and loads not being reordered, which
x86-64 guarantees. On weaker memory models (ARM) a hit racing an invalidation within a few
instructions could miss it: use the Redis backend there if that matters.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import mmap
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from fastplug.plugins.cache.backends import MemoryBackend, Snapshot, thaw
from fastplug.plugins.cache.entry import Entry

ENV = "FASTPLUG_CACHE_SHARED"
"""The path of the generations file, exported by the serve process to its workers."""
SLOTS = 65536
SIZE = SLOTS * 8
log = logging.getLogger("fastplug.cache")


def slot_of(name: str) -> int:
    """The slot of a tag or ``key:<key>`` (never 0, the clock)."""
    return 1 + zlib.crc32(name.encode()) % (SLOTS - 1)


def create_file(path: Path) -> None:
    """Create the generations file (or size one that exists), readable by its owner only."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size != SIZE:
            os.ftruncate(fd, SIZE)
    finally:
        os.close(fd)


class SharedGenerations:
    """The mapped generations file: ``view[slot]`` reads, :meth:`bump` writes."""

    def __init__(self, path: str | Path) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size != SIZE:
                raise OSError(f"{path} is not a cache generations file ({SIZE} bytes)")
            self._map = mmap.mmap(fd, SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.view = memoryview(self._map).cast("Q")

    def clock(self) -> int:
        """The last generation given out."""
        return int(self.view[0])

    def bump(self, names: Iterable[str]) -> int:
        """Give each name's slot the clock's next value (under the file lock); returns it."""
        slots = {slot_of(name) for name in names}
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            view = self.view
            generation = view[0] + 1
            for slot in slots:
                view[slot] = generation
            # the clock last: a store that read the old clock (as its ``checked``) has its
            # slots compared on the next hit, and one that reads the new clock sees the slots
            view[0] = generation
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return int(generation)

    def close(self) -> None:
        self.view.release()
        self._map.close()
        os.close(self._fd)


def _temporary() -> Path:
    shm = "/dev/shm"
    directory = Path(tempfile.mkdtemp(prefix="fastplug-cache-", dir=shm if os.access(shm, os.W_OK) else None))
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(directory, ignore_errors=True))
    return directory / "generations"


def prepare(workers: int) -> Path | None:
    """In the serve process, before the fork: set up the file when several workers will
    serve (or ``FASTPLUG_CACHE_SHARED`` names one already) and export its path. Raises
    :class:`RuntimeError` (one line) when shared memory cannot be set up."""
    given = os.environ.get(ENV)
    if workers <= 1 and not given:
        return None
    try:
        path = Path(given) if given else _temporary()
        if given and path.exists() and path.stat().st_size != SIZE:
            raise OSError(f"{path} exists and is not a cache generations file ({SIZE} bytes)")
        create_file(path)
        SharedGenerations(path).close()
    except OSError as exc:
        raise RuntimeError(
            f"[cache] backend = 'memory' with {workers} workers needs shared memory so that invalidations reach"
            f" every worker, and it cannot be set up ({exc}); use backend = 'redis', or one worker"
        ) from None
    os.environ[ENV] = str(path)
    log.info("cache: invalidations shared by the %d workers through %s", workers, path)
    return path


def probe() -> str | None:
    """Why shared generations cannot be set up here, or None (for ``manage.py check``)."""
    try:
        with tempfile.TemporaryDirectory(prefix="fastplug-cache-check-") as directory:
            path = Path(directory) / "generations"
            create_file(path)
            SharedGenerations(path).close()
    except OSError as exc:
        return str(exc)
    return None


class SharedMemoryBackend(MemoryBackend):
    """The memory backend whose generations are shared by the workers: an invalidation in
    any of them drops the entries of all (each hit reads its entry's slots: O(tags))."""

    def __init__(
        self, max_entries: int, max_bytes: int, shared: SharedGenerations, max_keys_per_route: int = 0
    ) -> None:
        super().__init__(max_entries, max_bytes, max_keys_per_route)
        self.shared = shared
        self._view = shared.view
        # key -> (its slots, their generations when stored, the clock when they last matched)
        self._guards: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {}

    def get_now(self, key: str) -> Entry | None:
        stored = self._entries.get(key)
        if stored is None:
            return None
        view = self._view
        clock = view[0]  # read first: an invalidation after it moves it again, so is seen next time
        slots, generations, checked = self._guards[key]
        if checked != clock:  # something was invalidated since the last check: are its slots?
            if tuple(map(view.__getitem__, slots)) != generations:  # invalidated, by this worker or another
                self._drop(key)
                return None
            if view[0] == clock:  # (a bump while comparing: compare again next time)
                self._guards[key] = (slots, generations, clock)
        entry = thaw(stored)
        if not entry.is_usable(time.time()):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _drop(self, key: str) -> bool:
        self._guards.pop(key, None)
        return super()._drop(key)

    async def snapshot(self) -> Snapshot:
        return int(self._view[0])

    async def lock(self, key: str, ttl: float) -> tuple[str | None, Snapshot]:
        return "local", int(self._view[0])

    async def set(self, key: str, entry: Entry, tags: Sequence[str], snapshot: Snapshot | None = None) -> bool:
        view = self._view
        clock = view[0]
        limit = clock if snapshot is None else snapshot
        slots = tuple(sorted({slot_of(name) for name in (*tags, f"key:{key}")}))
        generations = []
        for slot in slots:
            generation = view[slot]
            if generation > limit:  # invalidated since the snapshot: the answer may be older
                return False
            generations.append(generation)
        self._store(key, entry, tags)
        if key in self._entries:  # (not when it alone is over max_bytes)
            # ints only (the GC does not track it); a hit compares it only after an invalidation
            self._guards[key] = (slots, tuple(generations), clock)
        return True

    async def invalidate(self, tags: Iterable[str], keys: Iterable[str]) -> int:
        tags, keys = list(tags), list(keys)
        if not tags and not keys:
            return 0
        self.shared.bump([*tags, *(f"key:{key}" for key in keys)])
        return self._drop_tagged(tags, keys)

    async def close(self) -> None:
        self.shared.close()
