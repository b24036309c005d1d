"""``[orders]`` settings."""

from pydantic import Field

from config.models import PluginSettings


class OrdersSettings(PluginSettings):
    """Order limits and the confirmation email's sender."""

    max_items: int = Field(100, ge=1, le=1000, description="most lines one order may have")
    email_from: str = Field("shop@example.com", min_length=3)
