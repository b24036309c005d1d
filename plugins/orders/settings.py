"""``[orders]`` settings."""

from pydantic import Field

from fastplug.config import PluginSettings


class OrdersSettings(PluginSettings):
    """Order limits, page sizes of ``GET /users/{user_id}/orders`` and the email's sender."""

    max_items: int = Field(100, ge=1, le=1000, description="most lines one order may have")
    page_size: int = Field(50, ge=1, le=1000, description="default limit of a user's orders page")
    max_page_size: int = Field(200, ge=1, le=10_000, description="largest limit a client may ask")
    email_from: str = Field("shop@example.com", min_length=3)
