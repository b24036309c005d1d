"""The cache plugin on the memory backend and on the real Redis."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cache_shop
import httpx
import pytest
import redis as redis_sync
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.core.testing import LiveServer, require_service
from fastplug.plugins.cache.entry import Entry, build_entry

Make = Callable[..., FastAPI]
REDIS_URL = "redis://127.0.0.1:6379/0"
TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def reset_calls() -> None:
    cache_shop.calls.clear()
    cache_shop.gate.set()
    cache_shop.entered.clear()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its Redis keys are deleted afterwards."""
    name = f"fptest:{uuid.uuid4().hex[:10]}"
    yield name
    try:
        client = redis_sync.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
        for key in client.scan_iter(f"{name}*"):
            client.delete(key)
        client.close()
    except redis_sync.RedisError:
        pass


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
    return str(request.param)


def settings_for(backend: str, prefix: str, redis_url: str = REDIS_URL, **cache: Any) -> dict[str, Any]:
    plugins = ["health", "redis", "cache", "shop"]
    return {
        "plugins": plugins,
        "redis": {"url": redis_url} if backend == "redis" else {},
        "cache": {"backend": backend, "key_prefix": prefix, **cache},
    }


@pytest.fixture
def make(fastplug_app_factory: Make, backend: str, prefix: str) -> Make:
    """An app on ``backend``; Redis operations get 2 s, not 0.1 s: a busy test machine can take
    longer, and these tests are about caching, not about a slow Redis (those set their own)."""

    def build(**cache: Any) -> FastAPI:
        cache.setdefault("op_timeout", 2.0)
        return fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings_for(backend, prefix, **cache))

    return build


def test_hit_is_byte_identical_and_skips_the_handler(make: Make) -> None:
    with TestClient(make()) as client:
        miss = client.get("/items/7")
        hit = client.get("/items/7")
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content == b'{"id":7,"name":"item 7","calls":1}'
    assert hit.headers["etag"] == miss.headers["etag"] and hit.headers["etag"].startswith('"')
    assert hit.headers["cache-control"] == "public, max-age=60"
    assert hit.headers["content-type"] == "application/json"
    assert int(hit.headers["age"]) >= 0
    assert cache_shop.calls["item"] == 1


@pytest.mark.parametrize("kind", ["list", "zero", "null"])
def test_falsy_results_are_cached(make: Make, kind: str) -> None:
    with TestClient(make()) as client:
        bodies = [client.get(f"/falsy/{kind}").content for _ in range(3)]
    assert len(set(bodies)) == 1
    assert cache_shop.calls[f"falsy-{kind}"] == 1


def test_if_none_match_gives_304(make: Make) -> None:
    with TestClient(make()) as client:
        etag = client.get("/items/1").headers["etag"]
        not_modified = client.get("/items/1", headers={"if-none-match": etag})
        changed = client.get("/items/1", headers={"if-none-match": '"other"'})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert not_modified.headers["cache-control"] == "public, max-age=60"
    assert changed.status_code == 200 and changed.headers["x-cache"] == "HIT"


def test_requests_with_credentials_bypass_by_default(make: Make) -> None:
    with TestClient(make()) as client:
        alice = client.get("/me", headers={"authorization": "Bearer alice"})
        bob = client.get("/me", headers={"authorization": "Bearer bob"})
        cookie = client.get("/me", headers={"cookie": "session=x"})
    assert alice.json() == {"user": "Bearer alice"} and bob.json() == {"user": "Bearer bob"}
    assert {alice.headers["x-cache"], bob.headers["x-cache"], cookie.headers["x-cache"]} == {"BYPASS"}
    assert cache_shop.calls["me"] == 3


def test_credentials_keyed_never_leak_across_users(make: Make) -> None:
    with TestClient(make(authenticated="key")) as client:
        answers = [
            client.get("/me", headers={"authorization": f"Bearer {user}"}) for user in ("alice", "bob", "alice", "bob")
        ]
        anonymous = client.get("/me")
    assert [a.json()["user"] for a in answers] == ["Bearer alice", "Bearer bob", "Bearer alice", "Bearer bob"]
    assert [a.headers["x-cache"] for a in answers] == ["MISS", "MISS", "HIT", "HIT"]
    assert answers[2].headers["cache-control"] == "private, max-age=60"
    assert anonymous.json() == {"user": None}
    assert anonymous.headers["cache-control"] == "public, max-age=60"
    assert cache_shop.calls["me"] == 3


def test_concurrent_misses_run_the_handler_once(make: Make) -> None:
    # 50 client threads in this process starve the server's event loop of the GIL: give
    # Redis operations more than the production 100 ms so none is taken for an outage
    app = make(op_timeout=5)
    with LiveServer(app) as server, ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: httpx.get(f"{server.url}/slow/x", timeout=30), range(50)))
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["calls"] for a in answers} == {1}
    assert cache_shop.calls["slow"] == 1


def test_tag_invalidation(make: Make) -> None:
    with TestClient(make()) as client:
        client.get("/items/1")
        client.get("/items/2")
        assert client.post("/items/1").json() == {"invalidated": 2}
        again = client.get("/items/1")
    assert again.headers["x-cache"] == "MISS" and again.json()["calls"] == 3


def test_ttl_expiry(make: Make) -> None:
    with TestClient(make()) as client:
        first = client.get("/short")
        time.sleep(0.5)
        later = client.get("/short")
    assert first.json() == {"calls": 1}
    assert later.headers["x-cache"] == "MISS" and later.json() == {"calls": 2}


def test_stale_while_revalidate(make: Make) -> None:
    with TestClient(make()) as client:
        client.get("/swr")
        time.sleep(0.4)
        stale = client.get("/swr")
        for _ in range(100):  # the refresh runs in the background
            fresh = client.get("/swr")
            if fresh.headers["x-cache"] == "HIT" and fresh.json()["calls"] == 2:
                break
            time.sleep(0.02)
    assert stale.headers["x-cache"] == "STALE" and stale.json() == {"calls": 1}
    assert fresh.json() == {"calls": 2} and fresh.headers["x-cache"] == "HIT"


@pytest.mark.parametrize("path", ["/status/404", "/status/500", "/cookie", "/no-store"])
def test_not_stored(make: Make, path: str) -> None:
    with TestClient(make(), raise_server_exceptions=False) as client:
        answers = []
        for _ in range(2):
            answers.append(client.get(path))
            client.cookies.clear()  # a cookie would make the next request bypass the cache
    assert [a.headers.get("x-cache") for a in answers] == ["MISS", "MISS"]
    counter = path.strip("/").replace("/", "-")
    assert cache_shop.calls[counter] == 2


def test_a_failing_handler_gives_500_and_nothing_is_stored(make: Make) -> None:
    with TestClient(make(), raise_server_exceptions=False) as client:
        answers = [client.get("/boom") for _ in range(2)]
    assert [a.status_code for a in answers] == [500, 500]
    assert [a.headers.get("x-cache") for a in answers] == ["MISS", "MISS"]
    assert cache_shop.calls["boom"] == 2


def test_routes_table_in_settings_enables_caching(make: Make) -> None:
    with TestClient(make(routes={"configured": {"ttl": 30, "tags": ["x"]}})) as client:
        answers = [client.get("/by-settings/3") for _ in range(2)]
    assert [a.headers["x-cache"] for a in answers] == ["MISS", "HIT"]
    assert answers[1].headers["cache-control"] == "public, max-age=30"
    with TestClient(make(routes={"/by-settings/{x}": {}})) as client:
        assert [client.get("/by-settings/4").headers["x-cache"] for _ in range(2)] == ["MISS", "HIT"]


def test_an_earlier_uncached_route_is_never_shadowed(make: Make) -> None:
    with TestClient(make()) as client:
        answers = [client.get("/items/special") for _ in range(2)]
    assert [a.json() for a in answers] == [{"special": 1}, {"special": 2}]
    assert "x-cache" not in answers[0].headers


def test_query_order_does_not_matter_but_values_do(make: Make) -> None:
    with TestClient(make()) as client:
        a = client.get("/search?q=x&page=2")
        b = client.get("/search?page=2&q=x")
        c = client.get("/search?q=y&page=2")
    assert [a.headers["x-cache"], b.headers["x-cache"], c.headers["x-cache"]] == ["MISS", "HIT", "MISS"]


def test_escaped_separators_and_non_ascii_queries_are_keyed_apart(make: Make) -> None:
    with TestClient(make()) as client:
        plain = client.get("/search?q=x&page=2")
        escaped = client.get("/search?q=x%26page%3D2")  # one parameter whose value holds "&page=2"
        euro = client.get("/search?q=%E2%82%AC")
        again = client.get("/search?q=%E2%82%AC")
    assert [r.status_code for r in (plain, escaped, euro, again)] == [200, 200, 200, 200]
    assert [plain.headers["x-cache"], escaped.headers["x-cache"]] == ["MISS", "MISS"]
    assert [euro.headers["x-cache"], again.headers["x-cache"]] == ["MISS", "HIT"]
    assert euro.json() == again.json()


def test_a_repeated_parameter_keeps_its_order_in_the_key(make: Make) -> None:
    with TestClient(make()) as client:
        one_two = client.get("/search?page=1&page=2")
        two_one = client.get("/search?page=2&page=1")
        again = client.get("/search?page=1&page=2")
    assert [one_two.json()["page"], two_one.json()["page"]] == [2, 1]
    assert [one_two.headers["x-cache"], two_one.headers["x-cache"], again.headers["x-cache"]] == ["MISS", "MISS", "HIT"]


def test_accept_encoding_is_keyed_by_negotiated_coding(make: Make) -> None:
    with TestClient(make()) as client:
        gzip = client.get("/items/5", headers={"accept-encoding": "gzip"})
        gzip2 = client.get("/items/5", headers={"accept-encoding": "deflate, gzip;q=0.8"})
        identity = client.get("/items/5", headers={"accept-encoding": "identity"})
        refused = client.get("/items/5", headers={"accept-encoding": "gzip;q=0"})
    assert [r.headers["x-cache"] for r in (gzip, gzip2, identity, refused)] == ["MISS", "HIT", "MISS", "HIT"]
    assert gzip.headers["vary"] == "Authorization, Cookie, Accept-Encoding"


def test_head_is_served_from_the_get_entry(make: Make) -> None:
    with TestClient(make()) as client:
        get = client.get("/items/9")
        head = client.head("/items/9")
    assert head.headers["x-cache"] == "HIT" and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


CHILD = """
import json, sys
sys.path[:0] = [{tests!r}, {root!r}]
from fastapi.testclient import TestClient
import cache_shop
from fastplug.core.app import create_app
settings = json.loads(sys.argv[1])
app = create_app({settings_file!r}, overrides=settings, extra_plugins={{"shop": cache_shop}})
with TestClient(app) as client:
    response = client.request(sys.argv[2], sys.argv[3])
    print(json.dumps({{"headers": dict(response.headers), "body": response.text}}))
"""


def in_other_process(
    settings: dict[str, Any], settings_file: Path, method: str, path: str, seed: str
) -> dict[str, Any]:
    code = CHILD.format(tests=str(TESTS), root=str(TESTS.parent), settings_file=str(settings_file))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTPLUG_")} | {"PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(settings), method, path],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_keys_are_stable_across_processes_and_invalidation_is_shared(
    fastplug_settings_file: Path, fastplug_app_factory: Make, prefix: str
) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    settings = settings_for("redis", prefix)
    first = in_other_process(settings, fastplug_settings_file, "GET", "/items/42", seed="1")
    with TestClient(fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)) as client:
        here = client.get("/items/42")
    assert first["headers"]["x-cache"] == "MISS"
    assert here.headers["x-cache"] == "HIT"  # same key from a process with another hash seed
    assert here.headers["etag"] == first["headers"]["etag"] and here.text == first["body"]
    assert json.loads(in_other_process(settings, fastplug_settings_file, "POST", "/items/42", seed="2")["body"]) == {
        "invalidated": 1
    }
    with TestClient(fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)) as client:
        assert client.get("/items/42").headers["x-cache"] == "MISS"


def test_redis_outage_bypasses_then_recovers(
    fastplug_app_factory: Make, prefix: str, private_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    settings = settings_for("redis", prefix, redis_url=url, breaker_cooldown=0.5)
    app = fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # loopback: shown the health details
        assert [client.get("/items/1").headers["x-cache"] for _ in range(2)] == ["MISS", "HIT"]
        server.kill()
        server.wait()
        down = [client.get("/items/1") for _ in range(5)]
        assert client.get("/health/ready").json()["checks"]["cache"]["error"] == "BackendUnavailable: circuit open"
        private_redis()  # back, empty
        time.sleep(0.6)  # the breaker's cool-down
        back = [client.get("/items/1").headers["x-cache"] for _ in range(2)]
    assert [(r.status_code, r.headers["x-cache"]) for r in down] == [(200, "BYPASS")] * 5
    assert back == ["MISS", "HIT"]


def test_fail_closed_outage_answers_503_with_retry_after(
    fastplug_app_factory: Make, prefix: str, private_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """``fail_open = false``: a cache that is down is 503 + Retry-After (JSON), never a 500."""
    server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    settings = settings_for("redis", prefix, redis_url=url, fail_open=False)
    with TestClient(fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)) as client:
        assert client.get("/items/1").status_code == 200
        server.kill()
        server.wait()
        down = client.get("/items/2")
    assert down.status_code == 503 and down.headers["retry-after"] == "1"
    assert down.json() == {"detail": "cache unavailable"}


def wait_for(condition: Callable[[], object], what: str) -> None:
    """Wait (bounded) until ``condition()`` holds; a failure to get there fails the test."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def cache_of(app: FastAPI) -> Any:
    return app.state.fastplug.services.get("cache")


def joiners(app: FastAPI) -> int:
    """Requests waiting on the fills in flight (each shields the flight's future once)."""
    return sum(len(flight._callbacks or ()) for flight in list(cache_of(app).flights.values()))


def held_miss(pool: ThreadPoolExecutor, url: str) -> Any:
    """GET ``url`` in the background; return once its handler has read and is held at the gate."""
    cache_shop.gate.clear()
    cache_shop.entered.clear()
    pending = pool.submit(httpx.get, url, timeout=30)
    assert cache_shop.entered.wait(10), "the handler never ran"
    return pending


@pytest.mark.parametrize(
    "writer", [{"tag": "gated"}, {"route": "gated"}, {"path": "/gated/a"}], ids=["tag", "route", "path"]
)
def test_an_answer_invalidated_while_computed_is_not_stored(make: Make, writer: dict[str, str]) -> None:
    app = make()
    with LiveServer(app) as server, ThreadPoolExecutor(2) as pool:
        url = f"{server.url}/gated/a"
        first = held_miss(pool, url)  # read the old row, not answered yet
        assert httpx.post(f"{server.url}/invalidate", params=writer).json() == {"invalidated": 0}
        joined = pool.submit(httpx.get, url, timeout=30)  # a reader after the write joins the fill
        wait_for(lambda: joiners(app) == 1, "the second reader to join the fill")
        cache_shop.gate.set()
        first_answer, joined_answer = first.result(), joined.result()
        again = httpx.get(url)
        then = httpx.get(url)
    assert (first_answer.headers["x-cache"], first_answer.json()["calls"]) == ("MISS", 1)  # still answered
    assert (joined_answer.headers["x-cache"], joined_answer.json()["calls"]) == ("MISS", 2)  # not the old answer
    assert (again.headers["x-cache"], again.json()["calls"]) == ("MISS", 3)  # nothing was stored
    assert (then.headers["x-cache"], then.json()["calls"]) == ("HIT", 3)
    assert cache_shop.calls["gated"] == 3


def test_an_invalidation_of_another_tag_does_not_prevent_the_store(make: Make) -> None:
    with LiveServer(make()) as server, ThreadPoolExecutor(1) as pool:
        first = held_miss(pool, f"{server.url}/gated/a")
        httpx.post(f"{server.url}/invalidate", params={"tag": "items"})
        httpx.post(f"{server.url}/invalidate", params={"path": "/gated/b"})
        cache_shop.gate.set()
        assert first.result().json()["calls"] == 1
        again = httpx.get(f"{server.url}/gated/a")
    assert (again.headers["x-cache"], again.json()["calls"]) == ("HIT", 1)


def test_a_refresh_invalidated_while_computed_is_not_stored(make: Make) -> None:
    app = make()
    with LiveServer(app) as server:
        url = f"{server.url}/gated-swr"
        assert httpx.get(url).json() == {"calls": 1}
        time.sleep(0.3)  # past its 0.2 s ttl: stale
        cache_shop.gate.clear()
        cache_shop.entered.clear()
        stale = httpx.get(url)  # answered from the stale entry; the refresh runs, held at the gate
        assert cache_shop.entered.wait(10), "the refresh never ran"
        httpx.post(f"{server.url}/invalidate", params={"tag": "gated"})
        cache_shop.gate.set()
        wait_for(lambda: not cache_of(app).background, "the refresh to end")
        again = httpx.get(url)
        then = httpx.get(url)
    assert (stale.headers["x-cache"], stale.json()["calls"]) == ("STALE", 1)
    assert (again.headers["x-cache"], again.json()["calls"]) == ("MISS", 3)  # the refresh's answer was dropped
    assert (then.headers["x-cache"], then.json()["calls"]) == ("HIT", 3)


def test_an_invalidation_from_another_process_while_computed_prevents_the_store(
    fastplug_settings_file: Path, fastplug_app_factory: Make, prefix: str
) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    settings = settings_for("redis", prefix)
    with LiveServer(fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)) as server:
        with ThreadPoolExecutor(1) as pool:
            first = held_miss(pool, f"{server.url}/gated/a")
            writer = in_other_process(settings, fastplug_settings_file, "POST", "/invalidate?tag=gated", seed="3")
            cache_shop.gate.set()
            first_answer = first.result()
        again = httpx.get(f"{server.url}/gated/a")
        then = httpx.get(f"{server.url}/gated/a")
    assert json.loads(writer["body"]) == {"invalidated": 0}
    assert (first_answer.headers["x-cache"], first_answer.json()["calls"]) == ("MISS", 1)
    assert (again.headers["x-cache"], again.json()["calls"]) == ("MISS", 2)
    assert (then.headers["x-cache"], then.json()["calls"]) == ("HIT", 2)


def test_a_waiter_in_another_process_fills_when_the_first_fill_was_not_stored(
    fastplug_app_factory: Make, prefix: str
) -> None:
    """Process B waits on A's fill; A's answer is not stored (invalidated meanwhile): B takes
    the free lock and fills with fresh generations, instead of waiting out ``lock_timeout``
    and then computing an answer it may not store."""
    require_service("Redis", "127.0.0.1", 6379)
    settings = settings_for("redis", prefix, lock_timeout=3.0)
    app_a = fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)
    app_b = fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)
    with LiveServer(app_a) as a, LiveServer(app_b) as b, ThreadPoolExecutor(2) as pool:
        backend_b = cache_of(app_b).backend
        original, tried = backend_b.lock, threading.Event()

        async def lock(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            tried.set()
            return result

        backend_b.lock = lock
        first = held_miss(pool, f"{a.url}/gated/a")  # A holds the lock, its handler held
        same_host = {"host": a.url.removeprefix("http://")}  # the key includes the Host
        waiting = pool.submit(httpx.get, f"{b.url}/gated/a", headers=same_host, timeout=30)
        assert tried.wait(10), "B never asked for the lock"
        httpx.post(f"{a.url}/invalidate", params={"tag": "gated"})
        cache_shop.gate.set()
        first_answer, waiting_answer = first.result(), waiting.result()
        then = httpx.get(f"{a.url}/gated/a")
    assert (first_answer.headers["x-cache"], first_answer.json()["calls"]) == ("MISS", 1)  # not stored
    assert (waiting_answer.headers["x-cache"], waiting_answer.json()["calls"]) == ("MISS", 2)
    assert (then.headers["x-cache"], then.json()["calls"]) == ("HIT", 2)  # B's fill was stored


def test_a_tag_the_handler_adds_after_reading_guards_the_store_too(make: Make) -> None:
    """``row:a`` is invalidated while the handler runs, before the handler names it: the
    answer (read before the write) is not stored; the next one is, and the tag drops it."""
    with LiveServer(make()) as server, ThreadPoolExecutor(1) as pool:
        url = f"{server.url}/gated-rows/a"
        first = held_miss(pool, url)
        httpx.post(f"{server.url}/invalidate", params={"tag": "row:a"})
        cache_shop.gate.set()
        first_answer = first.result()
        labels = [httpx.get(url).headers["x-cache"] for _ in range(2)]
        httpx.post(f"{server.url}/invalidate", params={"tag": "row:b"})  # another row: kept
        kept = httpx.get(url).headers["x-cache"]
        assert httpx.post(f"{server.url}/invalidate", params={"tag": "row:a"}).json() == {"invalidated": 1}
        dropped = httpx.get(url).headers["x-cache"]
    assert first_answer.headers["x-cache"] == "MISS"
    assert labels == ["MISS", "HIT"] and kept == "HIT" and dropped == "MISS"


# --- the memory backend shared by the workers of serve --workers N ----------------------------


@pytest.fixture
def shared_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fastplug_settings_file: Path) -> Path:
    """What ``serve_starting`` sets up before the fork: the generations file, in the env (set
    after ``fastplug_settings_file`` clears every ``FASTPLUG_*`` variable)."""
    from fastplug.plugins.cache import shared

    monkeypatch.setenv(shared.ENV, str(tmp_path / "generations"))
    path = shared.prepare(workers=2)
    assert path == tmp_path / "generations" and path.stat().st_size == shared.SIZE
    return path


def workers(fastplug_app_factory: Make, prefix: str, count: int = 2) -> list[FastAPI]:
    """``count`` apps in this process standing for the workers (each its own memory cache)."""
    settings = settings_for("memory", prefix)
    return [fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings) for _ in range(count)]


def test_shared_memory_an_invalidation_in_one_worker_drops_the_entries_of_all(
    shared_file: Path, fastplug_app_factory: Make, prefix: str
) -> None:
    one, two = workers(fastplug_app_factory, prefix)
    with TestClient(one) as a, TestClient(two) as b:
        assert type(cache_of(one).backend).__name__ == "SharedMemoryBackend"
        assert [a.get("/items/1").headers["x-cache"], b.get("/items/1").headers["x-cache"]] == ["MISS", "MISS"]
        assert [b.get(p).headers["x-cache"] for p in ("/items/1", "/search?q=x", "/search?q=x")] == [
            "HIT",
            "MISS",
            "HIT",
        ]
        assert a.post("/items/1").json() == {"invalidated": 1}  # the one entry of this worker
        in_b = b.get("/items/1")
        assert (in_b.headers["x-cache"], in_b.json()["calls"]) == ("MISS", 3)
        assert b.get("/search?q=x").headers["x-cache"] == "HIT"  # another tag: kept
        a.post("/invalidate", params={"path": "/search"})
        assert b.get("/search?q=x").headers["x-cache"] == "MISS"


def test_shared_memory_an_invalidation_in_another_worker_while_computed_prevents_the_store(
    shared_file: Path, fastplug_app_factory: Make, prefix: str
) -> None:
    one, two = workers(fastplug_app_factory, prefix)
    with LiveServer(one) as server, TestClient(two) as writer, ThreadPoolExecutor(1) as pool:
        first = held_miss(pool, f"{server.url}/gated/a")
        writer.post("/invalidate", params={"tag": "gated"})
        cache_shop.gate.set()
        assert first.result().json()["calls"] == 1
        again = httpx.get(f"{server.url}/gated/a")
        then = httpx.get(f"{server.url}/gated/a")
    assert (again.headers["x-cache"], again.json()["calls"]) == ("MISS", 2)
    assert (then.headers["x-cache"], then.json()["calls"]) == ("HIT", 2)


def test_shared_memory_slots_are_stable_and_writes_locked(shared_file: Path) -> None:
    from fastplug.plugins.cache.shared import SLOTS, SharedGenerations, slot_of

    assert (slot_of("products"), slot_of("product:1")) == (3606, 17078)  # crc32: the same in every process
    assert all(1 <= slot_of(f"product:{n}") < SLOTS for n in range(1000))
    first, second = SharedGenerations(shared_file), SharedGenerations(shared_file)
    try:
        clock = first.clock()
        assert second.bump(["a", "b"]) == clock + 1
        assert first.view[slot_of("a")] == first.view[slot_of("b")] == first.clock() == clock + 1
        assert first.bump(["a"]) == clock + 2 and second.view[slot_of("b")] == clock + 1
    finally:
        first.close()
        second.close()


# --- an outage: kept invalidations, and the flush past their bound ----------------------------


def test_too_many_invalidations_kept_in_an_outage_flush_the_namespace(
    fastplug_app_factory: Make, prefix: str, private_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    settings = settings_for("redis", prefix, redis_url=url, breaker_failures=100)
    app = fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings)
    with TestClient(app) as client:
        backend = cache_of(app).backend
        backend.pending.limit = 2
        backend.retry_interval = 600  # only the next read applies them
        for path in ("/items/1", "/search?q=x", "/short"):
            assert [client.get(path).headers["x-cache"] for _ in range(2)] == ["MISS", "HIT"]
        server.send_signal(signal.SIGSTOP)
        try:
            for tag in ("a", "b", "c"):  # one more than kept: a flush instead
                assert client.post("/invalidate", params={"tag": tag}).status_code == 200  # kept, not raised
        finally:
            server.send_signal(signal.SIGCONT)
        assert backend.pending.flush and not backend.pending.tags
        after = [client.get(path).headers["x-cache"] for path in ("/items/1", "/search?q=x", "/short")]
        assert not backend.pending.active
        assert client.get("/items/1").headers["x-cache"] == "HIT"
    assert after == ["MISS", "MISS", "MISS"]  # every entry went, whatever its tags


@pytest.mark.parametrize("shared_generations", [False, True], ids=["memory", "shared-memory"])
def test_memory_entries_add_nothing_to_the_garbage_collectors_work(
    shared_generations: bool, request: pytest.FixtureRequest, fastplug_app_factory: Make, prefix: str
) -> None:
    """A full collection traverses every tracked object: 100,000 cached responses must not be
    100,000 (or 300,000) of them, or each full collection pauses every request for a while."""
    import gc

    if shared_generations:
        request.getfixturevalue("shared_file")
    app = fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings_for("memory", prefix))
    with TestClient(app) as client:
        for n in range(50):
            assert client.get(f"/items/{n}").headers["x-cache"] == "MISS"
        assert client.get("/items/7").headers["x-cache"] == "HIT"
        for _ in range(3):  # a collection untracks one level of nested tuples: the pairs, the headers, the entry
            gc.collect()
        backend = cache_of(app).backend
        stored = [*backend._entries.values(), *getattr(backend, "_guards", {}).values()]
        assert len(stored) == (100 if shared_generations else 50)
        assert not [value for value in stored if gc.is_tracked(value)]
        # nor do the memos of the requests' routes and keys
        matched = [found for found in cache_of(app)._matches.values() if found is not None]
        keys = _cache_middleware(app)._keys
        assert len(matched) == 50 and len(keys) >= 50
        assert not [found for found in matched if gc.is_tracked(found)]
        assert not [ident for ident in keys if gc.is_tracked(ident)]
        assert client.get("/items/7").headers["x-cache"] == "HIT"  # still served after the collection


def _cache_middleware(app: FastAPI) -> Any:
    from fastplug.plugins.cache.middleware import CacheMiddleware

    layer = app.edge_stack  # type: ignore[attr-defined]
    while not isinstance(layer, CacheMiddleware):
        layer = layer.app
    return layer


def test_the_key_and_route_memos_hold_as_many_requests_as_the_cache(fastplug_app_factory: Make, prefix: str) -> None:
    from fastplug.plugins.cache.settings import CacheSettings

    assert CacheSettings().memo_size == 10_000  # at least this many, for a Redis cache too
    assert CacheSettings(max_entries=200_000).memo_size == 200_000
    assert CacheSettings(max_entries=200_000, memo_entries=50).memo_size == 50
    app = fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings_for("memory", prefix, memo_entries=3))
    with TestClient(app) as client:
        for n in range(5):
            assert client.get(f"/items/{n}").headers["x-cache"] == "MISS"
        assert [client.get(f"/items/{n}").headers["x-cache"] for n in range(5)] == ["HIT"] * 5
        assert client.get("/items/" + "9" * 300).status_code == 200  # a long path: matched, not remembered
        assert len(cache_of(app)._matches) <= 3
        assert max(len(path) for path in cache_of(app)._matches) < 300


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"application/json")],
        [],
        [(b"x-odd", b"a\x00b")],  # no server sends these: such an entry is stored as JSON
        [(b"x-odd", b"a\nb")],
    ],
    ids=["usual", "none", "nul", "newline"],
)
def test_an_entry_reads_back_from_its_remote_bytes_exactly(headers: list[tuple[bytes, bytes]]) -> None:
    body = b'{"line":"one\ntwo","nul":"\x00"}'  # the body is never split
    entry = build_entry(200, headers, body, 60, 5, b"public, max-age=60", b"Accept-Encoding")
    raw = entry.encode()
    assert raw.startswith(b"{" if any(b"\x00" in v or b"\n" in v for _, v in headers) else b"fp2 ")
    assert Entry.decode(raw) == entry and type(Entry.decode(raw)) is Entry


def test_an_entry_stored_as_json_by_an_earlier_version_still_reads() -> None:
    entry = build_entry(203, [(b"content-type", b"text/plain")], b"x", 60, 0, b"public", b"")
    assert Entry.decode(entry._json()) == entry


def test_an_unreadable_redis_entry_is_a_miss_not_a_500(
    fastplug_app_factory: Make, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry another version wrote (or a corrupted one) is refilled, with a warning."""
    require_service("Redis", "127.0.0.1", 6379)
    app = fastplug_app_factory(extra_plugins={"shop": cache_shop}, **settings_for("redis", prefix, op_timeout=2.0))
    client = redis_sync.Redis.from_url(REDIS_URL)
    with TestClient(app) as http:
        assert http.get("/items/1").headers["x-cache"] == "MISS"
        (key,) = [k for k in client.scan_iter(f"{prefix}:*") if len(k.split(b":")[-1]) == 64]
        client.set(key, b"fp2 not-a-status\ngarbage")
        with caplog.at_level(logging.WARNING, logger="fastplug.cache"):
            again = http.get("/items/1")
        assert again.status_code == 200 and again.headers["x-cache"] == "MISS"
        assert "unreadable entry" in caplog.text
        assert http.get("/items/1").headers["x-cache"] == "HIT"  # refilled


def test_a_header_the_server_would_refuse_is_never_stored() -> None:
    from fastplug.plugins.cache.rules import storable

    assert storable([(b"content-type", b"text/plain")], 60) is not None
    assert storable([(b"content-disposition", b"attachment; filename=a\r\nset-cookie: x=1")], 60) is None
    assert storable([(b"bad name", b"x")], 60) is None
