"""``[redis]`` settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fastplug.config import PluginSettings


class RetrySettings(BaseModel):
    """Retries of a command that failed on a connection or timeout error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int = Field(2, ge=0)
    backoff_base: float = Field(0.05, gt=0, description="seconds; doubles each retry")
    backoff_cap: float = Field(0.5, gt=0, description="longest wait between retries, seconds")


class RedisSettings(PluginSettings):
    """One shared ``redis.asyncio`` client on a blocking pool. Without ``url`` (the embedded
    default) no Redis is used: plugins that can (cache, tasks) fall back to memory."""

    url: str | None = Field(None, description="redis://[:password@]host:port/db; unset: no Redis")
    max_connections: int = Field(50, ge=1)
    pool_timeout: float = Field(1.0, gt=0, description="seconds to wait for a free connection")
    socket_timeout: float = Field(2.0, gt=0, description="seconds a command may take")
    socket_connect_timeout: float = Field(1.0, gt=0)
    health_check_interval: int = Field(30, ge=0, description="ping idle connections older than this, seconds")
    retry: RetrySettings = Field(default_factory=RetrySettings)
    client_name: str = "fastplug"
