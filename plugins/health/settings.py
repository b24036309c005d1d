"""``[health]`` settings."""

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator

from fastplug.config import PluginSettings
from fastplug.core import valid_token


class HealthSettings(PluginSettings):
    """Where the endpoints live, the readiness budget, which checks are critical, and who sees
    the details of ``/health/ready``."""

    prefix: str = Field("/health", pattern=r"^/\S*$")
    timeout: float = Field(
        0.8,
        gt=0,
        description="readiness budget, seconds: every check runs concurrently and is cut at it "
        "(under Kubernetes' default probe timeoutSeconds = 1)",
    )
    critical: dict[str, bool] = Field(
        default_factory=dict,
        description="override a check's criticality by its name on /health/ready, e.g. { cache = true, tasks = false }",
    )
    retry_after: int = Field(5, ge=0, description="Retry-After seconds on a 503 from /health/ready")
    include_in_schema: bool = False
    detail_allow: list[IPvAnyNetwork] | None = Field(
        None,
        description="client networks shown each check's error, detail and duration on /health/ready; "
        "with detail_token, as [metrics] allow with token. Neither set: who may scrape /metrics "
        "(metrics plugin enabled), else loopback",
    )
    detail_token: SecretStr | None = Field(None, description="a bearer token shown the details from anywhere")

    _token = field_validator("detail_token")(valid_token)
