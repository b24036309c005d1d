"""Rate limits shared by every process and host: GCRA in a Lua script on Redis.

The requests of one event-loop turn are decided by one script call (one round trip and one
command's overhead for all the requests in flight, as the cache pipelines its reads), each
bucket atomically; a request never waits for more than the turn it arrived in.

Layout: one string per bucket, ``<prefix><key>``, holding its TAT in microseconds of Redis's
own clock (``TIME``: hosts whose clocks disagree still share one timeline), written with a
``PX`` of the time left until that TAT, so a bucket is deleted by Redis when it is worth
nothing and Redis memory stays bounded by the keys active within one period. A denied
request writes nothing. The numbers are :func:`~fastplug.plugins.security.limits.decide`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from fastplug.config import mask_secrets
from fastplug.plugins.security.limits import TOLERANCE, Decision, LimiterUnavailable, Rate, after_hit

log = logging.getLogger("fastplug.security")

_MICROS = 1_000_000

# KEYS: the buckets. ARGV: tolerance, then emission and period for each bucket (microseconds).
# Returns, for each bucket in turn, allowed (1/0), reset_after, retry_after (as in _GCRA).
_GCRA_MANY = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tolerance = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local emission, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then tat = now end
  local later = tat + emission
  local wait = later - period - now
  if wait > tolerance then
    out[#out + 1] = 0
    out[#out + 1] = string.format('%.17g', tat - now)
    out[#out + 1] = string.format('%.17g', wait)
  else
    redis.call('SET', key, string.format('%.17g', later), 'PX', math.max(math.ceil((later - now) / 1000), 1))
    out[#out + 1] = 1
    out[#out + 1] = string.format('%.17g', later - now)
    out[#out + 1] = '0'
  end
end
return out
"""
Pending = tuple[str, Rate, "asyncio.Future[tuple[Any, Any, Any]]"]


def _reason(exc: BaseException, op_timeout: float) -> str:
    """Why a call failed, on one line, credentials in URLs masked."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {op_timeout:g}s (op_timeout)"
    text = mask_secrets(" ".join(str(exc).split()))[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RedisLimiter:
    """GCRA buckets in Redis: one ``EVALSHA`` per event-loop turn's :meth:`ahit` calls, under
    ``op_timeout``.

    Every failure (a Redis error, a timeout) is :class:`LimiterUnavailable`. After
    ``breaker_failures`` in a row the circuit opens: for ``breaker_cooldown`` seconds calls
    raise at once without touching the network, then one call at a time tries Redis again
    (a failure reopens it, a success closes it). ``open_until`` (``clock`` time, 0.0 when
    closed) is for a gauge. An outage is logged once at WARNING, its end at INFO.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "fastplug:rl:",
        op_timeout: float = 0.1,
        breaker_failures: int = 5,
        breaker_cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.prefix, self.op_timeout = client, prefix, op_timeout
        self.breaker_failures, self.breaker_cooldown, self.clock = max(breaker_failures, 1), breaker_cooldown, clock
        self.failures = 0  # in a row
        self.open_until = 0.0
        self._probing = False
        self._outage_since: float | None = None
        self._script = client.register_script(_GCRA_MANY)
        self._batch: list[Pending] = []
        self._probe_batch = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def ahit(self, key: str, rate: Rate) -> Decision:
        """Decide for one request of ``key`` and, when it is allowed, count it (atomically, in
        Redis, in the script call that decides every request of this event-loop turn)."""
        probe = False
        if self.open_until:
            if self.clock() < self.open_until or self._probing:
                raise LimiterUnavailable("circuit open")
            probe = self._probing = True  # this call tries Redis; the others keep failing at once
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Any, Any]] = loop.create_future()
        self._batch.append((self.prefix + key, rate, future))
        if probe:
            self._probe_batch = True
        if len(self._batch) == 1:
            loop.call_soon(self._flush)
        allowed, reset_after, retry_after = await future
        reset = float(reset_after) / _MICROS
        if int(allowed):
            return after_hit(reset, rate)
        return Decision(False, rate.limit, 0, reset, float(retry_after) / _MICROS)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        probe, self._probe_batch = self._probe_batch, False
        task = asyncio.get_running_loop().create_task(self._decide(batch, probe))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, batch: list[Pending], probe: bool = False) -> None:
        keys = [key for key, _, _ in batch]
        args: list[str] = [repr(TOLERANCE * _MICROS)]
        for _, rate, _ in batch:
            args += (repr(rate.emission * _MICROS), repr(rate.period * _MICROS))
        try:
            async with asyncio.timeout(self.op_timeout):
                flat = await self._script(keys=keys, args=args)
        except Exception as exc:
            failure = self._failed(exc)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(LimiterUnavailable(str(failure)))
            return
        finally:
            if probe:  # only the probe's own batch ends the probe
                self._probing = False
        self._answered()
        try:
            for i, (_, _, future) in enumerate(batch):
                if not future.done():  # not cancelled meanwhile
                    future.set_result((flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]))
        finally:  # a reply that does not fit leaves no request waiting
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(LimiterUnavailable("unexpected reply from Redis"))

    def _failed(self, exc: Exception) -> LimiterUnavailable:
        reason = _reason(exc, self.op_timeout)
        self.failures += 1
        if self._outage_since is None:
            self._outage_since = self.clock()
            log.warning(
                "rate limits: Redis unavailable (%s); the circuit opens after %d failure(s) in a row, for %gs",
                reason,
                self.breaker_failures,
                self.breaker_cooldown,
            )
        if self.failures >= self.breaker_failures:
            self.open_until = self.clock() + self.breaker_cooldown
        return LimiterUnavailable(reason)

    def _answered(self) -> None:
        self.failures = 0
        self.open_until = 0.0
        if self._outage_since is not None:
            log.info("rate limits: Redis answers again after %.1fs", self.clock() - self._outage_since)
            self._outage_since = None
