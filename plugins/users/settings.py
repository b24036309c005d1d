"""``[users]`` settings."""

from pydantic import Field

from fastplug.config import PluginSettings


class UsersSettings(PluginSettings):
    """Page sizes of ``GET /users``."""

    page_size: int = Field(50, ge=1, le=1000, description="default limit")
    max_page_size: int = Field(200, ge=1, le=10_000, description="largest limit a client may ask")
