"""The gunicorn worker ``serve --workers N`` runs: uvicorn-worker's, with fastplug's protocol."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class FastplugWorker(UvicornWorker):  # type: ignore[misc]
    """A uvicorn worker whose HTTP protocol has ``[server]``'s head limits and connection cap
    (``serve`` sets ``CONFIG_KWARGS["http"]`` in the master; the workers inherit it on fork)."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = dict(UvicornWorker.CONFIG_KWARGS)
