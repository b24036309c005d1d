"""The cache middleware (pure ASGI): serves hits before routing, stores misses' final bytes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastplug.core import FRESH_READS, Answer, negotiate
from fastplug.plugins.cache.api import SERVICE, TAGS
from fastplug.plugins.cache.backends import BackendUnavailable, Snapshot
from fastplug.plugins.cache.entry import Entry, build_entry
from fastplug.plugins.cache.keys import request_key, sorted_query
from fastplug.plugins.cache.rules import MAX_VARY, storable
from fastplug.plugins.cache.service import Cache, Params, RoutePolicy
from fastplug.plugins.cache.settings import CacheSettings

log = logging.getLogger("fastplug.cache")
CREDENTIALS = (b"authorization", b"cookie")


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


def _etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    return any(tag.strip() in (etag, b"*", b"W/" + etag) for tag in if_none_match.split(b","))


UNAVAILABLE_BODY = b'{"detail":"cache unavailable"}'
UNAVAILABLE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(UNAVAILABLE_BODY)).encode()),
    (b"retry-after", b"1"),
]
"""``fail_open = false`` and the backend down: 503 + Retry-After with a JSON body."""


DEFAULT_CODINGS = ("br", "gzip")
"""Codings keyed when the compression plugin is off (a handler may still compress itself)."""
KEY_MEMO_ITEM_BYTES = 400
"""Bytes of request parts the key memo may hold per entry of ``[cache] memo_size`` (4 MB for
10,000): past them, or past the size, it starts again empty; a larger request is keyed each time."""
KEY_MEMO_ITEM = 4096
CODING_MEMO_SIZE, CODING_MEMO_ITEM = 64, 256
"""Accept-Encoding values whose negotiated coding is remembered, and their longest."""


@dataclass(slots=True)
class _Request:
    """One miss: what is needed to run, key and store it (and to key it again if its
    route turns out to vary on more request headers)."""

    scope: Scope
    headers: dict[bytes, bytes]
    policy: RoutePolicy
    params: Params
    key: str


class CacheMiddleware:
    """Serve cached GET/HEAD responses of cacheable routes; fill the cache on misses.

    Runs outside compression, so an entry holds the bytes for one negotiated coding (part
    of the key, negotiated as compression negotiates it) and a hit skips routing,
    validation, serialization and gzip. HEAD is answered as GET without the body. What is
    stored follows RFC 9111 (:mod:`fastplug.plugins.cache.rules`); a route whose responses
    name request headers in ``Vary`` is keyed by those headers from then on.
    """

    def __init__(self, app: ASGIApp, conf: CacheSettings, codings: Sequence[str] = DEFAULT_CODINGS) -> None:
        self.app = app
        self.configured = tuple(v.lower().encode() for v in conf.vary_headers)
        self.configured_tokens = tuple(v.encode() for v in conf.vary_headers)
        self.codings = tuple(codings) or DEFAULT_CODINGS
        self.keyed_credentials = conf.authenticated == "key"
        self.client_no_cache_bypasses = conf.client_no_cache_bypasses
        self.fail_open = conf.fail_open
        self.lock_timeout = conf.lock_timeout
        self.max_entry_bytes = conf.max_entry_bytes
        self.prefix, self.version = conf.key_prefix, conf.key_version
        self._names: dict[str, tuple[bytes, ...]] = {}  # route template -> the headers it is keyed by
        self._keys: dict[tuple[Any, ...], str] = {}
        self._memo_bytes = 0
        self.memo_size = conf.memo_size
        self.memo_bytes_limit = conf.memo_size * KEY_MEMO_ITEM_BYTES
        self._codings_of: dict[bytes, bytes] = {}

    def _remember(self, ident: tuple[Any, ...], size: int, key: str) -> str:
        if size > KEY_MEMO_ITEM:  # bounded whatever clients send: keyed each time, not kept
            return key
        if len(self._keys) >= self.memo_size or self._memo_bytes + size > self.memo_bytes_limit:
            self._forget_keys()
        self._keys[ident] = key
        self._memo_bytes += size
        return key

    def _forget_keys(self) -> None:
        self._keys.clear()
        self._memo_bytes = 0

    def answer_now(self, scope: Scope) -> Answer | None:
        """A fresh hit on the memory backend, answered without awaiting (fastplug's HTTP
        protocol asks before it makes the request's task); None for anything else, which
        then comes through :meth:`__call__` unchanged."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return None
        state = scope.get("state")
        cache: Cache | None = state.get(SERVICE) if state else None
        if cache is None or cache.get_now is None:
            return None
        matched = cache.match(scope["path"])
        if matched is None:
            return None
        policy, params = matched
        headers = _first_values(scope["headers"])
        if not self.keyed_credentials and any(h in headers for h in CREDENTIALS):
            return None
        control = headers.get(b"cache-control")
        if control is not None and self.client_no_cache_bypasses and b"no-cache" in control.lower():
            return None
        entry = cache.get_now(self._key_of(scope, headers, policy, params))
        now = time.time()
        if entry is None or not entry.is_fresh(now):
            return None
        cache.stats.hit += 1
        scope["route"] = policy.route
        status, head, body = self._answer(headers, entry, b"HIT", now)
        return status, head, b"" if scope["method"] == "HEAD" else body

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
        if scope["method"] == "HEAD":  # answered as GET without the body, hit or miss
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        headers = _first_values(scope["headers"])
        if not self.keyed_credentials and any(h in headers for h in CREDENTIALS):
            cache.stats.bypass += 1
            await self.app(scope, receive, _with_header(send, b"BYPASS"))
            return
        key = self._key_of(scope, headers, policy, params)
        refresh = no_store = False
        control = headers.get(b"cache-control")
        if control is not None:
            control = control.lower()
            refresh = self.client_no_cache_bypasses and b"no-cache" in control
            no_store = b"no-store" in control  # RFC 9111 5.2.1.5: may be served, not stored
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
                await self._respond(headers, entry, b"HIT", send, now)
                return
            cache.stats.stale += 1
            self._refresh_later(cache, _Request(scope, headers, policy, params, key))
            await self._respond(headers, entry, b"STALE", send, now)
            return
        if no_store:
            cache.stats.miss += 1
            await self.app(scope, receive, _with_header(send, b"MISS"))
            return
        await self._miss(cache, _Request(scope, headers, policy, params, key), receive, send)

    def _key_of(self, scope: Scope, headers: dict[bytes, bytes], policy: RoutePolicy, params: Params) -> str:
        """The key of this request's variant: the key of an exact (path, query, scheme, host,
        values of the headers the route is keyed by) is computed once (memo bounded)."""
        names = self._names.get(policy.template, self.configured)
        raw = scope["headers"]
        if len(raw) == len(headers):
            values = [headers.get(b"host", b""), *[headers.get(n, b"") for n in names]]
        else:  # repeated headers: every value is part of the key, in order
            values = _joined(raw, (b"host", *names))
        ident = (scope["path"], scope["query_string"], scope["scheme"], *values)
        key = self._keys.get(ident)
        if key is not None:
            return key
        vary: list[bytes] = []
        for name, value in zip(names, values[1:], strict=True):
            vary.append(name)
            vary.append(self._coding(value) if name == b"accept-encoding" else value)
        key = request_key(
            self.prefix,
            self.version,
            b"GET",
            scope["scheme"],
            values[0],
            policy.template,
            params,
            sorted_query(scope["query_string"]),
            vary,
        )
        size = len(scope["path"]) + len(scope["query_string"]) + sum(len(v) for v in values) + 64 * len(values)
        return self._remember(ident, size, key)

    def _coding(self, accept_encoding: bytes) -> bytes:
        """The coding compression will send for this ``Accept-Encoding`` (one parser for both);
        remembered per value (few distinct values in practice; bounded)."""
        coding = self._codings_of.get(accept_encoding)
        if coding is None:
            coding = (negotiate(accept_encoding, self.codings) or "identity").encode()
            if len(self._codings_of) >= CODING_MEMO_SIZE or len(accept_encoding) > CODING_MEMO_ITEM:
                self._codings_of.clear()
            else:
                self._codings_of[accept_encoding] = coding
        return coding

    def _learn(self, request: _Request, vary: Sequence[bytes]) -> bool:
        """Key the route by the request headers its response varies on, too; False when that
        would be more than ``MAX_VARY`` headers (the response is then not stored)."""
        names = self._names.get(request.policy.template, self.configured)
        missing = sorted({name for name in vary if name not in names and name != b"host"})
        if not missing:
            return True
        learned = sorted({*names[len(self.configured) :], *missing})
        if len(learned) > MAX_VARY:
            return False
        self._names[request.policy.template] = (*self.configured, *learned)
        self._forget_keys()  # keys remembered for this route left those headers out
        request.key = self._key_of(request.scope, request.headers, request.policy, request.params)
        return True

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

    def _answer(self, headers: dict[bytes, bytes], entry: Entry, label: bytes, now: float) -> Answer:
        """The response to send from ``entry``: 304 when ``If-None-Match`` names its ETag."""
        extra = ((b"age", str(int(entry.age(now))).encode()), (b"x-cache", label))
        inm = headers.get(b"if-none-match")
        if inm is not None and _etag_matches(inm, entry.etag):
            keep = [(k, v) for k, v in entry.head if k in (b"etag", b"cache-control", b"vary", b"expires")]
            return 304, [*keep, *extra], b""
        return entry.status, [*entry.head, *extra], entry.body

    async def _respond(self, headers: dict[bytes, bytes], entry: Entry, label: bytes, send: Send, now: float) -> None:
        status, head, body = self._answer(headers, entry, label, now)
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def _miss(self, cache: Cache, request: _Request, receive: Receive, send: Send) -> None:
        key = request.key
        flight = cache.flights.get(key)
        if flight is not None:  # another request of this process is filling it: wait for it
            try:
                filled = await asyncio.wait_for(asyncio.shield(flight), self.lock_timeout)
            except Exception:  # timed out, or the first request failed: answer this one alone
                filled = None
            entry = self._if_same_variant(request, filled)
            if entry is not None:
                cache.stats.hit += 1
                await self._respond(request.headers, entry, b"HIT", send, time.time())
                return
            cache.stats.miss += 1
            await self.app(request.scope, receive, _with_header(send, b"MISS"))
            return
        flight = cache.flights[key] = asyncio.get_running_loop().create_future()
        filled = None
        try:
            filled = await self._fill_or_wait(cache, request, receive, send)
        finally:
            del cache.flights[key]
            if not flight.done():
                flight.set_result(filled)

    def _if_same_variant(self, request: _Request, filled: tuple[Entry, str] | None) -> Entry | None:
        """The entry another request filled, if it is this request's variant: the fill may
        have found that the route varies on a header whose value this request differs in."""
        if filled is None:
            return None
        entry, stored_key = filled
        if stored_key != request.key:
            request.key = self._key_of(request.scope, request.headers, request.policy, request.params)
        return entry if stored_key == request.key else None

    async def _fill_or_wait(
        self, cache: Cache, request: _Request, receive: Receive, send: Send
    ) -> tuple[Entry, str] | None:
        key = request.key
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
                        await self._respond(request.headers, entry, b"HIT", send, time.time())
                        return entry, key
                    # no entry: if the lock is free, that fill ended without storing (an
                    # invalidation came meanwhile, it failed, or it stored another variant):
                    # this request fills instead
                    token, snapshot = await cache.backend.lock(key, self.lock_timeout)
                    if token is not None:
                        break
        except BackendUnavailable as exc:
            await self._unavailable(cache, exc, request.scope, receive, send)
            return None
        try:
            cache.stats.miss += 1
            return await self._run_and_store(cache, request, receive, send, snapshot)
        finally:
            if token is not None:
                try:
                    await cache.backend.unlock(key, token)
                except BackendUnavailable:
                    cache.stats.error += 1

    async def _run_and_store(
        self, cache: Cache, request: _Request, receive: Receive, send: Send | None, snapshot: Snapshot
    ) -> tuple[Entry, str] | None:
        """Run the app and store its answer if the generations are still ``snapshot``'s and
        HTTP allows it. Returns the entry and its key for the requests waiting on this fill,
        or None if not stored (they then ask the app themselves). ``send`` None: a
        background refresh, nobody to answer."""
        scope, policy = request.scope, request.policy
        captured = _Captured()
        state = scope.get("state")
        added: list[str] = []  # CacheTags: tags the handler found in what it read
        if state is not None:
            state[TAGS] = added
        fresh = FRESH_READS.set(True)  # what is stored is served to others: no read on a lagging replica
        try:
            streamed = await self._capture(scope, receive, send, captured)
        except Exception:
            # At the edge, FastAPI's error middleware answered (500) and re-raised: pass its
            # answer on, store nothing, and let the server log the error.
            if send is not None and captured.start is not None and not captured.streamed:
                await _forward(captured, send)
            raise
        finally:
            FRESH_READS.reset(fresh)
        if streamed:  # too large: already streamed to the client, not stored
            return None
        entry = None
        stored = False
        rules = storable(captured.headers, policy.ttl) if self._complete(captured) else None
        if rules is not None and self._learn(request, rules.vary):
            control = rules.cache_control if rules.cache_control is not None else policy.cache_control
            if any(h in request.headers for h in CREDENTIALS):
                control = _private(control)
            entry = build_entry(
                captured.status,
                captured.headers,
                b"".join(captured.chunks),
                rules.ttl,
                policy.stale if rules.may_be_stale else 0.0,
                control,
                self._vary_value(captured.headers),
            )
            try:
                stored = await cache.backend.set(request.key, entry, (*_tags(scope, policy), *added), snapshot)
            except BackendUnavailable as exc:
                cache.stats.error += 1
                log.debug("cache store failed: %s", exc)
            if not stored:
                log.debug("cache: %s invalidated while computed, not stored", scope["path"])
        if send is not None:
            if entry is not None:
                await self._respond(request.headers, entry, b"MISS", send, entry.stored_at)
            else:
                await _forward(captured, send)
        return (entry, request.key) if stored and entry is not None else None

    def _complete(self, captured: _Captured) -> bool:
        """A whole 2xx response within ``max_entry_bytes``."""
        return 200 <= captured.status < 300 and captured.done and captured.size <= self.max_entry_bytes

    def _vary_value(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The handler's ``Vary`` (compression's included), then the configured key headers."""
        tokens = [t.strip() for name, value in headers if name.lower() == b"vary" for t in value.split(b",")]
        tokens = [t for t in tokens if t]
        seen = {t.lower() for t in tokens}
        tokens += [t for t in self.configured_tokens if t.lower() not in seen]
        return b", ".join(tokens)

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

    def _refresh_later(self, cache: Cache, request: _Request) -> None:
        key, scope = request.key, request.scope
        if key in cache.flights:
            return
        flight = cache.flights[key] = asyncio.get_running_loop().create_future()
        background = {**scope, "headers": list(scope["headers"]), "state": dict(scope.get("state", {}))}
        request = _Request(background, request.headers, request.policy, request.params, key)
        received = asyncio.Event()

        async def receive() -> Message:
            if received.is_set():  # a client that stays connected until the response is done
                await asyncio.Event().wait()
            received.set()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def refresh() -> None:
            filled = None
            try:
                snapshot = await cache.backend.snapshot()
                filled = await self._run_and_store(cache, request, receive, None, snapshot)
            except BackendUnavailable as exc:
                cache.stats.error += 1
                log.debug("cache: no background refresh of %s: %s", scope["path"], exc)
            except Exception:
                log.exception("cache: background refresh of %s failed", scope["path"])
            finally:
                cache.flights.pop(key, None)
                flight.set_result(filled)

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


def _first_values(raw: Sequence[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The request headers by name; of a repeated one the first wins, as ``request.headers.get``."""
    headers = dict(raw)
    if len(headers) != len(raw):
        headers = dict(reversed(raw))
    return headers


def _joined(raw: Sequence[tuple[bytes, bytes]], names: Sequence[bytes]) -> list[bytes]:
    """Each of ``names``' values, repeated fields joined by a newline (which no value holds)."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in raw:
        found.setdefault(name, []).append(value)
    return [b"\n".join(found.get(name, ())) for name in names]


def _without_body(send: Send) -> Callable[[Message], Awaitable[None]]:
    """``send`` for a HEAD answered as GET: the response start as it is, the body dropped."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b""}
        await send(message)

    return send_head


def _with_header(send: Send, label: bytes) -> Callable[[Message], Awaitable[None]]:
    async def send_labelled(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"x-cache", label)]}
        await send(message)

    return send_labelled
