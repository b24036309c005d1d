"""The security plugin in-process: allowed hosts, trusted proxies, CORS, headers, rate limits,
its settings and checks, and its answers through fastplug's HTTP protocol.

``tests/test_security_server.py`` drives the same through the real server process (gunicorn
workers, several processes on one Redis, Redis killed); ``tests/test_security_limits.py`` the
rate-limit engine itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import security_app
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from fastplug.config import FastplugError
from fastplug.core.forwarded import ForwardedMiddleware
from fastplug.plugins.security.checks import security_checks
from fastplug.plugins.security.cors import Cors
from fastplug.plugins.security.headers import finished
from fastplug.plugins.security.hosts import AllowedHosts, host_of
from fastplug.plugins.security.settings import CorsSettings, SecuritySettings

Make = Callable[..., FastAPI]
PLUGINS = ["health", "metrics", "cache", "security", "guarded"]


@pytest.fixture
def make(fastplug_app_factory: Make) -> Callable[..., FastAPI]:
    def build(**security: Any) -> FastAPI:
        security_app.calls.clear()
        overrides: dict[str, Any] = {"security": security}
        server = security.pop("server", None)
        if server is not None:
            overrides["server"] = server
        return fastplug_app_factory(
            extra_plugins={"guarded": security_app}, plugins=PLUGINS, cache={"backend": "memory"}, **overrides
        )

    return build


@pytest.fixture
def client(make: Callable[..., FastAPI]) -> Iterator[TestClient]:
    app = make(cors={"allow_origins": ["https://app.example.com", "http://localhost:*"]})
    with TestClient(app, base_url="http://localhost") as client:
        yield client


def _scrape(client: TestClient) -> str:
    own = TestClient(client.app, base_url="http://localhost", client=("127.0.0.1", 5000))
    return own.get("/metrics").text


# allowed hosts


@pytest.mark.parametrize(
    ("value", "host"),
    [
        (b"Example.COM", "example.com"),
        (b"example.com:8000", "example.com"),
        (b"example.com.", "example.com"),
        (b"[::1]:8000", "[::1]"),
        (b"exa mple.com", None),
        (b"example.com:80:80", None),
        (b"evil.example/path", None),
        (b"", None),
    ],
)
def test_a_host_header_is_read_as_django_reads_it(value: bytes, host: str | None) -> None:
    assert host_of(value) == host


def test_allowed_hosts_match_exact_names_and_subdomain_wildcards_only() -> None:
    hosts = AllowedHosts(["api.example.com", "*.example.org"])
    assert hosts.decide(b"api.example.com:443") is True
    assert hosts.decide(b"a.b.example.org") is True
    assert hosts.decide(b"example.org") is False  # the bare domain is not a subdomain
    assert hosts.decide(b"evil-example.org") is False
    assert hosts.decide(b"api.example.com.evil.test") is False
    assert hosts.decide(None) is False
    assert AllowedHosts(["*"]).decide(b"anything") is True
    redirecting = AllowedHosts(["www.example.com"], www_redirect=True)
    assert redirecting.decide(b"example.com:8000") == "www.example.com:8000"
    assert redirecting.decide(b"other.com") is False


def test_a_bad_host_is_400_before_the_route_the_cache_and_the_metrics(client: TestClient) -> None:
    refused = client.get("/cached/1", headers={"host": "evil.example"})
    assert refused.status_code == 400 and refused.json() == {"detail": "invalid Host header"}
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert security_app.calls["cached"] == 0
    first = client.get("/cached/1")
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"  # nothing was stored for evil.example
    exposition = _scrape(client)
    assert 'route="/cached/{item_id}"' in exposition
    assert re.search(r'security_requests_refused_total\{reason="host"\} 1\.0', exposition)
    assert "evil" not in exposition


async def test_two_host_headers_are_a_bad_request(make: Callable[..., FastAPI]) -> None:
    from tests.test_protocol_answers import Connection, protocol

    app = make()
    async with app.router.lifespan_context(app) as state:
        for hosts in (b"Host: localhost\r\nHost: evil.example", b"Host: evil.example\r\nHost: localhost"):
            raw = b"GET /open HTTP/1.1\r\n" + hosts + b"\r\n\r\n"
            answered = await Connection(protocol(app, dict(state), answers=False)).ask(raw)
            assert answered.startswith(b"HTTP/1.1 400 ") and b"invalid Host header" in answered
    assert security_app.calls["open"] == 0


def test_an_identity_function_that_fails_leaves_it_to_the_next(make: Callable[..., FastAPI]) -> None:
    app = make(rate_limits={"routes": {"GET /open": "1/minute"}})
    with TestClient(app, base_url="http://localhost") as client:
        limits = client.app_state["security.limits"]
        limits.identities = (lambda scope: 1 / 0, *limits.identities)
        assert [client.get("/open").status_code for _ in range(2)] == [200, 429]  # by address, no 500


def test_a_www_redirect_keeps_the_path_and_query(make: Callable[..., FastAPI]) -> None:
    app = make(allowed_hosts=["www.example.com"], www_redirect=True)
    with TestClient(app, base_url="http://example.com", follow_redirects=False) as client:
        moved = client.get("/open?x=1")
    assert moved.status_code == 301 and moved.headers["location"] == "http://www.example.com/open?x=1"


def test_the_slash_redirect_names_an_allowed_host_only(client: TestClient) -> None:
    # FastAPI's trailing-slash redirect is built from Host: a forged one never gets that far
    assert client.get("/open/", headers={"host": "evil.example"}, follow_redirects=False).status_code == 400


# trusted proxies


def _forwarded(trusted: str, host: bool = True) -> ForwardedMiddleware:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not called
        pass

    return ForwardedMiddleware(app, trusted, host)


def _scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "scheme": "http", "client": (peer, 1234), "headers": [(b"host", b"app.test"), *headers]}


FORGED = ((b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"evil.example"))


def test_forwarded_headers_from_an_untrusted_peer_change_nothing() -> None:
    scope = _scope("203.0.113.9", *FORGED)
    assert _forwarded("10.0.0.1").forwarded(scope) is scope


def test_x_forwarded_host_counts_only_when_forwarded_host_is_on() -> None:
    scope = _scope("10.0.0.1", (b"x-forwarded-host", b"evil.example"))
    assert _forwarded("10.0.0.1", host=False).forwarded(scope) is scope  # nginx passes a client's own


def test_a_trusted_proxy_gives_the_client_address_scheme_and_host() -> None:
    scope = _scope(
        "10.0.0.1",
        (b"x-forwarded-for", b"6.6.6.6, 198.51.100.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"forged.example, api.example.com"),
    )
    seen = _forwarded("10.0.0.1").forwarded(scope)
    assert seen["client"] == ("198.51.100.7", 0)  # the nearest untrusted address, as uvicorn picks it
    assert seen["scheme"] == "https"
    assert dict(seen["headers"])[b"host"] == b"api.example.com"  # what the proxy itself appended
    assert scope["client"] == ("10.0.0.1", 1234) and dict(scope["headers"])[b"host"] == b"app.test"


def test_through_the_app_a_trusted_proxy_sets_the_scheme_and_host_everyone_sees(make: Callable[..., FastAPI]) -> None:
    app = make(
        server={"proxy_headers": True, "forwarded_allow_ips": "127.0.0.1", "forwarded_host": True},
        allowed_hosts=["api.example.com"],
        headers={"hsts_seconds": 600},
    )
    proxy = TestClient(app, base_url="http://internal", client=("127.0.0.1", 4000))
    stranger = TestClient(app, base_url="http://api.example.com", client=("203.0.113.9", 4000))
    with proxy, stranger:
        through = proxy.get("/open", headers={"x-forwarded-proto": "https", "x-forwarded-host": "api.example.com"})
        assert (
            through.status_code == 200
            and through.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
        )
        assert proxy.get("/open", headers={"x-forwarded-host": "evil.example"}).status_code == 400
        forged = stranger.get("/open", headers=dict((k.decode(), v.decode()) for k, v in FORGED))
        assert forged.status_code == 200 and "strict-transport-security" not in forged.headers


# security headers


def test_every_response_gets_the_configured_headers_once(make: Callable[..., FastAPI]) -> None:
    app = make(
        headers={
            "frame_options": "DENY",
            "referrer_policy": "no-referrer",
            "content_security_policy": "default-src 'self'",
            "csp_report_only": True,
            "server": "fastplug",
            "hsts_seconds": 31536000,
            "hsts_preload": True,
            "exclude_paths": ["/health"],
        }
    )
    with TestClient(app, base_url="https://localhost") as client:
        ok = client.get("/limited")
        assert ok.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
        assert ok.headers["x-content-type-options"] == "nosniff"
        assert ok.headers["x-frame-options"] == "DENY"
        assert ok.headers["referrer-policy"] == "no-referrer"
        assert ok.headers["cross-origin-opener-policy"] == "same-origin"
        assert ok.headers["content-security-policy-report-only"] == "default-src 'self'"
        assert "content-security-policy" not in ok.headers
        assert ok.headers.get_list("server") == ["fastplug"]
        assert client.get("/open").headers.get_list("x-frame-options") == ["SAMEORIGIN"]  # the route's own
        assert client.get("/nowhere").headers["x-content-type-options"] == "nosniff"  # errors too
        assert "x-content-type-options" not in client.get("/health/live").headers  # opted out by path
        assert "x-content-type-options" not in client.get("/frameable").headers  # by @no_security_headers
    with TestClient(app, base_url="http://localhost") as plain:
        assert "strict-transport-security" not in plain.get("/limited").headers  # HTTPS only


# CORS


def test_a_preflight_is_answered_without_the_route(client: TestClient) -> None:
    asked = {"origin": "http://localhost:5173", "access-control-request-method": "GET"}
    granted = client.options("/limited", headers=asked)
    assert granted.status_code == 200 and security_app.calls["limited"] == 0
    assert granted.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "GET" in granted.headers["access-control-allow-methods"]
    assert granted.headers["access-control-max-age"] == "600"
    assert granted.headers["vary"] == "Origin"
    refused = client.options("/limited", headers={**asked, "origin": "https://evil.example"})
    assert refused.status_code == 400 and "origin" in refused.json()["detail"]
    headers = client.options("/limited", headers={**asked, "access-control-request-headers": "x-secret"})
    assert headers.status_code == 400 and "headers" in headers.json()["detail"]


def test_an_actual_request_is_annotated_for_its_own_origin_only(client: TestClient) -> None:
    first = client.get("/cached/5", headers={"origin": "https://app.example.com"})
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["access-control-allow-origin"] == "https://app.example.com"
    second = client.get("/cached/5", headers={"origin": "http://localhost:3000"})
    assert second.headers["x-cache"] == "HIT"  # one entry serves both origins
    assert second.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = client.get("/cached/5", headers={"origin": "https://evil.example"})
    assert other.headers["x-cache"] == "HIT" and "access-control-allow-origin" not in other.headers
    for answer in (first, second, other):
        assert "Origin" in answer.headers["vary"]
    assert client.get("/cached/5").headers.get("access-control-allow-origin") is None


def test_credentials_echo_the_origin_and_say_so(make: Callable[..., FastAPI]) -> None:
    app = make(
        cors={"allow_origins": ["https://*.example.com"], "allow_credentials": True, "expose_headers": ["X-Cache"]}
    )
    with TestClient(app, base_url="http://localhost") as client:
        answer = client.get("/open", headers={"origin": "https://a.b.example.com"})
    assert answer.headers["access-control-allow-origin"] == "https://a.b.example.com"
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert answer.headers["access-control-expose-headers"] == "x-cache"


def test_origin_patterns_and_vary_merging() -> None:
    cors = Cors(CorsSettings(allow_origins=["https://*.example.com", "http://localhost:*"]))
    assert cors.allows(b"https://a.example.com") and cors.allows(b"http://localhost")
    assert cors.allows(b"http://localhost:8080")
    assert not cors.allows(b"https://example.com") and not cors.allows(b"https://a.example.com.evil.test")
    assert not cors.allows(b"http://a.example.com") and not cors.allows(b"http://localhost.evil.test")

    def with_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return finished(headers, (), frozenset(), (), vary_origin=True)

    assert with_vary([(b"vary", b"Accept-Encoding")]) == [(b"vary", b"Accept-Encoding, Origin")]
    assert with_vary([(b"vary", b"origin")]) == [(b"vary", b"origin")]
    assert with_vary([]) == [(b"vary", b"Origin")]
    wildcard = Cors(CorsSettings(allow_origins=["*"]))
    assert wildcard.response_headers(b"https://any.test")[0] == (b"access-control-allow-origin", b"*")


# rate limits


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64: one client
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),  # the next /64: another
        ("::ffff:192.0.2.7", "192.0.2.7", True),  # an IPv4-mapped address is that IPv4 client
        ("192.0.2.7", "192.0.2.8", False),
    ],
)
def test_ipv6_clients_are_limited_per_network(client: TestClient, first: str, second: str, shared: bool) -> None:
    one = TestClient(client.app, base_url="http://localhost", client=(first, 5000))
    other = TestClient(client.app, base_url="http://localhost", client=(second, 5000))
    for each in (one, other):
        each.app_state.update(client.app_state)  # the started app's services (its limits)
    assert [one.get("/limited").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert other.get("/limited").status_code == (429 if shared else 200)


def test_a_decorated_route_allows_its_rate_then_429_with_retry_after(client: TestClient) -> None:
    answers = [client.get("/limited") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["ratelimit-limit"] == "3" and answers[0].headers["ratelimit-policy"] == "3;w=60"
    refused = answers[3]
    assert refused.json() == {"detail": "rate limit exceeded"}
    assert refused.headers["retry-after"] == "20"  # GCRA: one emission interval, 60 s / 3
    assert security_app.calls["limited"] == 3
    assert client.get("/open").status_code == 200  # other routes have their own (no) limit
    assert re.search(r'security_requests_refused_total\{reason="rate_limit"\} 1\.0', _scrape(client))
    assert re.search(r'http_requests_total\{method="GET",route="/limited",status="429"\} 1\.0', _scrape(client))


def test_head_shares_a_marked_get_route_s_bucket_and_same_named_routes_do_not(client: TestClient) -> None:
    remaining = [
        client.request(method, "/cached/9").headers["ratelimit-remaining"] for method in ("GET", "HEAD", "HEAD", "GET")
    ]
    assert remaining == ["99", "98", "97", "96"]  # HEAD takes cells of the GET route's bucket
    assert [client.get("/twin-a").status_code for _ in range(2)] == [200, 429]
    assert client.get("/twin-b").headers["ratelimit-remaining"] == "99"  # its own bucket, its own rate


async def test_a_www_redirect_sends_the_path_as_it_came_never_a_header_break(make: Callable[..., FastAPI]) -> None:
    from tests.test_protocol_answers import Connection, protocol

    app = make(allowed_hosts=["www.example.com"], www_redirect=True)
    raw = b"GET /x%0d%0aSet-Cookie:%20sid=evil?q=%0d%0a HTTP/1.1\r\nHost: example.com\r\n\r\n"
    answered = Connection(protocol(app, {})).send(raw)  # answered at once, in the protocol
    head = answered.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 301 ")
    assert b"\r\nlocation: http://www.example.com/x%0d%0aSet-Cookie:%20sid=evil?q=%0d%0a" in head
    assert b"\r\nSet-Cookie" not in head


def test_identities_a_plugin_a_header_and_an_address(make: Callable[..., FastAPI]) -> None:
    app = make(rate_limits={"identity_header": "x-api-key", "routes": {"GET /open": "1/minute"}})
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/open").status_code == 200
        assert client.get("/open").status_code == 429  # the address's bucket is empty
        assert client.get("/open", headers={"x-api-key": "k1"}).status_code == 200
        assert client.get("/open", headers={"x-api-key": "k2"}).status_code == 200
        assert client.get("/open", headers={"x-api-key": "k1"}).status_code == 429
        assert client.get("/open", headers={"x-tenant": "t1", "x-api-key": "k1"}).status_code == 200  # the plugin's
        assert client.get("/open", headers={"x-tenant": "t1"}).status_code == 429


def test_settings_patterns_win_over_the_decorator_and_exempt_networks_pass(make: Callable[..., FastAPI]) -> None:
    app = make(rate_limits={"routes": {"GET /lim*": "1/minute"}, "exempt": ["10.0.0.0/8"]})
    with TestClient(app, base_url="http://localhost") as client:
        assert [client.get("/limited").status_code for _ in range(2)] == [200, 429]
    monitor = TestClient(app, base_url="http://localhost", client=("10.1.2.3", 9))
    with monitor:
        assert {monitor.get("/limited").status_code for _ in range(3)} == {200}


def test_a_default_rate_covers_every_other_route(make: Callable[..., FastAPI]) -> None:
    app = make(rate_limits={"default": "2/minute"})
    with TestClient(app, base_url="http://localhost") as client:
        assert [client.get("/open").status_code for _ in range(2)] == [200, 200]
        assert client.get("/health/live").status_code == 429  # one bucket for all of them
        assert client.get("/limited").status_code == 200  # its own rule, its own bucket


# settings and checks


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"allowed_hosts": ["exa mple.com"]}, "expected host names"),
        ({"allowed_hosts": ["api.*.com"]}, "expected host names"),
        ({"cors": {"allow_origins": ["app.example.com"]}}, "expected origins"),
        ({"cors": {"allow_origins": ["*"], "allow_credentials": True}}, "every site could read"),
        ({"rate_limits": {"routes": {"GET products": "1/minute"}}}, 'expected keys like "GET /products/*"'),
        ({"rate_limits": {"routes": {"/x": "lots"}}}, "100/minute"),
        ({"headers": {"frame_options": "ALLOW"}}, "frame_options"),
    ],
)
def test_bad_settings_name_the_key_and_what_is_expected(
    fastplug_load: Any, section: dict[str, Any], message: str
) -> None:
    with pytest.raises(FastplugError, match=re.escape(message)):
        fastplug_load(plugins=["security"], security=section)


def _checks(fastplug_load: Any, env: str = "development", **section: Any) -> list[str]:
    settings, _ = fastplug_load(env=env, plugins=["security"], security=section)
    return [m.id for m in security_checks(settings.section("security", SecuritySettings), settings)]


def test_check_refuses_any_host_in_production(fastplug_load: Any) -> None:
    assert _checks(fastplug_load, "production", allowed_hosts=["*"], headers={"hsts_seconds": 1}) == ["security.E001"]
    assert "security.E001" in _checks(fastplug_load, "production", allowed_hosts=[])
    assert "security.W001" in _checks(fastplug_load, "production", allowed_hosts=["a.example.com"])
    assert _checks(fastplug_load, allowed_hosts=["*"]) == []  # development
    assert _checks(fastplug_load, rate_limits={"backend": "redis"}) == ["security.E003"]
    assert _checks(fastplug_load, headers={"hsts_preload": True, "hsts_seconds": 60}) == ["security.W002"]


def test_cors_settings_reject_a_path_in_an_origin() -> None:
    with pytest.raises(ValidationError):
        CorsSettings(allow_origins=["https://app.example.com/"])


# through fastplug's HTTP protocol (a fresh memory-cache hit answered without an ASGI task)


async def test_protocol_answers_carry_the_headers_and_take_a_cell(make: Callable[..., FastAPI]) -> None:
    from tests.test_protocol_answers import Connection, protocol

    app = make(
        cors={"allow_origins": ["https://app.example.com"]}, rate_limits={"routes": {"GET /cached/*": "3/minute"}}
    )

    def get(path: str, *extra: str, host: str = "localhost") -> bytes:
        return ("\r\n".join([f"GET {path} HTTP/1.1", f"Host: {host}", *extra]) + "\r\n\r\n").encode()

    async with app.router.lifespan_context(app) as state:
        fast, usual = Connection(protocol(app, dict(state))), Connection(protocol(app, dict(state), answers=False))
        first = await fast.ask(get("/cached/1"))  # a miss: through the app, one cell taken
        assert b"x-cache: MISS" in first and b"ratelimit-remaining: 2" in first
        hit = fast.send(get("/cached/1", "Origin: https://app.example.com"))  # written during data_received
        assert b"x-cache: HIT" in hit and not fast.protocol.tasks
        assert b"x-content-type-options: nosniff" in hit and b"ratelimit-remaining: 1" in hit
        assert b"access-control-allow-origin: https://app.example.com" in hit
        assert re.search(rb"\r\nvary: [^\r]*Origin\r\n", hit)
        through_app = await usual.ask(get("/cached/1", "Origin: https://app.example.com"))
        assert b"x-cache: HIT" in through_app and b"ratelimit-remaining: 0" in through_app
        assert _headers(hit) - {b"ratelimit-remaining"} == _headers(through_app) - {b"ratelimit-remaining"}
        refused = fast.send(get("/cached/1"))  # no cell left: 429 at once, the cache not asked
        assert refused.startswith(b"HTTP/1.1 429 ") and b"retry-after: 20" in refused
        bad_host = fast.send(get("/cached/1", host="evil.example"))
        assert bad_host.startswith(b"HTTP/1.1 400 ") and b"invalid Host header" in bad_host
        assert security_app.calls["cached"] == 1


async def test_a_miss_offered_to_the_protocol_takes_no_cell(make: Callable[..., FastAPI]) -> None:
    from tests.test_protocol_answers import Connection, protocol

    app = make(rate_limits={"routes": {"GET /cached/*": "1/minute"}})
    async with app.router.lifespan_context(app) as state:
        fast = Connection(protocol(app, dict(state)))
        assert fast.send(b"GET /cached/2 HTTP/1.1\r\nHost: localhost\r\n\r\n") == b""  # not answerable at once
        answered = await fast.ask(b"")
        assert answered.startswith(b"HTTP/1.1 200 ") and b"ratelimit-remaining: 0" in answered  # one cell, not two


def _headers(raw: bytes) -> set[bytes]:
    head = raw.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return {line.partition(b":")[0] for line in head} - {b"date", b"content-length"}


# WebSocket handshakes


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({}, True),  # not a browser: no Origin
        ({"origin": "http://localhost"}, True),  # the page of this host
        ({"origin": "https://app.example.com"}, True),  # an allowed CORS origin
        ({"origin": "https://evil.example"}, False),  # another site's page, with the user's cookies
        ({"origin": "https://localhost"}, False),  # another scheme is another origin
        ({"host": "evil.example"}, False),
    ],
)
def test_a_websocket_handshake_is_checked_for_host_and_origin(
    client: TestClient, headers: dict[str, str], accepted: bool
) -> None:
    from starlette.websockets import WebSocketDisconnect

    if accepted:
        with client.websocket_connect("/ws", headers=headers) as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "hi"
        return
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws", headers=headers):
        pass
    assert refused.value.code == 1008


def test_the_websocket_origin_check_can_be_turned_off(make: Callable[..., FastAPI]) -> None:
    client = TestClient(make(websocket_same_origin=False), base_url="http://localhost")
    with client, client.websocket_connect("/ws", headers={"origin": "https://evil.example"}) as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
