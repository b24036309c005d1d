"""Rate limits by GCRA (the generic cell rate algorithm): rates, decisions, an in-process limiter.

A rate of ``limit`` requests per ``period`` seconds lets one request through every
``emission = period / limit`` seconds, with a burst of ``limit``: a bucket is one number, its
TAT (theoretical arrival time). A request at ``now`` is allowed when
``max(tat, now) + emission - now <= period``, and then moves the TAT there; a denied one
changes nothing. From a fresh key exactly ``limit`` requests pass at one instant, the next is
told to retry after one emission interval. A key whose TAT has passed is a fresh key again,
so it can be forgotten at no cost: that bounds the memory.

Limiters know keys, not rates: two rules on one identity need two keys (``"login:" + ip``
and ``"api:" + ip``), or the rules share, and corrupt, one bucket.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

TOLERANCE = 1e-6
"""Seconds of float error forgiven: a request a microsecond early is on time."""
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_UNIT_NAMES = {
    "s": "s",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "min": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hr": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
}
_CANONICAL = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([A-Za-z]+)\s*")


class LimiterUnavailable(Exception):  # noqa: N818 - names the condition
    """The limiter's store failed, timed out, or its circuit is open: the caller decides
    whether to let the request through (fail open) or refuse it (fail closed)."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period`` seconds (a burst of ``limit``)."""

    limit: int
    period: float
    emission: float = field(init=False, repr=False, compare=False)
    """Seconds between two requests at the sustained rate (``period / limit``)."""

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"a rate's limit must be an integer >= 1, got {self.limit!r}")
        if not (isinstance(self.period, int | float) and math.isfinite(self.period) and self.period > 0):
            raise ValueError(f"a rate's period must be a number of seconds > 0, got {self.period!r}")
        object.__setattr__(self, "emission", self.period / self.limit)  # once: read per request

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"100/minute"``, ``"10/s"``, ``"5/10s"``, ``"30/5m"``, ``"1/2h"``, ``"2/day"``..."""
        found = _RATE.fullmatch(text) if isinstance(text, str) else None
        unit = _UNIT_NAMES.get(found.group(3).lower()) if found else None
        if found is None or unit is None:
            raise ValueError(f'expected "<count>/<period>" like "100/minute" or "5/10s", got {text!r}')
        limit, count = int(found.group(1)), float(found.group(2) or 1)
        if limit < 1 or count <= 0:
            raise ValueError(f"a rate needs a count >= 1 and a period > 0, got {text!r}")
        return cls(limit, count * _UNITS[unit])

    def __str__(self) -> str:
        """The canonical text :meth:`parse` reads back: ``100/minute``, ``5/10s``, ``1/2h``."""
        for unit in "dhms":
            count = self.period / _UNITS[unit]
            if count == int(count):
                return f"{self.limit}/{_CANONICAL[unit]}" if count == 1 else f"{self.limit}/{int(count)}{unit}"
        return f"{self.limit}/{self.period!r}s"


def _seconds_up(value: float) -> int:
    """Whole seconds, rounded up (float error forgiven), never negative."""
    return max(math.ceil(value - TOLERANCE), 0)


class Decision(NamedTuple):
    """What a limiter decided for one request (a named tuple: one is made per request).

    ``reset_after``: seconds until the bucket is full again; ``retry_after``: seconds until
    the next request would be allowed (0.0 when this one was).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float

    def headers(self, policy: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """The IETF draft's ``RateLimit-*`` headers (and ``Retry-After`` when denied), as ASGI pairs."""
        reset = math.ceil(self.reset_after - TOLERANCE)
        pairs = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % (reset if reset > 0 else 0)),
        ]
        if policy is not None:
            pairs.append((b"ratelimit-policy", policy))
        if not self.allowed:
            pairs.append((b"retry-after", b"%d" % max(_seconds_up(self.retry_after), 1)))
        return pairs


def policy_header(rate: Rate) -> bytes:
    """The ``RateLimit-Policy`` value of a rate: ``b"100;w=60"`` (the window in whole seconds, up)."""
    return b"%d;w=%d" % (rate.limit, max(_seconds_up(rate.period), 1))


def decide(tat: float, now: float, rate: Rate) -> tuple[Decision, float]:
    """GCRA for a bucket at ``tat`` (``now`` or earlier: fresh): the decision, and the TAT after it.

    The one implementation of the numbers: :class:`MemoryLimiter` and the Redis limiter's
    replies both go through it, so they agree to the microsecond.
    """
    emission, period = rate.emission, rate.period
    later = max(tat, now) + emission
    wait = later - period - now
    if wait > TOLERANCE:
        return Decision(False, rate.limit, 0, max(tat - now, 0.0), wait), tat
    return after_hit(later - now, rate), later


def after_hit(reset_after: float, rate: Rate) -> Decision:
    """The decision for an allowed request that left the bucket ``reset_after`` seconds from full."""
    remaining = math.floor((rate.period - reset_after) / rate.emission + TOLERANCE)
    return Decision(True, rate.limit, min(max(remaining, 0), rate.limit - 1), reset_after, 0.0)


class MemoryLimiter:
    """GCRA buckets in this process (one event loop; not for threads), at most ``max_keys``.

    A key not in the table is fresh. When a new key finds the table full, keys whose TAT has
    passed are swept out (worth nothing); if none was, the least recently hit one goes. A
    sweep reads every key, so one runs at most every ``max_keys // 4`` new keys: between
    sweeps, room is made by dropping the least recently hit key (the oldest first, so
    usually an expired one). Every call is amortised O(1). A denied hit counts as recent: a
    key that keeps being refused is the last one forgotten.

    Keys should name the rule too (see the module): the table holds TATs, not rates.
    """

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.max_keys, self.clock = max_keys, clock
        self._tats: OrderedDict[str, float] = OrderedDict()  # least recently hit first
        self._sweep_every = max(max_keys // 4, 1)
        self._new_since_sweep = self._sweep_every  # the first time it is full: sweep

    def __len__(self) -> int:
        return len(self._tats)

    def peek(self, key: str, rate: Rate) -> Decision:
        """The decision :meth:`hit` would give now, with nothing changed (nor the key's recency)."""
        now = self.clock()
        return decide(self._tats.get(key, now), now, rate)[0]

    def hit(self, key: str, rate: Rate) -> Decision:
        """Decide for one request of ``key`` and, when it is allowed, count it."""
        now = self.clock()
        tats = self._tats
        tat = tats.get(key)
        if tat is not None and tat <= now:  # the common case: a bucket that is full again
            tats.move_to_end(key)
            tats[key] = now + rate.emission
            return Decision(True, rate.limit, rate.limit - 1, rate.emission, 0.0)
        decision, later = decide(now if tat is None else tat, now, rate)
        if tat is not None:
            tats.move_to_end(key)
            if decision.allowed:
                tats[key] = later
        elif decision.allowed:  # always, for a fresh key
            if len(tats) >= self.max_keys:
                self._make_room(now)
            tats[key] = later
            self._new_since_sweep += 1
        return decision

    async def ahit(self, key: str, rate: Rate) -> Decision:
        """:meth:`hit`, with the signature every limiter shares."""
        return self.hit(key, rate)

    def _make_room(self, now: float) -> None:
        tats = self._tats
        if self._new_since_sweep >= self._sweep_every:
            self._new_since_sweep = 0
            for key in [key for key, tat in tats.items() if tat <= now]:
                del tats[key]
        while len(tats) >= self.max_keys:
            tats.popitem(last=False)
