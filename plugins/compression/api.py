"""The compression plugin's public API: which codings it sends, for plugins that key by them.

A cache in front of compression keys each entry by the coding this plugin will pick for the
request (``fastplug.core.encoding.negotiate`` over :func:`offered_codings`), so the entry
for one ``Accept-Encoding`` preference always holds that coding's bytes.
"""

from __future__ import annotations

from fastplug.config import Settings

NAME = "compression"


def codings_for(brotli: bool) -> tuple[str, ...]:
    """The codings on offer, server preference first: br (when wanted and installed), gzip."""
    from fastplug.plugins.compression.middleware import BR, GZIP, brotli_available

    return (BR, GZIP) if brotli and brotli_available() else (GZIP,)


def offered_codings(settings: Settings) -> tuple[str, ...]:
    """The codings the compression plugin sends with these settings; empty when it is off."""
    if NAME not in settings.sections:
        return ()
    from fastplug.plugins.compression.settings import CompressionSettings

    return codings_for(settings.section(NAME, CompressionSettings).brotli)
