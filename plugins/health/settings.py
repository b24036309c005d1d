"""``[health]`` settings."""

from pydantic import Field

from fastplug.config import PluginSettings


class HealthSettings(PluginSettings):
    """Where the endpoints live and how long a readiness check may take."""

    prefix: str = Field("/health", pattern=r"^/\S*$")
    timeout: float = Field(2.0, gt=0, description="default per-check timeout, seconds")
    include_in_schema: bool = False
