"""The hook the security plugin adds for other plugins."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fastplug.core import hookspec

if TYPE_CHECKING:
    from fastplug.config import Settings

Identity = Callable[[Mapping[str, Any]], str | None]
"""Called with the ASGI scope of a rate-limited request; gives the client's identity (a user
id, an API key's id) or None to leave it to the next one (in the end: the client address)."""


@hookspec
def rate_limit_identity(settings: Settings) -> Identity | None:
    """Return a function naming the client of a request for rate limits. Fires once while the
    app is built; the function runs per limited request, so keep it cheap (read the scope,
    no I/O). Implement it with ``@hookimpl(optionalhook=True)``."""
