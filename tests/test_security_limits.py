"""The rate-limit engine: rates, GCRA's numbers, the bounded in-process limiter and the Redis one
(against the real Redis of this machine, and a private redis-server that is killed and hung)."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis as redis_sync
import redis.asyncio as aioredis

from fastplug.core.testing import require_service
from fastplug.plugins.security.limits import Decision, LimiterUnavailable, MemoryLimiter, Rate, policy_header
from fastplug.plugins.security.limits_redis import RedisLimiter
from tests.conftest import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
PrivateRedis = Callable[[], subprocess.Popen[bytes]]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Rate


@pytest.mark.parametrize(
    ("text", "limit", "period", "canonical"),
    [
        ("100/minute", 100, 60, "100/minute"),
        ("100/min", 100, 60, "100/minute"),
        ("10/second", 10, 1, "10/second"),
        ("10/s", 10, 1, "10/second"),
        ("1000/hour", 1000, 3600, "1000/hour"),
        ("2/day", 2, 86400, "2/day"),
        ("5/10s", 5, 10, "5/10s"),
        ("30/5m", 30, 300, "30/5m"),
        ("1/2h", 1, 7200, "1/2h"),
        (" 7 / 90 seconds ", 7, 90, "7/90s"),
        ("3/HOUR", 3, 3600, "3/hour"),
    ],
)
def test_rates_parse_and_print_back_canonically(text: str, limit: int, period: float, canonical: str) -> None:
    rate = Rate.parse(text)
    assert (rate.limit, rate.period) == (limit, period)
    assert str(rate) == canonical
    assert Rate.parse(str(rate)) == rate
    assert rate.emission == period / limit


@pytest.mark.parametrize(
    "text", ["abc", "", "100", "100/", "/minute", "100/fortnight", "100 per minute", "1.5/minute", "-1/minute", "5/-2s"]
)
def test_malformed_rates_are_refused_naming_the_text_and_the_form(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        Rate.parse(text)
    assert 'expected "<count>/<period>" like "100/minute" or "5/10s"' in str(raised.value)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize("text", ["0/minute", "5/0s", "5/0.0m"])
def test_empty_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=text.replace(".", r"\.")):
        Rate.parse(text)


@pytest.mark.parametrize(("limit", "period"), [(0, 60.0), (-1, 60.0), (1, 0.0), (1, -5.0), (1, float("inf"))])
def test_rates_are_checked_when_built_directly_too(limit: int, period: float) -> None:
    with pytest.raises(ValueError):
        Rate(limit, period)


def test_a_fractional_period_prints_and_parses_back() -> None:
    rate = Rate(2, 0.5)
    assert Rate.parse(str(rate)) == rate


# MemoryLimiter


@pytest.mark.parametrize("text", ["5/second", "100/minute", "3/s", "7/10s", "1/hour"])
def test_exactly_limit_requests_pass_at_once_then_one_per_emission(text: str) -> None:
    rate, clock = Rate.parse(text), FakeClock()
    limiter = MemoryLimiter(clock=clock)
    decisions = [limiter.hit("k", rate) for _ in range(rate.limit)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == list(range(rate.limit - 1, -1, -1))
    assert decisions[-1].reset_after == pytest.approx(rate.period)

    denied = limiter.hit("k", rate)
    assert not denied.allowed and denied.remaining == 0
    assert denied.retry_after == pytest.approx(rate.emission)
    assert denied.reset_after == pytest.approx(rate.period)
    assert limiter.hit("k", rate) == denied  # a denied request changed nothing

    clock.advance(rate.emission * 0.99)
    assert not limiter.hit("k", rate).allowed
    clock.advance(rate.emission * 0.01)
    again = limiter.hit("k", rate)
    assert again.allowed and again.remaining == 0 and again.retry_after == 0.0
    assert not limiter.hit("k", rate).allowed  # one emission bought one request

    clock.advance(rate.period)
    assert sum(limiter.hit("k", rate).allowed for _ in range(rate.limit + 1)) == rate.limit  # a full burst again


def test_peek_gives_what_hit_would_and_changes_nothing() -> None:
    rate, clock = Rate.parse("3/minute"), FakeClock()
    limiter = MemoryLimiter(clock=clock)
    assert limiter.peek("k", rate) == Decision(True, 3, 2, 20.0, 0.0)
    assert len(limiter) == 0  # a fresh key peeked is not stored
    for _ in range(3):
        peeked = limiter.peek("k", rate)
        assert limiter.peek("k", rate) == peeked
        assert limiter.hit("k", rate) == peeked
    assert limiter.peek("k", rate) == limiter.peek("k", rate) == limiter.hit("k", rate)
    assert not limiter.peek("k", rate).allowed


def test_keys_are_independent() -> None:
    rate, limiter = Rate.parse("2/minute"), MemoryLimiter(clock=FakeClock())
    assert [limiter.hit("a", rate).allowed for _ in range(3)] == [True, True, False]
    assert [limiter.hit("b", rate).allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("login:a", Rate.parse("1/hour")).allowed  # another rule on the same identity: another key


async def test_ahit_is_hit() -> None:
    rate, limiter = Rate.parse("1/minute"), MemoryLimiter(clock=FakeClock())
    assert (await limiter.ahit("k", rate)).allowed
    assert not (await limiter.ahit("k", rate)).allowed
    assert not limiter.hit("k", rate).allowed


def test_memory_is_bounded_and_a_limited_key_outlives_expired_ones() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(max_keys=1000, clock=clock)
    strict, loose = Rate.parse("1/hour"), Rate.parse("10/second")
    assert limiter.hit("attacker", strict).allowed
    assert not limiter.hit("attacker", strict).allowed  # denied: limited for an hour, and the oldest key
    most = 0
    for i in range(50_000):
        clock.advance(0.01)  # each passer-by's bucket is empty again 0.1 s after its request
        assert limiter.hit(f"passer-by:{i}", loose).allowed
        most = max(most, len(limiter))
    assert most <= 1000
    assert not limiter.hit("attacker", strict).allowed  # 500 s later: still remembered, still limited


def test_when_every_key_is_live_the_least_recently_hit_goes() -> None:
    rate, limiter = Rate.parse("1/hour"), MemoryLimiter(max_keys=3, clock=FakeClock())
    for key in "abc":
        assert limiter.hit(key, rate).allowed
    assert not limiter.hit("a", rate).allowed  # a is hit again: b is now the least recent
    assert limiter.hit("d", rate).allowed
    assert len(limiter) == 3
    assert not limiter.hit("a", rate).allowed
    assert limiter.hit("b", rate).allowed  # forgotten: fresh again


def test_peek_does_not_count_as_a_hit_for_recency() -> None:
    rate, limiter = Rate.parse("1/hour"), MemoryLimiter(max_keys=2, clock=FakeClock())
    limiter.hit("a", rate)
    limiter.hit("b", rate)
    assert not limiter.peek("a", rate).allowed
    limiter.hit("c", rate)
    assert limiter.peek("a", rate).allowed and not limiter.peek("b", rate).allowed


# Decision headers


def test_headers_of_an_allowed_request() -> None:
    assert Decision(True, 100, 99, 0.6, 0.0).headers() == [
        (b"ratelimit-limit", b"100"),
        (b"ratelimit-remaining", b"99"),
        (b"ratelimit-reset", b"1"),
    ]


def test_headers_of_a_denied_request_round_up_and_add_retry_after() -> None:
    assert Decision(False, 100, 0, 59.2, 0.2).headers(b"100;w=60") == [
        (b"ratelimit-limit", b"100"),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"60"),
        (b"ratelimit-policy", b"100;w=60"),
        (b"retry-after", b"1"),
    ]
    assert dict(Decision(False, 1, 0, 7200.0, 3600.5).headers())[b"retry-after"] == b"3601"
    assert dict(Decision(False, 1, 0, 0.0, 0.0).headers())[b"retry-after"] == b"1"  # never 0 when denied


def test_headers_of_a_limiter_decision_ignore_float_error() -> None:
    rate, limiter = Rate.parse("100/minute"), MemoryLimiter(clock=FakeClock(0.1))
    for _ in range(rate.limit):
        last = limiter.hit("k", rate)
    assert dict(last.headers())[b"ratelimit-reset"] == b"60"
    denied = dict(limiter.hit("k", rate).headers())
    assert denied[b"ratelimit-reset"] == b"60" and denied[b"retry-after"] == b"1"


@pytest.mark.parametrize(
    ("text", "header"), [("100/minute", b"100;w=60"), ("5/10s", b"5;w=10"), ("2/day", b"2;w=86400")]
)
def test_policy_header(text: str, header: bytes) -> None:
    assert policy_header(Rate.parse(text)) == header


# RedisLimiter, on the shared Redis


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    require_service("Redis", "127.0.0.1", 6379)
    name = f"fptest:rl:{uuid.uuid4().hex[:10]}:"
    yield name
    client = redis_sync.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        for key in client.scan_iter(f"{name}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
async def shared(prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.mark.parametrize("text", ["5/minute", "100/minute"])
async def test_redis_exactly_limit_requests_pass_then_retry_after_one_emission(
    shared: aioredis.Redis, prefix: str, text: str
) -> None:
    rate = Rate.parse(text)
    limiter = RedisLimiter(shared, prefix=prefix, op_timeout=1.0)
    decisions = [await limiter.ahit("k", rate) for _ in range(rate.limit)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == list(range(rate.limit - 1, -1, -1))
    denied = await limiter.ahit("k", rate)
    assert not denied.allowed and denied.remaining == 0
    assert denied.retry_after == pytest.approx(rate.emission, abs=1.0)  # less the time the requests took
    assert denied.reset_after == pytest.approx(rate.period, abs=1.0)
    assert int(dict(denied.headers())[b"retry-after"]) == max(math.ceil(rate.emission), 1)


async def test_two_limiters_on_two_clients_share_one_bucket(shared: aioredis.Redis, prefix: str) -> None:
    rate = Rate.parse("5/minute")
    other = aioredis.Redis.from_url(REDIS_URL)
    try:
        here, there = (
            RedisLimiter(shared, prefix=prefix, op_timeout=1.0),
            RedisLimiter(other, prefix=prefix, op_timeout=1.0),
        )
        assert [(await here.ahit("k", rate)).remaining for _ in range(3)] == [4, 3, 2]
        assert [(await there.ahit("k", rate)).remaining for _ in range(2)] == [1, 0]
        assert not (await here.ahit("k", rate)).allowed
        assert not (await there.ahit("k", rate)).allowed
        assert (await there.ahit("other", rate)).remaining == 4
    finally:
        await other.aclose()


async def test_buckets_expire_in_redis_when_their_tat_passes(shared: aioredis.Redis, prefix: str) -> None:
    rate = Rate.parse("5/minute")
    limiter = RedisLimiter(shared, prefix=prefix, op_timeout=1.0)
    await limiter.ahit("k", rate)
    assert 0 < await shared.pttl(f"{prefix}k") <= 12_000  # one emission
    for _ in range(5):
        await limiter.ahit("k", rate)
    assert 48_000 < await shared.pttl(f"{prefix}k") <= 60_000  # full: one period
    assert await shared.keys(f"{prefix}*") == [f"{prefix}k".encode()]


async def test_redis_and_memory_agree(shared: aioredis.Redis, prefix: str) -> None:
    rate = Rate.parse("4/hour")
    redis_limiter, memory = RedisLimiter(shared, prefix=prefix, op_timeout=1.0), MemoryLimiter(clock=FakeClock())
    for _ in range(6):
        remote, local = await redis_limiter.ahit("k", rate), memory.hit("k", rate)
        assert (remote.allowed, remote.limit, remote.remaining) == (local.allowed, local.limit, local.remaining)
        assert remote.retry_after == pytest.approx(local.retry_after, abs=1.0)
        assert remote.reset_after == pytest.approx(local.reset_after, abs=1.0)


async def test_the_requests_of_one_loop_turn_are_decided_by_one_script_call(
    shared: aioredis.Redis, prefix: str
) -> None:
    limiter = RedisLimiter(shared, prefix=prefix, op_timeout=1.0)
    five, two = Rate.parse("5/minute"), Rate.parse("2/minute")
    calls = counting(shared)
    decisions = await asyncio.gather(
        *(limiter.ahit("a", five) for _ in range(7)), *(limiter.ahit("b", two) for _ in range(3))
    )
    assert len(calls) == 1  # ten requests, one round trip
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2 + [True, True, False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[6].retry_after == pytest.approx(five.emission, abs=1.0)
    assert sorted(await shared.keys(f"{prefix}*")) == [f"{prefix}a".encode(), f"{prefix}b".encode()]


# RedisLimiter, on a private Redis that fails


def counting(client: aioredis.Redis) -> list[object]:
    """The script calls that reach ``client`` from now on (each appended to the list)."""
    calls: list[object] = []
    evalsha = client.evalsha

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await evalsha(*args, **kwargs)

    client.evalsha = counted  # type: ignore[method-assign]
    return calls


async def test_a_dead_redis_fails_fast_opens_the_circuit_and_recovers(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fastplug.security")
    server = private_redis()
    client = aioredis.Redis(host="127.0.0.1", port=private_redis.port)  # type: ignore[attr-defined]
    clock, rate = FakeClock(), Rate.parse("5/minute")
    limiter = RedisLimiter(client, prefix="rl:", op_timeout=0.1, breaker_failures=3, breaker_cooldown=0.2, clock=clock)
    try:
        assert (await limiter.ahit("k", rate)).remaining == 4
        server.kill()
        server.wait()
        for _ in range(3):
            with pytest.raises(LimiterUnavailable):
                await limiter.ahit("k", rate)
        assert limiter.open_until == clock.now + 0.2

        calls = counting(client)
        with pytest.raises(LimiterUnavailable, match="circuit open"):
            await limiter.ahit("k", rate)
        assert calls == []  # the network was not touched

        clock.advance(0.2)  # one call tries again, fails: open again for a cool-down
        with pytest.raises(LimiterUnavailable) as still_down:
            await limiter.ahit("k", rate)
        assert "circuit open" not in str(still_down.value) and len(calls) == 1
        assert limiter.open_until == clock.now + 0.2

        private_redis()  # back on the same port, empty
        with pytest.raises(LimiterUnavailable, match="circuit open"):
            await limiter.ahit("k", rate)
        clock.advance(0.2)
        probe, held_back = await asyncio.gather(
            limiter.ahit("k", rate), limiter.ahit("k", rate), return_exceptions=True
        )
        assert isinstance(probe, Decision) and probe.remaining == 4  # one call tries: the bucket is new
        assert isinstance(held_back, LimiterUnavailable)  # while the other waits for its answer
        assert limiter.open_until == 0.0
        assert (await limiter.ahit("k", rate)).remaining == 3
    finally:
        await client.aclose()
    warnings = [r for r in caplog.records if r.name == "fastplug.security" and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, however many calls failed
    assert any("answers again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def test_a_hung_redis_times_out_as_unavailable(private_redis: PrivateRedis) -> None:
    server = private_redis()
    client = aioredis.Redis(host="127.0.0.1", port=private_redis.port)  # type: ignore[attr-defined]
    limiter = RedisLimiter(client, prefix="rl:", op_timeout=0.1)
    rate = Rate.parse("5/minute")
    try:
        assert (await limiter.ahit("k", rate)).allowed
        server.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(LimiterUnavailable, match=r"timed out after 0\.1s"):  # op_timeout cut it
                await limiter.ahit("k", rate)
        finally:
            server.send_signal(signal.SIGCONT)
        assert (await limiter.ahit("k", rate)).allowed  # not open after one failure
    finally:
        await client.aclose()


async def test_errors_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fastplug.security")
    client = aioredis.Redis.from_url(f"redis://user:s3cret-pw@127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    limiter = RedisLimiter(client, op_timeout=0.2)
    try:
        with pytest.raises(LimiterUnavailable) as raised:
            await limiter.ahit("k", Rate.parse("1/s"))
    finally:
        await client.aclose()
    assert "s3cret-pw" not in str(raised.value) and "s3cret-pw" not in caplog.text
    assert not isinstance(raised.value, redis_sync.RedisError)
