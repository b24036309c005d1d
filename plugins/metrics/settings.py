"""``[metrics]`` settings."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from itertools import pairwise

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator

from fastplug.config import PluginSettings

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsSettings(PluginSettings):
    """The scrape endpoint, who may scrape it, histogram buckets and timing headers."""

    path: str = Field("/metrics", pattern=r"^/\S*$")
    include_in_schema: bool = False
    buckets: list[float] = Field(
        default_factory=lambda: list(DEFAULT_BUCKETS), description="http_request_duration_seconds buckets"
    )
    timing_header: bool = Field(False, description="add Server-Timing: app;dur=<ms> to every response")
    process_time_header: bool = Field(False, description="also add X-Process-Time: <seconds>")
    allow: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [IPv4Network("127.0.0.0/8"), IPv6Network("::1/128")],
        description="client networks that may scrape without a token (default: loopback only)",
    )
    token: SecretStr | None = Field(None, description="a bearer token that may scrape from anywhere")
    multiprocess_dir: str | None = Field(
        None,
        description="prometheus-client's directory for serve --workers > 1 "
        "(default: $PROMETHEUS_MULTIPROC_DIR or a new temporary directory); wiped at start",
    )

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not value or any(b <= 0 for b in value) or any(a >= b for a, b in pairwise(value)):
            raise ValueError("expected a non-empty list of positive, strictly increasing numbers of seconds")
        return value

    @field_validator("token")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("expected a token of at least 16 characters")
        return value
