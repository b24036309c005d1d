"""http plugin: one shared ``httpx.AsyncClient`` (pooled connections) per process.

Service ``http.client``; handlers use ``fastplug.plugins.http.api.HttpClient``; plugins use
``services[CLIENT]`` (same module).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.util import find_spec
from typing import Any

from fastplug.config import Settings
from fastplug.core import CheckError, CheckMessage, PluginInfo, hookimpl
from fastplug.plugins.http.api import CLIENT
from fastplug.plugins.http.settings import HttpSettings


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="http", settings=HttpSettings, description="a shared httpx.AsyncClient and its pool")


def create_client(conf: HttpSettings, version: str) -> Any:
    """The client: limits, timeouts, connect retries, base headers from ``[http]``."""
    import httpx

    transport = httpx.AsyncHTTPTransport(
        retries=conf.retries,
        http2=conf.http2,
        verify=conf.verify,
        limits=httpx.Limits(
            max_connections=conf.max_connections,
            max_keepalive_connections=conf.max_keepalive_connections,
            keepalive_expiry=conf.keepalive_expiry,
        ),
    )
    return httpx.AsyncClient(
        base_url=conf.base_url,
        headers={"user-agent": f"fastplug/{version}", **conf.headers},
        timeout=httpx.Timeout(
            connect=conf.timeout.connect, read=conf.timeout.read, write=conf.timeout.write, pool=conf.timeout.pool
        ),
        follow_redirects=conf.follow_redirects,
        transport=transport,
    )


@hookimpl
def lifespan(settings: Settings) -> Any:
    from fastplug.core import fastplug_version

    @asynccontextmanager
    async def run() -> AsyncIterator[dict[str, Any]]:
        client = create_client(settings.section("http", HttpSettings), fastplug_version())
        async with client:
            yield {CLIENT: client}

    return run()


@hookimpl
def register_exception_handlers() -> dict[type[BaseException], Any]:
    import httpx

    from fastplug.core import unavailable

    # an upstream that refuses or times out: 503, not a 500 traceback
    return {httpx.TransportError: unavailable}


@hookimpl
def check(settings: Settings) -> Sequence[CheckMessage]:
    if settings.section("http", HttpSettings).http2 and find_spec("h2") is None:
        return [CheckError("[http] http2 = true needs the h2 package", "http.E001", "pip install 'httpx[http2]'")]
    return []
