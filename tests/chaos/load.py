"""A closed-loop keep-alive load that records every request (the chaos tests' client).

``connections`` workers each send one request after another on their own keep-alive
connection, for at most ``limit`` seconds and ``max_requests`` requests (bounded: a hung
server ends the run, it does not hang the test). Every request becomes a :class:`Record`,
with its status or the transport error, so a test can account for each one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Request:
    """What a worker sends next; ``key`` is the test's own label (an email, an order ref)."""

    method: str
    path: str
    json: Any = None
    key: Any = None
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Record:
    """One request and what became of it."""

    request: Request
    start: float
    end: float
    status: int | None = None
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400

    @property
    def closed(self) -> bool:
        """The server closed the connection (``Connection: close``) or it broke."""
        return self.error is not None or self.headers.get("connection", "").lower() == "close"

    @property
    def proper_503(self) -> bool:
        """503 with ``Retry-After`` and a JSON body: "try again", said properly."""
        return (
            self.status == 503
            and "retry-after" in self.headers
            and self.headers.get("content-type", "").startswith("application/json")
        )

    def json(self) -> Any:
        import json

        return json.loads(self.body)


Next = Callable[[int, int], Request]
"""``next(worker, n)``: the n-th request of a worker."""


class Load:
    """``with Load(base, next) as load: ...; records = load.stop()`` (or ``load.records``)."""

    def __init__(
        self,
        base_url: str,
        next_request: Next,
        connections: int = 32,
        limit: float = 120.0,
        max_requests: int = 200_000,
        timeout: float = 10.0,
    ) -> None:
        self.base_url, self.next_request = base_url, next_request
        self.connections, self.limit, self.max_requests, self.timeout = connections, limit, max_requests, timeout
        self.records: list[Record] = []
        self.began = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Load:
        self.began = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Record]:
        """End the run (requests in flight finish or time out) and return every record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 30)
            assert not self._thread.is_alive(), "the load did not stop"
            self._thread = None
        if self._error is not None:
            raise self._error
        return self.records

    def finish(self) -> list[Record]:
        """Let the run go to its end (``limit`` seconds or ``max_requests``), then ``stop()``."""
        if self._thread is not None:
            self._thread.join(self.limit + self.timeout + 30)
        return self.stop()

    def now(self) -> float:
        """Seconds since the load started (the clock of ``Record.start``/``end``)."""
        return time.monotonic() - self.began

    def wait_for(self, count: int, limit: float = 60.0) -> None:
        """Wait until ``count`` requests have been recorded (bounded)."""
        deadline = time.monotonic() + limit
        while len(self.records) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.records)} of {count} requests in {limit:g}s")
            time.sleep(0.05)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc

    async def _main(self) -> None:
        deadline = time.monotonic() + self.limit
        budget = [self.max_requests]
        await asyncio.gather(*(self._worker(i, deadline, budget) for i in range(self.connections)))

    async def _worker(self, worker: int, deadline: float, budget: list[int]) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=self.timeout) as client:
            n = 0
            while not self._stop.is_set() and time.monotonic() < deadline and budget[0] > 0:
                budget[0] -= 1
                request = self.next_request(worker, n)
                n += 1
                record = Record(request, self.now(), 0.0)
                try:
                    response = await client.request(
                        request.method, request.path, json=request.json, headers=request.headers
                    )
                except httpx.HTTPError as exc:
                    record.error = type(exc).__name__
                    await asyncio.sleep(0.01)  # a refused connection is retried, not spun on
                else:
                    record.status = response.status_code
                    record.headers = {k.lower(): v for k, v in response.headers.items()}
                    record.body = response.content[:2000]
                record.end = self.now()
                self.records.append(record)


def statuses(records: Iterable[Record]) -> Counter[str]:
    """How many of each outcome: ``"200"``, ``"503"``, ``"ReadError"``..."""
    return Counter(str(r.status) if r.status is not None else str(r.error) for r in records)


def improper(records: Iterable[Record]) -> list[Record]:
    """The requests a client must never see: a 5xx other than a proper 503, or a broken or
    closed connection."""
    return [r for r in records if (r.status is not None and r.status >= 500 and not r.proper_503) or r.closed]


def describe(records: Iterable[Record], limit: int = 5) -> str:
    """A few records, for an assertion message."""
    shown = [
        f"{r.request.method} {r.request.path} -> {r.status or r.error} {r.headers.get('content-type', '')} "
        f"{r.body[:160]!r} at {r.start:.2f}s"
        for r in list(records)[:limit]
    ]
    return "; ".join(shown)
