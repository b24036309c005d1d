"""``[compression]`` settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fastplug.config import PluginSettings

DEFAULT_CONTENT_TYPES = (
    "application/json",
    "application/problem+json",
    "application/ld+json",
    "application/geo+json",
    "application/x-ndjson",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "image/svg+xml",
    "text/*",
)


class CompressionSettings(PluginSettings):
    """What gets compressed, and how hard.

    gzip is made with ISA-L (the ``isal`` package, ``pip install 'fastplug[isal]'``) when it
    is installed and ``gzip_engine`` is ``"auto"``, else with the standard library's zlib:
    about zlib level 5's size for a fraction of its CPU. ``gzip_level`` (zlib, 1-9) 5 was
    chosen by measurement (``benchmarks/gzip_levels.py``). ``text/event-stream`` is never
    compressed, whatever ``content_types`` says.
    """

    minimum_size: int = Field(1000, ge=0, description="bodies smaller than this (bytes) are sent as they are")
    gzip_level: int = Field(5, ge=1, le=9, description="zlib's level, when gzip is made with zlib")
    gzip_engine: Literal["auto", "zlib", "isal"] = Field(
        "auto", description='"auto": ISA-L when the isal package is installed, else zlib'
    )
    isal_level: int = Field(2, ge=0, le=3, description="ISA-L's level, when gzip is made with ISA-L")
    brotli: bool = Field(True, description="use br when the brotli package is installed and the client accepts it")
    brotli_quality: int = Field(4, ge=0, le=11)
    content_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONTENT_TYPES),
        description='media types to compress; "type/*" matches a whole type',
    )
    exclude_paths: list[str] = Field(default_factory=list, description="path prefixes never compressed")

    @field_validator("content_types")
    @classmethod
    def _media_types(cls, value: list[str]) -> list[str]:
        out = [item.strip().lower() for item in value]
        for item in out:
            kind, sep, sub = item.partition("/")
            if not (kind and sep and sub) or (kind == "*"):
                raise ValueError(f'expected media types like "application/json" or "text/*", got "{item}"')
        return out

    @field_validator("exclude_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("/"):
                raise ValueError(f'expected paths starting with "/", got "{item}"')
        return value
