"""``manage.py check`` for ``[security]``.

* ``security.E001``: outside development, ``allowed_hosts`` is empty or ``["*"]``.
* ``security.E003``: rate limits on Redis without the redis plugin and a ``[redis] url``.
* ``security.W001``: outside development, no HSTS (``[security.headers] hsts_seconds``).
* ``security.W002``: HSTS ``preload`` without a year's max-age and ``includeSubDomains``.
* ``security.W003``: rate limits in memory with ``[server] workers`` > 1: each worker counts alone.
"""

from __future__ import annotations

from fastplug.config import Settings
from fastplug.core import CheckError, CheckMessage, CheckWarning
from fastplug.plugins.security.settings import SecuritySettings

YEAR = 31_536_000


def security_checks(conf: SecuritySettings, settings: Settings) -> list[CheckMessage]:
    out: list[CheckMessage] = []
    deployed = settings.env != "development"
    if deployed and (not conf.allowed_hosts or "*" in conf.allowed_hosts):
        out.append(
            CheckError(
                f"[security] allowed_hosts is {conf.allowed_hosts!r} in {settings.env}: any Host is answered, and "
                "reflected in redirects and absolute URLs",
                "security.E001",
                'list the names this app is served as: allowed_hosts = ["api.example.com"]',
                "security",
            )
        )
    limits = conf.rate_limits
    if limits.enabled and limits.backend == "redis" and ("redis" not in settings.plugins or not _redis_url(settings)):
        out.append(
            CheckError(
                '[security.rate_limits] backend = "redis" needs the redis plugin enabled with [redis] url set',
                "security.E003",
                'enable "redis" in plugins and set [redis] url, or use backend = "memory"',
                "security.rate_limits",
            )
        )
    if deployed and not conf.headers.hsts_seconds:
        out.append(
            CheckWarning(
                f"[security.headers] hsts_seconds is 0 in {settings.env}: browsers may reach this app over plain HTTP",
                "security.W001",
                "once it is served over HTTPS only, set hsts_seconds = 31536000",
                "security.headers",
            )
        )
    headers = conf.headers
    if headers.hsts_preload and (headers.hsts_seconds < YEAR or not headers.hsts_include_subdomains):
        out.append(
            CheckWarning(
                "[security.headers] hsts_preload needs hsts_seconds >= 31536000 and hsts_include_subdomains",
                "security.W002",
                "browsers' preload lists refuse anything less",
                "security.headers",
            )
        )
    if limits.enabled and limits.backend == "memory" and settings.core.server.workers > 1:
        out.append(
            CheckWarning(
                f'[security.rate_limits] backend = "memory" with {settings.core.server.workers} workers: each '
                "worker keeps its own buckets, so a client gets up to that many times the rate",
                "security.W003",
                'use backend = "redis" to share them',
                "security.rate_limits",
            )
        )
    return out


def _redis_url(settings: Settings) -> str | None:
    try:
        return getattr(settings.section("redis"), "url", None)
    except Exception:  # the redis plugin's settings are invalid: its own check says so
        return None
