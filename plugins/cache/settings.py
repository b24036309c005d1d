"""``[cache]`` settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fastplug.config import PluginSettings


class RoutePolicySettings(BaseModel):
    """``[cache.routes] "<route name or path template>" = { ttl = 60, tags = [...] }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float | None = Field(None, gt=0)
    tags: list[str] = Field(default_factory=list)
    stale_while_revalidate: float | None = Field(None, ge=0)
    cache_control: str | None = None


MIN_MEMO = 10_000
"""The smallest memo: a Redis cache holds more keys than ``max_entries`` (a memory setting)."""


class CacheSettings(PluginSettings):
    """Response caching of GET routes marked ``@cached`` or listed in ``[cache.routes]``."""

    backend: Literal["memory", "redis"] = "memory"
    default_ttl: float = Field(60.0, gt=0, description="seconds an entry is fresh")
    key_prefix: str = Field("fastplug:cache", min_length=1)
    key_version: str = Field(
        "2", description="change it to drop every entry at once (2: entries stored in the split-line format)"
    )
    max_entries: int = Field(10_000, ge=1, description="memory backend")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="memory backend: bodies, headers and tag indexes")
    max_keys_per_route: int = Field(
        1000, ge=0, description="entries one route may have (the oldest go first), on every backend; 0: no cap"
    )
    max_entry_bytes: int = Field(1024 * 1024, ge=1, description="larger responses are not stored")
    memo_entries: int = Field(
        0,
        ge=0,
        description="requests whose key, and paths whose route, are remembered (0: max_entries, at least 10,000)",
    )

    stale_while_revalidate: float = Field(0.0, ge=0, description="seconds a stale entry may be served while refreshed")
    lock_timeout: float = Field(5.0, gt=0, description="how long concurrent misses wait for the first one")
    fail_open: bool = Field(True, description="backend errors bypass the cache instead of failing the request")
    op_timeout: float = Field(0.1, gt=0, description="seconds one Redis operation may take")
    breaker_failures: int = Field(3, ge=1, description="consecutive Redis errors that open the circuit")
    breaker_cooldown: float = Field(5.0, gt=0, description="seconds the circuit stays open before one retry")
    invalidation_retry: float = Field(
        0.5, gt=0, description="seconds between retries of failed invalidations (at most breaker_cooldown / 4)"
    )
    vary_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Cookie", "Accept-Encoding"],
        description="request headers that are part of the key (Accept-Encoding by negotiated coding)",
    )
    authenticated: Literal["bypass", "key"] = Field(
        "bypass", description="requests with Authorization/Cookie: not cached, or cached per credential"
    )
    client_no_cache_bypasses: bool = Field(False, description="honour a client's Cache-Control: no-cache")
    cache_control: str = Field("public, max-age={ttl}", description="sent on cached responses ({ttl} filled in)")
    routes: dict[str, RoutePolicySettings] = Field(default_factory=dict)

    @property
    def memo_size(self) -> int:
        """How many keys (and route matches) are remembered: as many as the cache holds."""
        return self.memo_entries or max(self.max_entries, MIN_MEMO)

    @property
    def retry_interval(self) -> float:
        """How often failed invalidations are retried: well within the cooldown after which
        other processes read Redis again."""
        return min(self.invalidation_retry, self.breaker_cooldown / 4)
