"""``[redis]`` settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from fastplug.config import PluginSettings


class RetrySettings(BaseModel):
    """Retries of a command that failed on a connection or timeout error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int = Field(2, ge=0)
    backoff_base: float = Field(0.05, gt=0, description="seconds; doubles each retry")
    backoff_cap: float = Field(0.5, gt=0, description="longest wait between retries, seconds")


class SentinelSettings(BaseModel):
    """``[redis.sentinel]``: find the master through Redis Sentinel, and follow its failovers.

    The client asks the sentinels for ``master``'s address when it opens a connection; after a
    failover, a connection to the demoted master is dropped at its first ``READONLY`` answer and
    the command retried (``[redis.retry]``) on the new master. ``[redis] url`` still gives the
    master's password and database, with the master's name as its host:
    ``redis://:password@mymaster/0``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = Field(description="the name the sentinels monitor the master by")
    nodes: list[str] = Field(min_length=1, description='sentinels as "host:port" (port 26379 if left out)')
    password: SecretStr | None = Field(None, description="the sentinels' own password (requirepass), if any")
    socket_timeout: float = Field(0.5, gt=0, description="seconds a sentinel may take to answer")

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: list[str]) -> list[str]:
        for node in value:
            _, sep, port = node.rpartition(":")
            bare_ipv6 = node.count(":") > 1 and not node.startswith("[")
            if not node.strip() or " " in node or bare_ipv6 or (sep and not port.isdigit()):
                raise ValueError(f'expected sentinels like "10.0.0.5:26379" or "[::1]:26379", got "{node}"')
        return value

    def addresses(self) -> list[tuple[str, int]]:
        """The sentinels as ``(host, port)``."""
        out = []
        for node in self.nodes:
            host, sep, port = node.rpartition(":")
            if not sep:
                host, port = node, "26379"
            out.append((host.strip("[]"), int(port)))
        return out


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
    sentinel: SentinelSettings | None = Field(None, description="find the master through Redis Sentinel")

    @model_validator(mode="after")
    def _sentinel_url(self) -> RedisSettings:
        if self.sentinel is None:
            return self
        if self.url is None:
            raise ValueError(
                f'[redis.sentinel] needs [redis] url for the password and database: "redis://:password@{self.sentinel.master}/0"'
            )
        from redis.asyncio.connection import parse_url

        host = parse_url(self.url).get("host")
        if host != self.sentinel.master:
            raise ValueError(
                f"with [redis.sentinel], [redis] url's host is the master's name ({self.sentinel.master!r}), "
                f"not {host!r}: the sentinels give its address"
            )
        return self
