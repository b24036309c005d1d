"""``[metrics]`` settings."""

from __future__ import annotations

from itertools import pairwise

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator

from fastplug.config import PluginSettings
from fastplug.core import valid_token

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsSettings(PluginSettings):
    """The scrape endpoint (and its own port), who may scrape it, histogram buckets and timing headers."""

    path: str = Field("/metrics", pattern=r"^/\S*$")
    include_in_schema: bool = False
    buckets: list[float] = Field(
        default_factory=lambda: list(DEFAULT_BUCKETS), description="http_request_duration_seconds buckets"
    )
    timing_header: bool = Field(False, description="add Server-Timing: app;dur=<ms> to every response")
    process_time_header: bool = Field(False, description="also add X-Process-Time: <seconds>")
    allow: list[IPvAnyNetwork] | None = Field(
        None,
        description="client networks that may scrape without the token; unset: loopback when no token "
        "is set, nobody when one is (the token is then required from every client, loopback included)",
    )
    token: SecretStr | None = Field(None, description="a bearer token that may scrape from anywhere")
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="serve the scrape path only on this port (the app's port then answers 404 for it); "
        "unset: on the app's port",
    )
    host: str = Field("127.0.0.1", min_length=1, description="the address the metrics port listens on")
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

    _token = field_validator("token")(valid_token)
