"""Event-loop lag, and a watchdog thread that catches what blocks the loop.

A timer in the loop fires every ``lag_interval`` seconds and notes how late it is: that is
the loop's lag (a histogram and a gauge). The watchdog thread wakes every half
``block_threshold_ms``; when the timer is overdue by more than that, the loop thread is
stuck in something that does not await (``time.sleep``, a sync driver, a CPU loop), and the
watchdog takes its stack at once, while it is still stuck. When the loop runs again, the
late tick reports the block: one warning (per route per ``log_interval``) with the route,
how late the loop was, and the frames of the app's code, and the blocked seconds counted by
route. The loop's cost is one timer callback per interval; the thread's, a wake-up per half
threshold.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from fastplug.plugins.profiling.stacks import Snapshot, StackReader, Stall

log = logging.getLogger("fastplug.profiling")
NOT_SERVING = "(not serving)"
"""The route label of a block during startup or shutdown (imports, connecting): logged at debug."""


@dataclass(slots=True)
class LoopFigures:
    """What the monitor measured in this process (also the ``profiling.loop`` service)."""

    ticks: int = 0
    last_lag: float = 0.0
    max_lag: float = 0.0
    blocks: int = 0
    blocked_seconds: float = 0.0
    by_route: dict[str, float] = field(default_factory=dict)  # blocked seconds per "METHOD route"
    last_stall: Stall | None = None


class Instruments:
    """The Prometheus series the monitor feeds (made by the metrics plugin's hook)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.lag = Histogram(
            "event_loop_lag",
            "How late the event loop ran a timer, in seconds",
            unit="seconds",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.last_lag = Gauge(
            "event_loop_lag_last",
            "The event loop's lag at its last measurement, per process",
            unit="seconds",
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.blocked = Counter(
            "event_loop_blocked",
            "Seconds the event loop was blocked, by the route that was running",
            ["method", "route"],
            unit="seconds",
            registry=registry,
        )
        self.blocks = Counter(
            "event_loop_blocks",
            "Times the event loop was blocked longer than block_threshold_ms, by route",
            ["method", "route"],
            registry=registry,
        )


class LoopMonitor:
    """Lag timer in the loop, watchdog thread beside it; :meth:`start` in the loop, :meth:`stop` after."""

    def __init__(
        self,
        reader: StackReader,
        interval: float,
        threshold: float,
        log_interval: float,
        stack_limit: int,
        instruments: Instruments | None = None,
        serving: Callable[[], bool] = lambda: True,
    ) -> None:
        self.reader = reader
        self.serving = serving
        self.interval = interval
        self.threshold = threshold
        self.log_interval = log_interval
        self.stack_limit = stack_limit
        self.instruments = instruments
        self.figures = LoopFigures()
        self._observe: Callable[[float], None] | None = instruments.lag.observe if instruments else None
        self._set_last: Callable[[float], None] | None = instruments.last_lag.set if instruments else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop_thread = 0
        self._beat = 0.0  # monotonic time of the last tick (read by the watchdog)
        self._due = 0.0  # when the next tick should run
        self._capture: tuple[float, Snapshot] | None = None  # (beat it was taken after, what it shows)
        self._logged: dict[str, float] = {}  # label -> when last warned
        self._quiet: dict[str, int] = {}  # label -> blocks not warned about since

    # the loop side
    def start(self) -> None:
        """Start the timer (call in the loop) and the watchdog thread."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat = monotonic()
        self._due = self._beat + self.interval
        self._handle = self._loop.call_later(self.interval, self._tick)
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="fastplug-profiling-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and the thread."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _tick(self) -> None:
        now = monotonic()
        lag = now - self._due
        if lag < 0:
            lag = 0.0
        before = self._beat
        self._beat = now
        self._due = now + self.interval
        loop = self._loop
        if loop is not None:
            self._handle = loop.call_later(self.interval, self._tick)
        figures = self.figures
        figures.ticks += 1
        figures.last_lag = lag
        if lag > figures.max_lag:
            figures.max_lag = lag
        if self._observe is not None:
            self._observe(lag)
        if self._set_last is not None:
            self._set_last(lag)
        if lag > self.threshold:
            capture = self._capture
            self._capture = None
            snap = capture[1] if capture is not None and capture[0] == before else None
            self._blocked(lag, self.reader.stall(snap) if snap is not None else None)

    def _blocked(self, lag: float, stall: Stall | None) -> None:
        figures = self.figures
        figures.blocks += 1
        figures.blocked_seconds += lag
        method, route = (stall.method, stall.route) if stall is not None else ("", "(unknown)")
        label = stall.label if stall is not None else route
        if not self.serving():  # startup (imports, connecting) or shutdown: not a route's doing
            method, route, label = "", NOT_SERVING, NOT_SERVING
        figures.by_route[label] = figures.by_route.get(label, 0.0) + lag
        figures.last_stall = stall
        if self.instruments is not None:
            self.instruments.blocked.labels(method, route).inc(lag)
            self.instruments.blocks.labels(method, route).inc()
        now = monotonic()
        last = self._logged.get(label)
        if last is not None and now - last < self.log_interval:
            self._quiet[label] = self._quiet.get(label, 0) + 1
            return
        self._logged[label] = now
        if len(self._logged) > 1000:  # labels are routes (bounded); forget the old ones
            cutoff = now - self.log_interval
            self._logged = {k: t for k, t in self._logged.items() if t >= cutoff}
            self._quiet = {k: n for k, n in self._quiet.items() if k in self._logged}
        quiet = self._quiet.pop(label, 0)
        more = f" ({quiet} more blocks since the last warning)" if quiet else ""
        if route == NOT_SERVING:
            log.debug("event loop blocked for %.0f ms while not serving", lag * 1000)
            return
        if stall is None:
            log.warning("event loop blocked for %.0f ms (no stack captured)%s", lag * 1000, more)
            return
        log.warning(
            "event loop blocked for %.0f ms by %s%s; it was running:\n%s",
            lag * 1000,
            stall.label,
            more,
            stall.format(self.stack_limit),
        )

    # the watchdog side
    def _watch(self) -> None:
        wait = self.threshold / 2
        frames = sys._current_frames
        while not self._stop.wait(wait):
            beat = self._beat
            overdue = monotonic() - beat - self.interval
            if overdue <= wait:
                continue
            capture = self._capture
            if capture is not None and capture[0] == beat:
                continue  # this stall is already captured
            frame = frames().get(self._loop_thread)
            if frame is None:
                continue
            try:
                snap = self.reader.snapshot(frame)
            except Exception:  # never let the watchdog die
                log.debug("profiling: reading the loop's stack failed", exc_info=True)
                continue
            finally:
                del frame
            if self._beat == beat:  # still the same stall: the loop has not run since
                self._capture = (beat, snap)
