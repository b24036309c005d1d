"""``[http]`` settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fastplug.config import PluginSettings


class TimeoutSettings(BaseModel):
    """httpx timeouts, seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect: float = Field(5.0, gt=0)
    read: float = Field(10.0, gt=0)
    write: float = Field(10.0, gt=0)
    pool: float = Field(5.0, gt=0, description="waiting for a free connection")


class HttpSettings(PluginSettings):
    """One shared ``httpx.AsyncClient`` per process: pooled keep-alive connections."""

    base_url: str = ""
    timeout: TimeoutSettings = Field(default_factory=TimeoutSettings)
    max_connections: int = Field(100, ge=1)
    max_keepalive_connections: int = Field(20, ge=0)
    keepalive_expiry: float = Field(5.0, ge=0)
    http2: bool = Field(False, description="needs the h2 package (pip install 'httpx[http2]')")
    retries: int = Field(1, ge=0, description="connection attempts retried on connect errors")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every request")
    follow_redirects: bool = False
    verify: bool = True
