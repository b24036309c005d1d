"""The cache follows HTTP and stays bounded whatever clients send (memory and real Redis):
the stored coding is the key's coding, RFC 9111's storage rules and the response's own
Vary are obeyed, HEAD is GET without a body, and per-process and per-route bounds hold."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

import cache_shop
import pytest
import redis as redis_sync
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.core import negotiate
from fastplug.plugins.cache import _check_eviction
from fastplug.plugins.cache.middleware import KEY_MEMO_ITEM_BYTES
from fastplug.plugins.cache.settings import MIN_MEMO
from fastplug.plugins.compression.api import codings_for
from tests import test_cache
from tests.chaos.instances import PrivateRedis

Make = Callable[..., FastAPI]
REDIS_URL = test_cache.REDIS_URL
# the cache tests' own fixtures: a key prefix of each test's own, both backends, calls reset
prefix, backend, reset_calls = test_cache.prefix, test_cache.backend, test_cache.reset_calls
CODINGS = codings_for(True)
ENCODINGS = [
    None,
    "x-gzip",
    "gzip",
    "GZIP",
    "br;q=0.5, gzip",
    "gzip;q=0.5, br",
    "br",
    "x-gzip;q=0.9, br;q=0.1",
    "identity",
    "",
    "*",
    "*;q=0, identity",
    "gzip;q=0",
    "deflate",
    "gzip;q=nan, br;q=0",
    "gzip" + ", x" * 600,  # longer than an Accept-Encoding may be: ignored, identity
]


@pytest.fixture
def make(fastplug_app_factory: Make, backend: str, prefix: str) -> Make:
    """The shop behind cache and compression on ``backend``."""

    def build(**cache: Any) -> FastAPI:
        cache = {"backend": backend, "key_prefix": prefix, "op_timeout": 2.0, **cache}
        return fastplug_app_factory(
            extra_plugins={"shop": cache_shop},
            plugins=["health", "redis", "compression", "cache", "shop"],
            redis={"url": REDIS_URL} if backend == "redis" else {},
            cache=cache,
        )

    return build


def _client(app: FastAPI) -> TestClient:
    client = TestClient(app)
    client.headers.pop("accept-encoding", None)  # each request says what it accepts, or nothing
    return client


def _get(client: TestClient, path: str, accept: str | None) -> Any:
    return client.get(path, headers={} if accept is None else {"accept-encoding": accept})


def test_x_gzip_does_not_poison_the_identity_entry(make: Make) -> None:
    with _client(make()) as client:
        gzip = _get(client, "/big/1", "x-gzip")
        plain = _get(client, "/big/1", None)
        again = _get(client, "/big/1", None)
    assert gzip.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers and "content-encoding" not in again.headers
    assert [plain.headers["x-cache"], again.headers["x-cache"]] == ["MISS", "HIT"]
    assert plain.json() == gzip.json()


@pytest.mark.skipif("br" not in CODINGS, reason="brotli is not installed")
def test_q_values_rank_codings_as_compression_does(make: Make) -> None:
    with _client(make()) as client:
        gzip_first = _get(client, "/big/2", "br;q=0.5, gzip")
        br = _get(client, "/big/2", "br")
    assert gzip_first.headers["content-encoding"] == "gzip"
    assert (br.headers["content-encoding"], br.headers["x-cache"]) == ("br", "MISS")


def test_every_response_is_in_the_coding_its_accept_encoding_asks_for(make: Make) -> None:
    """Whatever order the variants are filled in, each answer (hit or miss) is in the coding
    compression picks for its own Accept-Encoding."""
    with _client(make()) as client:
        for order in (ENCODINGS, ENCODINGS[::-1]):
            for accept in order:
                response = _get(client, "/big/3", accept)
                expected = negotiate(accept, CODINGS) if accept is not None else None
                assert response.headers.get("content-encoding") == expected, (accept, response.headers)
                assert response.json()["id"] == 3
    assert cache_shop.calls["big"] == len({negotiate(a or "", CODINGS) for a in ENCODINGS})


def test_response_vary_is_part_of_the_key(make: Make) -> None:
    with _client(make()) as client:
        fr = client.get("/lang", headers={"accept-language": "fr"})
        de = client.get("/lang", headers={"accept-language": "de"})
        fr2 = client.get("/lang", headers={"accept-language": "fr"})
        de2 = client.get("/lang", headers={"accept-language": "de"})
    assert [r.json()["lang"] for r in (fr, de, fr2, de2)] == ["fr", "de", "fr", "de"]
    assert [r.headers["x-cache"] for r in (fr, de, fr2, de2)] == ["MISS", "MISS", "HIT", "HIT"]
    vary = [token.strip().lower() for token in de2.headers["vary"].split(",")]
    assert "accept-language" in vary and "accept-encoding" in vary


def test_a_repeated_header_does_not_poison_a_variant(make: Make) -> None:
    """The handler reads the first Accept-Language; the key holds every value."""
    with _client(make()) as client:
        client.get("/lang", headers={"accept-language": "en"})  # the route's Vary is learned
        both = client.get("/lang", headers=[("accept-language", "fr"), ("accept-language", "de")])
        de = client.get("/lang", headers={"accept-language": "de"})
    assert both.json()["lang"] == "fr"
    assert (de.json()["lang"], de.headers["x-cache"]) == ("de", "MISS")


def test_vary_star_is_never_stored(make: Make) -> None:
    with _client(make()) as client:
        answers = [client.get("/vary-star") for _ in range(2)]
    assert [r.headers["x-cache"] for r in answers] == ["MISS", "MISS"]
    assert cache_shop.calls["vary-star"] == 2 and answers[1].headers["vary"] == "*"


@pytest.mark.parametrize(
    "control",
    ["no-cache", "no-store", "private", "max-age=0", "s-maxage=0, max-age=60", 'no-cache="set-cookie"', "max-age=x"],
)
def test_responses_a_shared_cache_must_not_store_are_not_stored(make: Make, control: str) -> None:
    with _client(make()) as client:
        answers = [client.get("/controlled/a", params={"control": control}) for _ in range(2)]
    assert [r.headers["x-cache"] for r in answers] == ["MISS", "MISS"]
    assert cache_shop.calls["controlled-a"] == 2
    assert answers[1].headers["cache-control"] == control  # the handler's, untouched


def test_an_expires_in_the_past_is_not_stored(make: Make) -> None:
    with _client(make()) as client:
        for expires in ("Thu, 01 Jan 1970 00:00:00 GMT", "0"):
            client.get("/controlled/old", params={"expires": expires})
            again = client.get("/controlled/old", params={"expires": expires})
            assert again.headers["x-cache"] == "MISS"


def test_the_handlers_cache_control_is_kept_and_gives_the_ttl(make: Make) -> None:
    with _client(make()) as client:
        miss = client.get("/controlled/b", params={"control": "public, max-age=5, must-revalidate"})
        hit = client.get("/controlled/b", params={"control": "public, max-age=5, must-revalidate"})
        default = client.get("/controlled/c")
    assert [miss.headers["x-cache"], hit.headers["x-cache"]] == ["MISS", "HIT"]
    assert hit.headers["cache-control"] == "public, max-age=5, must-revalidate"
    assert default.headers["cache-control"] == "public, max-age=60"  # [cache] cache_control


def test_head_is_get_without_a_body_on_a_miss_and_a_hit(make: Make) -> None:
    with _client(make()) as client:
        head_miss = client.head("/items/41")
        get = client.get("/items/41")
        head_hit = client.head("/items/41")
    assert (head_miss.status_code, head_miss.headers["x-cache"], head_miss.content) == (200, "MISS", b"")
    assert get.headers["x-cache"] == "HIT"  # the HEAD filled the GET entry
    assert head_miss.headers["content-length"] == str(len(get.content))
    assert (head_hit.status_code, head_hit.headers["x-cache"], head_hit.content) == (200, "HIT", b"")
    assert cache_shop.calls["item"] == 1


def test_route_cap_keeps_the_newest_entries(make: Make, backend: str, prefix: str) -> None:
    cap, distinct = 20, 60
    with _client(make(max_keys_per_route=cap)) as client:
        for i in range(distinct):
            assert client.get("/search", params={"q": f"q{i}"}).headers["x-cache"] == "MISS"
        # no-store requests are served from the cache but never fill it: the survivors, as they are
        labels = [
            client.get("/search", params={"q": f"q{i}"}, headers={"cache-control": "no-store"}).headers["x-cache"]
            for i in range(distinct)
        ]
    assert labels.count("HIT") == cap
    assert labels[-1] == "HIT" and labels[0] == "MISS"
    if backend == "redis":
        client_ = redis_sync.Redis.from_url(REDIS_URL)
        entries = [k for k in client_.scan_iter(f"{prefix}:*") if len(k.rsplit(b":", 1)[-1]) == 64]
        client_.close()
        assert len(entries) == cap


def test_key_memo_is_bounded_in_bytes(fastplug_app_factory: Make) -> None:
    """400 requests with a 100 KB Host (distinct each) keep no more than the memo's byte
    bound: 40 MB of hosts went through (2.5 times the bound asserted), a few MB stayed."""
    app = fastplug_app_factory(
        extra_plugins={"shop": cache_shop}, plugins=["cache", "shop"], cache={"max_bytes": 8 << 20}
    )
    with _client(app) as client:
        client.get("/items/1")
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(400):
                host = f"h{i}-" + "x" * 100_000
                assert client.get("/items/1", headers={"host": host}).status_code == 200
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < MIN_MEMO * KEY_MEMO_ITEM_BYTES + (12 << 20), grown


def test_check_warns_when_redis_does_not_bound_the_cache() -> None:
    private_redis = PrivateRedis()
    client = redis_sync.Redis.from_url(private_redis.url)
    try:
        client.config_set("maxmemory", 0)
        [unbounded] = _check_eviction(private_redis.url)
        assert unbounded.id == "cache.W002" and "no maxmemory" in unbounded.msg
        client.config_set("maxmemory", 64 << 20)
        client.config_set("maxmemory-policy", "noeviction")
        [full] = _check_eviction(private_redis.url)
        assert full.id == "cache.W003" and "noeviction" in full.msg
        client.config_set("maxmemory-policy", "allkeys-lru")
        assert _check_eviction(private_redis.url) == []
    finally:
        client.close()
        private_redis.kill()
    assert _check_eviction(private_redis.url) == []  # unreachable: the redis checks say so
