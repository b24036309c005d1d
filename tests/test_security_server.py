"""The security plugin through the real server (``manage.py serve``, uvicorn and gunicorn) over HTTP.

Allowed hosts refused before routes, the cache and metrics; trusted proxies' ``X-Forwarded-*``
applied (and forged ones from anyone else ignored); CORS with a cached route; the security
headers; rate limits exact at the boundary, in memory and on Redis across workers and
processes, and with Redis gone (fail open, fail closed).

Each group of checks shares one server where the settings allow (module fixtures); every test
uses its own paths, clients and Redis keys, so none depends on another's leftovers.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_sync
from prometheus_client.parser import text_string_to_metric_families

from fastplug.core.testing import require_service
from tests.test_serve import serve_process, stop, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="gunicorn needs POSIX")]

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SECURITY_NAMES = (
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "content-security-policy",
    "content-security-policy-report-only",
    "strict-transport-security",
    "server",
)
ORIGIN_A, ORIGIN_B, ORIGIN_EVIL = "https://a.example.com", "https://b.example.com", "https://evil.example.com"
CSP = "default-src 'none'; frame-ancestors 'none'"
EMISSION = 12  # "5/minute": one cell every 60 / 5 seconds

# A local plugin (a module beside settings.toml): routes that count their calls, a cached one,
# a rate-limited one (by settings) and one limited by @rate_limit, the worker's pid.
PROBE = """
import os
from collections import Counter

from fastapi import APIRouter

from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.cache.api import cached
from fastplug.plugins.security.api import rate_limit

calls: Counter[str] = Counter()
router = APIRouter()


@router.get("/hosted")
async def hosted() -> dict[str, int]:
    calls["hosted"] += 1
    return {"calls": calls["hosted"]}


@router.get("/counted/{name}")
async def counted(name: str) -> dict[str, int]:
    calls["counted:" + name] += 1
    return {"calls": calls["counted:" + name]}


@router.get("/stored/{name}")
@cached(ttl=600)
async def stored(name: str) -> dict[str, int]:
    calls["stored:" + name] += 1
    return {"calls": calls["stored:" + name]}


@router.get("/calls")
async def counts() -> dict[str, int]:
    return dict(calls)


@router.get("/limited/{name}")
@cached(ttl=600)
async def limited(name: str) -> dict[str, object]:
    calls["limited:" + name] += 1
    return {"name": name, "pid": os.getpid()}


@router.get("/coded")
@rate_limit("3/minute")
async def coded() -> dict[str, bool]:
    return {"ok": True}


@router.get("/pid")
async def pid() -> int:
    return os.getpid()


@router.get("/open/page")
async def open_page() -> dict[str, bool]:
    return {"ok": True}


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="secprobe")


@hookimpl
def register_routers():
    return [router]
"""

HEADERS = f"""
[default.security.headers]
hsts_seconds = 3600
hsts_preload = true
frame_options = "SAMEORIGIN"
referrer_policy = "no-referrer"
cross_origin_opener_policy = "same-origin-allow-popups"
content_security_policy = "{CSP}"
csp_report_only = true
exclude_paths = ["/open"]
"""
LIMITS = """
[default.security.rate_limits.routes]
"GET /limited*" = "5/minute"
"""


def project(root: Path, plugins: list[str], sections: str) -> Path:
    """A project directory: ``settings.toml`` (``plugins`` + ``sections``) and the probe plugin."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "secprobe.py").write_text(PROBE)
    listed = ", ".join(f'"{name}"' for name in [*plugins, "secprobe"])
    settings = root / "settings.toml"
    settings.write_text(f"[default]\nplugins = [{listed}]\n{sections}")
    return settings


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base: str
    client: httpx.Client

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.client.get(path, headers=headers)


@contextlib.contextmanager
def serving(*runs: tuple[Path, tuple[str, ...]]) -> Iterator[list[Server]]:
    """``manage.py serve`` for each ``(settings, args)``, started together; all stopped after
    (each must exit 0)."""
    started: list[tuple[subprocess.Popen[str], str]] = []
    servers: list[Server] = []
    errors = []
    try:
        for settings, args in runs:
            started.append(serve_process(settings, dict(os.environ), *args))
        for proc, base in started:
            wait_ready(proc, f"{base}/health/live", limit=40)
            servers.append(Server(proc, base, httpx.Client(base_url=base, timeout=10)))
        yield servers
    finally:
        for server in servers:
            server.client.close()
        for proc, _ in started:
            if proc.poll() is None:
                code, err = stop(proc)
                if code != 0:
                    errors.append(f"exit {code}: {err[-2000:]}")
    assert not errors, errors  # only once the checks passed: a failing check is not masked


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``, scraped from loopback."""
    scraped = httpx.get(f"{server.base}/metrics", timeout=10)
    assert scraped.status_code == 200, scraped.text
    total = 0.0
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def calls(server: Server) -> dict[str, int]:
    return dict(server.get("/calls").json())


def vary(response: httpx.Response) -> set[str]:
    return {token.strip().lower() for token in response.headers.get("vary", "").split(",") if token.strip()}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_refused_host(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "invalid Host header"}
    assert "x-cache" not in response.headers  # the cache never saw it


def assert_burst(answers: list[httpx.Response], limit: int) -> None:
    """``limit`` allowed answers with ``RateLimit-Limit`` and ``-Remaining`` limit-1 .. 0."""
    assert [a.status_code for a in answers] == [200] * limit, [a.text for a in answers]
    assert [a.headers["ratelimit-limit"] for a in answers] == [str(limit)] * limit
    assert [int(a.headers["ratelimit-remaining"]) for a in answers] == list(range(limit - 1, -1, -1))
    assert all(a.headers["ratelimit-policy"] == f"{limit};w=60" for a in answers)


def assert_limited(response: httpx.Response, limit: int, elapsed: float, emission: int = EMISSION) -> None:
    """A 429 with its JSON body, ``RateLimit-*`` and ``Retry-After``: one emission interval
    (``60 / limit`` s) less the ``elapsed`` seconds since the burst's first request, rounded up.
    ``elapsed`` is measured here (at least what the server saw); on loopback it is far below a
    second, so this pins ``Retry-After`` to exactly ``emission`` (12 for "5/minute")."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "rate limit exceeded"}
    floor = max(math.ceil(emission - elapsed - 1e-6), 1)
    assert floor <= int(response.headers["retry-after"]) <= emission, (response.headers, elapsed)
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-policy"] == f"{limit};w=60"
    assert "ratelimit-reset" in response.headers


def raw(base: str, request: bytes) -> bytes:
    """``request`` on a new connection; everything the server sent before closing it."""
    port = int(base.rsplit(":", 1)[1])
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


# --- one server behind a trusted proxy (127.0.0.1): hosts, metrics, cache, CORS, headers, limits


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = project(
        tmp_path_factory.mktemp("trusted"),
        ["health", "metrics", "security", "cache"],
        '[default.server]\nproxy_headers = true\nforwarded_allow_ips = "127.0.0.1"\nforwarded_host = true\n'
        '[default.security]\nallowed_hosts = ["127.0.0.1", "api.example.com"]\n'
        f'[default.security.cors]\nallow_origins = ["{ORIGIN_A}", "{ORIGIN_B}"]\nallow_credentials = true\n'
        + HEADERS.replace("exclude_paths", 'server = "fastplug-test"\nexclude_paths')
        + LIMITS,
    )
    with serving((settings, ())) as (server,):
        yield server


def test_a_bad_host_is_400_before_the_route_the_cache_and_metrics(trusted: Server) -> None:
    refused_before = metric(trusted, "security_requests_refused_total", reason="host")
    answered_400_before = metric(trusted, "http_requests_total", status="400")
    bad_hosts = ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "api.example.com.evil.example"]
    for host in bad_hosts:
        assert_refused_host(trusted.get("/hosted", host=host))
    head = trusted.client.head("/hosted", headers={"host": "evil.example"})
    assert head.status_code == 400 and head.content == b""
    assert "hosted" not in calls(trusted)
    assert metric(trusted, "http_requests_total", route="/hosted") == 0
    assert metric(trusted, "http_requests_total", status="400") == answered_400_before  # no label at all
    refused = metric(trusted, "security_requests_refused_total", reason="host")
    assert refused - refused_before == len(bad_hosts) + 1

    # a cached route asked with a bad Host, then a good one: nothing was stored, so a MISS
    name = unique("host")
    assert_refused_host(trusted.get(f"/stored/{name}", host="evil.example"))
    first = trusted.get(f"/stored/{name}")
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert first.json() == {"calls": 1}
    second = trusted.get(f"/stored/{name}")
    assert second.headers["x-cache"] == "HIT" and second.json() == {"calls": 1}
    assert_refused_host(trusted.get(f"/stored/{name}", host="evil.example"))  # a HIT never answers it
    assert calls(trusted)[f"stored:{name}"] == 1

    # the same scrape does see the route once a good Host asks for it
    assert trusted.get("/hosted").json() == {"calls": 1}
    assert metric(trusted, "http_requests_total", route="/hosted", status="200") == 1


def test_a_trusted_proxys_forwarded_headers_are_applied(trusted: Server) -> None:
    https = trusted.get("/pid", **{"x-forwarded-proto": "https"})
    assert https.headers["strict-transport-security"] == "max-age=3600; includeSubDomains; preload"
    assert "strict-transport-security" not in trusted.get("/pid").headers

    # the forwarded host is the one judged: refused when not allowed, accepted when allowed
    assert_refused_host(trusted.get("/pid", **{"x-forwarded-host": "evil.example"}))
    assert_refused_host(trusted.get("/pid", **{"x-forwarded-host": "api.example.com, evil.example"}))  # the last
    assert trusted.get("/pid", host="evil.example", **{"x-forwarded-host": "api.example.com"}).status_code == 200
    name = unique("fwd")
    assert_refused_host(trusted.get(f"/stored/{name}", **{"x-forwarded-host": "evil.example"}))
    assert trusted.get(f"/stored/{name}", **{"x-forwarded-host": "api.example.com"}).headers["x-cache"] == "MISS"

    # the rate-limit identity is the forwarded client: two clients, two buckets
    one, two = "10.1.0.1", "10.1.0.2"
    path = f"/limited/{unique('fwd')}"
    started = time.monotonic()
    burst = [trusted.get(path, **{"x-forwarded-for": f"203.0.113.9, {one}"}) for _ in range(5)]
    sixth = trusted.get(path, **{"x-forwarded-for": one})
    elapsed = time.monotonic() - started
    assert_burst(burst, 5)
    assert_limited(sixth, 5, elapsed)
    other = trusted.get(path, **{"x-forwarded-for": two})
    assert other.status_code == 200 and other.headers["ratelimit-remaining"] == "4"
    assert_limited(trusted.get(path, **{"x-forwarded-for": one}), 5, time.monotonic() - started)


def test_cors_preflights_actual_requests_and_a_cached_route(trusted: Server) -> None:
    name = unique("cors")
    preflight = trusted.client.options(
        f"/counted/{name}", headers={"origin": ORIGIN_A, "access-control-request-method": "GET"}
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN_A
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "GET" in [m.strip() for m in preflight.headers["access-control-allow-methods"].split(",")]
    assert preflight.headers["access-control-max-age"] == "600"
    assert "origin" in vary(preflight)
    refused = trusted.client.options(
        f"/counted/{name}", headers={"origin": ORIGIN_EVIL, "access-control-request-method": "GET"}
    )
    assert refused.status_code == 400
    assert refused.json() == {"detail": "CORS preflight refused: origin not allowed"}
    assert "access-control-allow-origin" not in refused.headers
    # neither reached the route (a GET route: an OPTIONS there is a 405, counted by metrics)
    assert f"counted:{name}" not in calls(trusted)
    assert metric(trusted, "http_requests_total", method="OPTIONS") == 0

    allowed = trusted.get(f"/counted/{name}", origin=ORIGIN_A)
    assert allowed.headers["access-control-allow-origin"] == ORIGIN_A
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "origin" in vary(allowed)
    disallowed = trusted.get(f"/counted/{name}", origin=ORIGIN_EVIL)
    assert disallowed.status_code == 200
    assert "access-control-allow-origin" not in disallowed.headers
    assert "access-control-allow-credentials" not in disallowed.headers
    assert "origin" in vary(disallowed)
    assert "origin" in vary(trusted.get(f"/counted/{name}"))

    # a cached route: origin A fills it, origin B's answer is a HIT with B's origin, never A's
    path = f"/stored/{name}"
    first = trusted.get(path, origin=ORIGIN_A)
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["access-control-allow-origin"] == ORIGIN_A
    for _ in range(3):  # the HITs are answered by the protocol, as soon as the head is read
        hit = trusted.get(path, origin=ORIGIN_B)
        assert hit.headers["x-cache"] == "HIT"
        assert hit.headers.get_list("access-control-allow-origin") == [ORIGIN_B]
        assert ORIGIN_A.encode() not in b"".join(v for _, v in hit.headers.raw)
        assert "origin" in vary(hit)
    evil = trusted.get(path, origin=ORIGIN_EVIL)
    assert evil.headers["x-cache"] == "HIT" and "access-control-allow-origin" not in evil.headers
    plain = trusted.get(path)
    assert plain.headers["x-cache"] == "HIT" and "access-control-allow-origin" not in plain.headers
    assert calls(trusted)[f"stored:{name}"] == 1


def test_security_headers_with_their_configured_values(trusted: Server) -> None:
    name = unique("hdr")
    expected = {
        "x-content-type-options": "nosniff",
        "x-frame-options": "SAMEORIGIN",
        "referrer-policy": "no-referrer",
        "cross-origin-opener-policy": "same-origin-allow-popups",
        "content-security-policy-report-only": CSP,
    }
    answers = {
        "route": trusted.get(f"/counted/{name}"),
        "miss": trusted.get(f"/stored/{name}"),
        "hit": trusted.get(f"/stored/{name}"),
        "404": trusted.get(f"/nothing/{name}"),
        "405": trusted.client.post(f"/counted/{name}"),
        "bad host": trusted.get("/pid", host="evil.example"),
    }
    assert answers["hit"].headers["x-cache"] == "HIT"
    assert answers["404"].status_code == 404 and answers["405"].status_code == 405
    for what, answer in answers.items():
        for header, value in expected.items():
            assert answer.headers.get_list(header) == [value], (what, header, answer.headers)
        assert "content-security-policy" not in answer.headers, what  # report-only
        assert answer.headers.get_list("server") == ["fastplug-test"], (what, answer.headers)  # never uvicorn
        assert "strict-transport-security" not in answer.headers, what  # plain HTTP

    hsts = "max-age=3600; includeSubDomains; preload"
    for path in (f"/counted/{name}", f"/stored/{name}", f"/nothing/{name}"):
        https = trusted.get(path, **{"x-forwarded-proto": "https"})
        assert https.headers.get_list("strict-transport-security") == [hsts], (path, https.headers)
        assert https.headers["x-frame-options"] == "SAMEORIGIN"

    # exclude_paths: none of them (nor the Server header), on HTTP or HTTPS
    for proto in ("http", "https"):
        opted_out = trusted.get("/open/page", **{"x-forwarded-proto": proto})
        assert opted_out.status_code == 200
        assert not [h for h in SECURITY_NAMES if h in opted_out.headers], opted_out.headers


def test_rate_limits_are_exact_at_the_boundary_in_memory(trusted: Server) -> None:
    client = {"x-forwarded-for": "10.5.0.1"}  # this test's own bucket (a trusted proxy's client)
    path = f"/limited/{unique('mem')}"
    started = time.monotonic()
    burst = [trusted.get(path, **client) for _ in range(5)]
    sixth = trusted.get(path, **client)
    elapsed = time.monotonic() - started
    assert_burst(burst, 5)
    assert [a.headers["x-cache"] for a in burst] == ["MISS", "HIT", "HIT", "HIT", "HIT"]  # a HIT takes a cell too
    assert_limited(sixth, 5, elapsed)
    assert "x-cache" not in sixth.headers  # refused before the cache
    assert sixth.headers["x-frame-options"] == "SAMEORIGIN"  # the security headers still apply
    # every path the pattern matches shares the client's bucket
    assert_limited(trusted.get(f"/limited/{unique('mem')}", **client), 5, time.monotonic() - started)

    client = {"x-forwarded-for": "10.5.0.2"}
    started = time.monotonic()
    coded = [trusted.get("/coded", **client) for _ in range(3)]
    fourth = trusted.get("/coded", **client)
    elapsed = time.monotonic() - started
    assert_burst(coded, 3)
    assert_limited(fourth, 3, elapsed, emission=20)  # @rate_limit("3/minute"): 60 / 3 s
    # unlimited routes carry no RateLimit headers
    assert not [h for h in trusted.get("/pid", **client).headers if h.startswith("ratelimit")]


# --- a server whose trusted proxy is elsewhere (10.9.9.9): forged X-Forwarded-* change nothing


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = project(
        tmp_path_factory.mktemp("untrusted"),
        ["health", "metrics", "security", "cache"],
        '[default.server]\nproxy_headers = true\nforwarded_allow_ips = "10.9.9.9"\nforwarded_host = true\n'
        '[default.security]\nallowed_hosts = ["127.0.0.1", "api.example.com"]\n'
        f'[default.security.cors]\nallow_origins = ["{ORIGIN_A}"]\n'
        + HEADERS.replace("exclude_paths", 'server = ""\nexclude_paths')
        + LIMITS,
    )
    with serving((settings, ())) as (server,):
        yield server


def test_forged_forwarded_headers_from_an_untrusted_peer_change_nothing(untrusted: Server) -> None:
    forged = untrusted.get("/pid", **{"x-forwarded-proto": "https"})
    assert forged.status_code == 200 and "strict-transport-security" not in forged.headers
    assert forged.headers["x-frame-options"] == "SAMEORIGIN"  # the plain-HTTP headers, as without it

    # the host check reads the real Host: a forged one neither gets a bad Host in ...
    assert_refused_host(untrusted.get("/pid", host="evil.example", **{"x-forwarded-host": "api.example.com"}))
    assert_refused_host(untrusted.get("/pid", host="evil.example", **{"x-forwarded-host": "127.0.0.1"}))
    # ... nor a good one refused
    assert untrusted.get("/pid", **{"x-forwarded-host": "evil.example"}).status_code == 200
    name = unique("forged")
    stored = untrusted.get(f"/stored/{name}", **{"x-forwarded-host": "evil.example"})
    assert stored.status_code == 200 and stored.headers["x-cache"] == "MISS"
    # the entry is under the real host: a request without the forged header is its HIT
    assert untrusted.get(f"/stored/{name}").headers["x-cache"] == "HIT"
    assert_refused_host(untrusted.get(f"/stored/{name}", host="evil.example", **{"x-forwarded-host": "127.0.0.1"}))

    # every forged X-Forwarded-For shares the peer's (127.0.0.1) bucket
    path = f"/limited/{unique('forged')}"
    started = time.monotonic()
    burst = [untrusted.get(path, **{"x-forwarded-for": f"10.7.0.{i}"}) for i in range(1, 6)]
    sixth = untrusted.get(path, **{"x-forwarded-for": "10.7.0.6"})
    elapsed = time.monotonic() - started
    assert_burst(burst, 5)
    assert_limited(sixth, 5, elapsed)
    assert_limited(untrusted.get(path), 5, time.monotonic() - started)  # the peer itself: the same bucket
    assert_limited(untrusted.get(path, **{"x-forwarded-for": "10.9.9.9"}), 5, time.monotonic() - started)


def test_no_server_header_anywhere_when_server_is_empty(untrusted: Server) -> None:
    name = unique("noserver")
    answers = [
        untrusted.get(f"/counted/{name}"),
        untrusted.get(f"/stored/{name}"),
        untrusted.get(f"/stored/{name}"),  # a HIT, written by the protocol
        untrusted.client.head(f"/stored/{name}"),
        untrusted.get(f"/nothing/{name}"),
        untrusted.client.post(f"/counted/{name}"),
        untrusted.get("/pid", host="evil.example"),
        untrusted.client.options("/pid", headers={"origin": ORIGIN_A, "access-control-request-method": "GET"}),
        untrusted.client.options("/pid", headers={"origin": ORIGIN_EVIL, "access-control-request-method": "GET"}),
        untrusted.get("/open/page"),
        *[untrusted.get("/coded") for _ in range(4)],
    ]
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 200, 200, 404, 405, 400, 200, 400, 200, 200, 200, 200, 429], statuses
    assert answers[2].headers["x-cache"] == "HIT"
    for answer in answers:
        assert "server" not in answer.headers, (answer.status_code, answer.headers)
    # nor on the wire: an app answer, and the protocol's own refusal of an oversized head
    port = untrusted.base.rsplit(":", 1)[1]
    ok = raw(untrusted.base, f"GET /pid HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    assert ok.startswith(b"HTTP/1.1 200 ") and b"\r\nserver:" not in ok.lower()
    wide = raw(untrusted.base, b"GET /pid HTTP/1.1\r\nHost: x\r\nX-Wide: " + b"w" * 9000 + b"\r\n\r\n")
    assert wide.startswith(b"HTTP/1.1 431 ") and b"\r\nserver:" not in wide.lower()


# --- rate limits on the shared Redis: gunicorn's 2 workers, and 2 server processes


def redis_project(root: Path, url: str, prefix: str, extra: str = "") -> Path:
    return project(
        root,
        ["health", "redis", "security"],
        f'[default.redis]\nurl = "{url}"\n'
        f'[default.security.rate_limits]\nbackend = "redis"\nkey_prefix = "{prefix}"\n'
        'identity_header = "x-client"\n' + extra + LIMITS,
    )


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[tuple[str, str]]:
    """The shared Redis's URL and a key prefix of this module's own (its keys deleted after)."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    prefix = f"test:secsrv:{uuid.uuid4().hex[:12]}:"
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0", prefix
    client = redis_sync.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def on_redis(
    tmp_path_factory: pytest.TempPathFactory, shared_redis: tuple[str, str]
) -> Iterator[tuple[Server, Server]]:
    """``serve --workers 2`` (gunicorn) and a second ``serve`` (uvicorn) on another port, one
    settings file: the same Redis and key prefix."""
    settings = redis_project(tmp_path_factory.mktemp("redis"), *shared_redis)
    with serving((settings, ("--workers", "2")), (settings, ())) as (workers, single):
        yield workers, single


def pinned(server: Server, count: int = 2, attempts: int = 100) -> list[tuple[httpx.Client, int]]:
    """``count`` keep-alive clients, each on a connection that a different worker accepted
    (a kept-alive connection stays with its worker): (client, that worker's pid)."""
    found: dict[int, httpx.Client] = {}
    for _ in range(attempts):
        client = httpx.Client(base_url=server.base, timeout=10)
        worker = client.get("/pid").json()
        if worker in found:
            client.close()
        else:
            found[worker] = client
            if len(found) == count:
                return [(c, pid) for pid, c in found.items()]
    for client in found.values():
        client.close()
    raise AssertionError(f"{attempts} new connections reached {len(found)} worker(s), not {count}")


def test_redis_limits_hold_across_gunicorn_workers(on_redis: tuple[Server, Server]) -> None:
    workers, _ = on_redis
    clients = pinned(workers)
    try:
        (first, pid_1), (second, pid_2) = clients
        assert pid_1 != pid_2
        identity = {"x-client": unique("workers")}
        path = f"/limited/{unique('workers')}"
        order = [first, second, first, second, first]
        started = time.monotonic()
        burst = [client.get(path, headers=identity) for client in order]
        after = [second.get(path, headers=identity), first.get(path, headers=identity)]
        elapsed = time.monotonic() - started
        assert_burst(burst, 5)  # one bucket: Remaining counts down across both workers
        assert [a.json()["pid"] for a in burst] == [pid_1, pid_2, pid_1, pid_2, pid_1]
        for answer in after:  # the 6th is 429 in either worker
            assert_limited(answer, 5, elapsed)
        for answer in [*burst, *after]:
            assert "server" not in answer.headers  # no "server: uvicorn" under gunicorn either
        other = first.get(path, headers={"x-client": unique("workers")})
        assert other.status_code == 200 and other.headers["ratelimit-remaining"] == "4"
    finally:
        for client, _ in clients:
            client.close()


def test_redis_limits_hold_across_two_server_processes(on_redis: tuple[Server, Server]) -> None:
    workers, single = on_redis
    assert workers.get("/pid").json() != single.get("/pid").json()
    identity = {"x-client": unique("processes")}
    path = f"/limited/{unique('processes')}"
    order = [workers, single, workers, single, single]
    started = time.monotonic()
    burst = [server.get(path, **identity) for server in order]
    after = [workers.get(path, **identity), single.get(path, **identity)]
    elapsed = time.monotonic() - started
    assert_burst(burst, 5)
    for answer in after:
        assert_limited(answer, 5, elapsed)


# --- a private Redis killed under the server: fail open, fail closed


def test_redis_down_fails_open_or_closed_as_configured(
    tmp_path: Path, private_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    redis_server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    prefix = f"test:secsrv:{uuid.uuid4().hex[:12]}:"
    open_ = redis_project(tmp_path / "open", url, prefix, "fail_open = true\n")
    closed = redis_project(tmp_path / "closed", url, prefix, "fail_open = false\n")
    with serving((open_, ()), (closed, ())) as (fails_open, fails_closed):
        for server in (fails_open, fails_closed):  # limited on Redis while it answers
            up = server.get("/limited/up", **{"x-client": unique("down")})
            assert up.status_code == 200 and up.headers["ratelimit-limit"] == "5"
        redis_server.kill()
        redis_server.wait()
        identity = {"x-client": unique("down")}
        served = [fails_open.get(f"/limited/{i}", **identity) for i in range(8)]  # past the breaker's 5
        refused = [fails_closed.get(f"/limited/{i}", **identity) for i in range(8)]
        assert fails_open.get("/pid").status_code == 200  # unlimited routes are not affected
    for answer in served:
        assert answer.status_code == 200, answer.text
        assert not [h for h in answer.headers if h.startswith("ratelimit")], answer.headers
    for answer in refused:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"detail": "rate limiter unavailable"}
        assert answer.headers["retry-after"] == "1"
        assert not [h for h in answer.headers if h.startswith("ratelimit")]
