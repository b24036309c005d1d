"""``[health]`` settings."""

from pydantic import Field

from fastplug.config import PluginSettings


class HealthSettings(PluginSettings):
    """Where the endpoints live, the readiness budget, and which checks are critical."""

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
