"""``[profiling]`` settings: event-loop lag, blocking detection, slow requests, on-demand profiles."""

from __future__ import annotations

from pydantic import Field, IPvAnyNetwork, model_validator

from fastplug.config import PluginSettings


class ProfilingSettings(PluginSettings):
    """What the profiling plugin watches, and when it speaks.

    The loop's lag is measured by a timer every ``lag_interval`` seconds (how late it fires).
    When the loop is late by more than ``block_threshold_ms``, a watchdog thread has taken the
    loop thread's stack while it was still stuck; one warning names the route and the frames of
    the app's and plugins' code, at most once per route per ``log_interval`` seconds.
    """

    loop_lag: bool = Field(True, description="measure the event loop's lag and watch for blocking")
    lag_interval: float = Field(0.02, gt=0, le=1, description="seconds between two lag measurements")
    block_threshold_ms: float = Field(
        100, gt=0, description="the loop late by more than this (ms) is blocked: its stack is logged"
    )
    log_interval: float = Field(60, ge=0, description="seconds between two warnings about the same route")
    stack_limit: int = Field(8, ge=1, le=100, description="frames of app and plugin code shown in a warning")
    slow_request_ms: float = Field(1000, ge=0, description="requests slower than this (ms) are logged; 0: off")
    slow_sample_rate: float = Field(1.0, ge=0, le=1, description="the share of slow requests that are logged")
    on_demand: bool = Field(
        False, description="a request with ?_profile or the X-Profile header gets its own sampling profile"
    )
    profile_dir: str | None = Field(
        None, description="store on-demand profiles here (the response is then the route's own); unset: return them"
    )
    sample_interval: float = Field(0.001, gt=0, le=0.1, description="seconds between two samples of a profile")
    allow: list[IPvAnyNetwork] | None = Field(
        None,
        description="clients that may ask for a profile while the metrics plugin is off; unset: loopback "
        "(with the metrics plugin on, its operator rule, [metrics] allow and token, decides)",
    )

    @model_validator(mode="after")
    def _lag_finer_than_threshold(self) -> ProfilingSettings:
        if self.loop_lag and self.lag_interval * 1000 > self.block_threshold_ms / 2:
            raise ValueError(
                f"lag_interval ({self.lag_interval} s) must be at most half of block_threshold_ms "
                f"({self.block_threshold_ms} ms): a block is measured by how late the next tick is"
            )
        return self
