"""The hook the metrics plugin adds for other plugins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fastplug.core import hookspec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from fastplug.core import Runtime

RequestEnd = Callable[[str, str, int], None]
"""Called as ``end(method, route, status)`` when the request it began for is answered."""

RequestBegin = Callable[[], RequestEnd | None]
"""Called when an HTTP request enters (in its task); returns its ``end`` or None."""


@hookspec
def register_metrics(registry: CollectorRegistry, runtime: Runtime) -> Sequence[RequestBegin] | None:
    """Add your collectors to ``registry``; return per-request callbacks, if any.

    Fires once, when the app is built, before it serves. Collectors (objects with
    ``collect()``) run at scrape time and should read ``runtime.services`` then (pools and
    clients exist only once the lifespan started). Metrics (``Counter(..., registry=registry)``)
    also work across ``serve --workers N``, summed over the workers; a collector reports the
    worker that answers the scrape. Implement it with ``@hookimpl(optionalhook=True)``.
    """
