"""compression plugin: gzip (brotli when installed and accepted) as pure-ASGI middleware.

Streams (a streaming body is compressed and flushed chunk by chunk, never buffered), and
leaves alone what must not be touched: ``text/event-stream``, ``206``/``Range``, bodies that
already have a ``Content-Encoding``, bodies under ``minimum_size``, media types outside
``content_types``, ``exclude_paths``. Adds ``Vary: Accept-Encoding``, weakens a strong
``ETag`` of a body it changes, honours ``q=0``. Priority 200: inside metrics/timing (100),
outside a cache (300), so a cache stores the unencoded bytes.

``gzip_level = 5`` (zlib) is the knee of size against CPU on a ~20 KB JSON body, and ISA-L's
level 2 (``isal_level``, used when the ``isal`` package is installed and ``gzip_engine`` is
``"auto"``) gives about zlib level 5's size for a fraction of its CPU: the figures are in
``benchmarks/README.md`` (``benchmarks/gzip_levels.py``). The bytes differ from zlib's; both
are standard gzip.
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
    options = conf.model_dump()
    options["gzip_engine"] = gzip_engine(conf.gzip_engine)
    return [MiddlewareSpec("compression", CompressionMiddleware, options, priority=200)]


def gzip_engine(wanted: str) -> str:
    """What makes gzip: ``wanted``, with ``"auto"`` resolved (isal when installed)."""
    from fastplug.plugins.compression.middleware import isal_available

    if wanted == "auto":
        return "isal" if isal_available() else "zlib"
    if wanted == "isal" and not isal_available():
        raise RuntimeError(
            "compression: gzip_engine = \"isal\" needs the isal package (pip install 'fastplug[isal]'), "
            'or set gzip_engine = "auto" to fall back to zlib'
        )
    return wanted
