"""The cache middleware (pure ASGI): serves hits before routing, stores misses' final bytes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastplug.plugins.cache.api import SERVICE, TAGS
from fastplug.plugins.cache.backends import BackendUnavailable, Snapshot
from fastplug.plugins.cache.entry import Entry, build_entry
from fastplug.plugins.cache.keys import accepted_coding, request_key, sorted_query
from fastplug.plugins.cache.service import Cache, RoutePolicy
from fastplug.plugins.cache.settings import CacheSettings

log = logging.getLogger("fastplug.cache")
CREDENTIALS = (b"authorization", b"cookie")
KEY_MEMO_SIZE = 10_000


class _Captured:
    """A response recorded from the app, up to a size limit."""

    def __init__(self) -> None:
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False
        self.streamed = False

    @property
    def status(self) -> int:
        return int(self.start["status"]) if self.start else 500

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.start.get("headers", ())) if self.start else []


def _storable(captured: _Captured, max_bytes: int) -> bool:
    if not (200 <= captured.status < 300) or not captured.done or captured.size > max_bytes:
        return False
    for name, value in captured.headers:
        name = name.lower()
        if name == b"set-cookie":
            return False
        if name == b"cache-control" and (b"no-store" in value.lower() or b"private" in value.lower()):
            return False
    return True


def _etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    return any(tag.strip() in (etag, b"*", b"W/" + etag) for tag in if_none_match.split(b","))


UNAVAILABLE_BODY = b'{"detail":"cache unavailable"}'
UNAVAILABLE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(UNAVAILABLE_BODY)).encode()),
    (b"retry-after", b"1"),
]
"""``fail_open = false`` and the backend down: 503 + Retry-After with a JSON body."""


class CacheMiddleware:
    """Serve cached GET/HEAD responses of cacheable routes; fill the cache on misses.

    Runs outside compression, so an entry holds the bytes for one negotiated coding
    (part of the key) and a hit skips routing, validation, serialization and gzip.
    """

    def __init__(self, app: ASGIApp, conf: CacheSettings) -> None:
        self.app = app
        self.vary = tuple(v.lower().encode() for v in conf.vary_headers)
        self.vary_header = ", ".join(conf.vary_headers).encode()
        self.keyed_credentials = conf.authenticated == "key"
        self.client_no_cache_bypasses = conf.client_no_cache_bypasses
        self.fail_open = conf.fail_open
        self.lock_timeout = conf.lock_timeout
        self.max_entry_bytes = conf.max_entry_bytes
        self.prefix, self.version = conf.key_prefix, conf.key_version
        self.key_headers = (b"host", *self.vary)
        self._keys: dict[tuple[Any, ...], str] = {}

    def _remember(self, ident: tuple[Any, ...], key: str) -> str:
        if len(self._keys) >= KEY_MEMO_SIZE:  # bounded whatever clients send
            self._keys.clear()
        self._keys[ident] = key
        return key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        cache: Cache | None = scope.get("state", {}).get(SERVICE)
        matched = cache.match(scope["path"]) if cache is not None else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        assert cache is not None
        policy, params = matched
        scope["route"] = policy.route  # as routing would: metrics label hits by route template
        headers = dict(scope["headers"])  # duplicate header names: the last wins, as for routing
        if not self.keyed_credentials and any(h in headers for h in CREDENTIALS):
            cache.stats.bypass += 1
            await self.app(scope, receive, _with_header(send, b"BYPASS"))
            return
        # The key of an exact (path, query, scheme, host, vary values) is computed once.
        ident = (
            scope["path"],
            scope["query_string"],
            scope["scheme"],
            *[headers.get(n, b"") for n in self.key_headers],
        )
        key = self._keys.get(ident)
        if key is None:
            key = self._remember(ident, self._key(scope, headers, policy, params))
        refresh = self.client_no_cache_bypasses and b"no-cache" in headers.get(b"cache-control", b"")
        try:
            if refresh:
                entry = None
            elif cache.get_now is not None:  # memory: no await needed
                entry = cache.get_now(key)
            else:
                entry = await cache.backend.get(key)
        except BackendUnavailable as exc:
            await self._unavailable(cache, exc, scope, receive, send)
            return
        now = time.time()
        if entry is not None:
            if entry.is_fresh(now):
                cache.stats.hit += 1
                await self._respond(scope, headers, entry, b"HIT", send, now)
                return
            cache.stats.stale += 1
            self._refresh_later(cache, scope, key, policy)
            await self._respond(scope, headers, entry, b"STALE", send, now)
            return
        if scope["method"] == "HEAD":  # no body to store: let the app answer
            cache.stats.miss += 1
            await self.app(scope, receive, _with_header(send, b"MISS"))
            return
        await self._miss(cache, scope, receive, send, headers, key, policy)

    def _key(self, scope: Scope, headers: dict[bytes, bytes], policy: RoutePolicy, params: dict[str, str]) -> str:
        vary: list[bytes] = []
        for name in self.vary:
            value = headers.get(name, b"")
            vary.append(accepted_coding(value) if name == b"accept-encoding" else value)
        return request_key(
            self.prefix,
            self.version,
            b"GET",
            scope["scheme"],
            headers.get(b"host", b""),
            policy.template,
            sorted(params.items()),
            sorted_query(scope["query_string"]),
            vary,
        )

    async def _unavailable(
        self, cache: Cache, exc: BackendUnavailable, scope: Scope, receive: Receive, send: Send
    ) -> None:
        cache.stats.error += 1
        if not self.fail_open:  # at the edge, before any handler: answered here, never a 500
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [*UNAVAILABLE_HEADERS, (b"x-cache", b"ERROR")],
                }
            )
            await send({"type": "http.response.body", "body": UNAVAILABLE_BODY})
            return
        cache.stats.bypass += 1
        log.debug("cache bypassed: %s", exc)
        await self.app(scope, receive, _with_header(send, b"BYPASS"))

    async def _respond(
        self, scope: Scope, headers: dict[bytes, bytes], entry: Entry, label: bytes, send: Send, now: float
    ) -> None:
        extra = [(b"age", str(int(entry.age(now))).encode()), (b"x-cache", label)]
        inm = headers.get(b"if-none-match")
        if inm is not None and _etag_matches(inm, entry.etag):
            keep = [(k, v) for k, v in entry.head if k in (b"etag", b"cache-control", b"vary")]
            await send({"type": "http.response.start", "status": 304, "headers": keep + extra})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": entry.status, "headers": entry.head + extra})
        body = b"" if scope["method"] == "HEAD" else entry.body
        await send({"type": "http.response.body", "body": body})

    async def _miss(
        self,
        cache: Cache,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        key: str,
        policy: RoutePolicy,
    ) -> None:
        flight = cache.flights.get(key)
        if flight is not None:  # another request of this process is filling it: wait for it
            try:
                entry = await asyncio.wait_for(asyncio.shield(flight), self.lock_timeout)
            except Exception:  # timed out, or the first request failed: answer this one alone
                entry = None
            if entry is not None:
                cache.stats.hit += 1
                await self._respond(scope, headers, entry, b"HIT", send, time.time())
                return
            cache.stats.miss += 1
            await self.app(scope, receive, _with_header(send, b"MISS"))
            return
        flight = cache.flights[key] = asyncio.get_running_loop().create_future()
        entry = None
        try:
            entry = await self._fill_or_wait(cache, scope, receive, send, headers, key, policy)
        finally:
            del cache.flights[key]
            if not flight.done():
                flight.set_result(entry)

    async def _fill_or_wait(
        self,
        cache: Cache,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        key: str,
        policy: RoutePolicy,
    ) -> Entry | None:
        try:
            # the clock is read here, before the handler reads anything: the store is skipped
            # if any of the entry's tags or its key is invalidated after it (see backends)
            token, snapshot = await cache.backend.lock(key, self.lock_timeout)
            if token is None:  # another process fills it: wait for its entry
                deadline = time.monotonic() + self.lock_timeout
                delay = 0.005
                while time.monotonic() < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.1)
                    entry = await cache.backend.get(key)
                    if entry is not None:
                        cache.stats.hit += 1
                        await self._respond(scope, headers, entry, b"HIT", send, time.time())
                        return entry
                    # no entry: if the lock is free, that fill ended without storing (an
                    # invalidation came meanwhile, or it failed): this request fills instead
                    token, snapshot = await cache.backend.lock(key, self.lock_timeout)
                    if token is not None:
                        break
        except BackendUnavailable as exc:
            await self._unavailable(cache, exc, scope, receive, send)
            return None
        try:
            cache.stats.miss += 1
            return await self._run_and_store(cache, scope, receive, send, headers, key, policy, snapshot)
        finally:
            if token is not None:
                try:
                    await cache.backend.unlock(key, token)
                except BackendUnavailable:
                    cache.stats.error += 1

    async def _run_and_store(
        self,
        cache: Cache,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes] | None,
        key: str,
        policy: RoutePolicy,
        snapshot: Snapshot,
    ) -> Entry | None:
        """Run the app and store its answer if the generations are still ``snapshot``'s.
        Returns the entry for the requests waiting on this fill, or None if not stored
        because of an invalidation meanwhile (they then ask the app themselves)."""
        client_send = send if headers is not None else None
        captured = _Captured()
        stored = False
        state = scope.get("state")
        added: list[str] = []  # CacheTags: tags the handler found in what it read
        if state is not None:
            state[TAGS] = added
        try:
            streamed = await self._capture(scope, receive, client_send, captured)
        except Exception:
            # At the edge, FastAPI's error middleware answered (500) and re-raised: pass its
            # answer on, store nothing, and let the server log the error.
            if client_send is not None and captured.start is not None and not captured.streamed:
                await _forward(captured, client_send)
            raise
        if streamed:  # too large: already streamed to the client, not stored
            return None
        entry = None
        if _storable(captured, self.max_entry_bytes):
            entry = build_entry(
                captured.status,
                captured.headers,
                b"".join(captured.chunks),
                policy.ttl,
                policy.stale,
                _private(policy.cache_control)
                if headers and any(h in headers for h in CREDENTIALS)
                else policy.cache_control,
                self.vary_header,
            )
            stored = True
            try:
                stored = await cache.backend.set(key, entry, (*_tags(scope, policy), *added), snapshot)
            except BackendUnavailable as exc:
                cache.stats.error += 1
                log.debug("cache store failed: %s", exc)
            if not stored:
                log.debug("cache: %s invalidated while computed, not stored", scope["path"])
        if headers is None:  # a background refresh: nobody to answer
            return entry if stored else None
        if entry is not None:
            await self._respond(scope, headers, entry, b"MISS", send, entry.stored_at)
        else:
            await _forward(captured, send)
        return entry if stored else None

    async def _capture(self, scope: Scope, receive: Receive, send: Send | None, captured: _Captured) -> bool:
        """Run the app, recording its response into ``captured``. Past ``max_entry_bytes``
        it is streamed to ``send`` as it comes instead (and True is returned)."""

        async def record(message: Message) -> None:
            if captured.streamed:
                await send(message)  # type: ignore[misc]
                return
            if message["type"] == "http.response.start":
                captured.start = message
                return
            if message["type"] != "http.response.body":
                return
            body = message.get("body", b"")
            captured.chunks.append(body)
            captured.size += len(body)
            if not message.get("more_body", False):
                captured.done = True
            elif captured.size > self.max_entry_bytes and send is not None:
                captured.streamed = True
                start = dict(captured.start or {})
                start["headers"] = [*captured.headers, (b"x-cache", b"MISS")]
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(captured.chunks), "more_body": True})

        await self.app(scope, receive, record)
        return captured.streamed

    def _refresh_later(self, cache: Cache, scope: Scope, key: str, policy: RoutePolicy) -> None:
        if key in cache.flights:
            return
        flight = cache.flights[key] = asyncio.get_running_loop().create_future()
        background = {**scope, "headers": list(scope["headers"]), "state": dict(scope.get("state", {}))}
        received = asyncio.Event()

        async def receive() -> Message:
            if received.is_set():  # a client that stays connected until the response is done
                await asyncio.Event().wait()
            received.set()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def refresh() -> None:
            entry = None
            try:
                snapshot = await cache.backend.snapshot()
                entry = await self._run_and_store(cache, background, receive, _discard, None, key, policy, snapshot)
            except BackendUnavailable as exc:
                cache.stats.error += 1
                log.debug("cache: no background refresh of %s: %s", scope["path"], exc)
            except Exception:
                log.exception("cache: background refresh of %s failed", scope["path"])
            finally:
                cache.flights.pop(key, None)
                flight.set_result(entry)

        task = asyncio.get_running_loop().create_task(refresh())
        cache.background.add(task)
        task.add_done_callback(cache.background.discard)


def _tags(scope: Scope, policy: RoutePolicy) -> tuple[str, ...]:
    """An entry's static tags: the route's, plus its route name and path (so that invalidation
    by route or path is invalidation by tag, generations included). The handler's
    ``CacheTags`` are added to them once it has run."""
    return (*policy.tags, f"route:{policy.name}", f"path:{scope['path']}")


def _private(cache_control: bytes) -> bytes:
    """A response cached per credential must not be stored by shared caches downstream."""
    parts = [p.strip() for p in cache_control.split(b",") if p.strip() not in (b"public", b"private")]
    return b", ".join([b"private", *(p for p in parts if not p.startswith(b"s-maxage"))])


async def _discard(message: Message) -> None:
    return None


async def _forward(captured: _Captured, send: Send) -> None:
    """Send a recorded response as it was, labelled as a miss."""
    start = dict(captured.start or {"type": "http.response.start", "status": 500})
    start["headers"] = [*captured.headers, (b"x-cache", b"MISS")]
    await send(start)
    await send({"type": "http.response.body", "body": b"".join(captured.chunks)})


def _with_header(send: Send, label: bytes) -> Callable[[Message], Awaitable[None]]:
    async def send_labelled(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"x-cache", label)]}
        await send(message)

    return send_labelled
