"""compression plugin: gzip (brotli when installed and accepted) as pure-ASGI middleware.

Streams (a streaming body is compressed and flushed chunk by chunk, never buffered), and
leaves alone what must not be touched: ``text/event-stream``, ``206``/``Range``, bodies that
already have a ``Content-Encoding``, bodies under ``minimum_size``, media types outside
``content_types``, ``exclude_paths``. Adds ``Vary: Accept-Encoding``, weakens a strong
``ETag`` of a body it changes, honours ``q=0``. Priority 200: inside metrics/timing (100),
outside a cache (300), so a cache stores the unencoded bytes.

Why ``gzip_level = 5`` (``benchmarks/gzip_levels.py`` on the ~20 KB JSON body of
``benchmarks/``, one pinned core): level 9 (Starlette's default) takes 306 us per response
for 4,586 bytes; level 5 takes 196 us for 4,665 bytes (+1.7%); level 6 226 us (+1.0%),
level 4 166 us (+5.1%), level 1 112 us (+18.5%). Level 5 is the knee: below it the size
grows 3-7% per level, above it each level buys under 1% for ~15% more CPU. brotli
quality 4 (the ``brotli_quality`` default) gives 4,731 bytes in 145 us.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastplug.config import Settings
from fastplug.core import MiddlewareSpec, PluginInfo, hookimpl
from fastplug.plugins.compression.settings import CompressionSettings


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="compression",
        settings=CompressionSettings,
        description="gzip/brotli response compression (pure ASGI, streaming)",
    )


@hookimpl
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec]:
    from fastplug.plugins.compression.middleware import CompressionMiddleware

    conf = settings.section("compression", CompressionSettings)
    return [MiddlewareSpec("compression", CompressionMiddleware, conf.model_dump(), priority=200)]
