"""``[security]`` settings: allowed hosts, CORS, security headers, rate limits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fastplug.config import PluginSettings
from fastplug.plugins.security.limits import Rate

DEVELOPMENT_HOSTS = ("localhost", "*.localhost", "127.0.0.1", "[::1]", "testserver")
"""Loopback names only (``testserver`` is the host Starlette's ``TestClient`` sends)."""
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorsSettings(_Part):
    """``[security.cors]``: which other origins' pages may call this API from a browser.

    Origins are exact (``"https://app.example.com"``) or patterns with ``*`` for one or more
    subdomain labels (``"https://*.example.com"``) or for the port (``"http://localhost:*"``);
    ``"*"`` allows every origin (never with ``allow_credentials``). No origins: CORS is off
    and a preflight is answered 400.
    """

    allow_origins: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=lambda: list(SAFE_METHODS))
    allow_headers: list[str] = Field(default_factory=list, description='request headers allowed; ["*"]: any')
    allow_credentials: bool = False
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = Field(600, ge=0, description="seconds a browser may keep a preflight's answer")

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*":
                continue
            scheme, sep, rest = origin.partition("://")
            if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
                raise ValueError(
                    f'expected origins like "https://app.example.com" or "https://*.example.com", got "{origin}"'
                )
        return [origin.lower() for origin in value]

    @model_validator(mode="after")
    def _no_wildcard_credentials(self) -> CorsSettings:
        if "*" in self.allow_origins and self.allow_credentials:
            raise ValueError(
                'allow_origins = ["*"] with allow_credentials = true means every site could read your users\' '
                "authenticated answers: list your front ends' origins instead"
            )
        return self

    @field_validator("allow_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        return [method.upper() for method in value]

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        return [name.lower() for name in value]


class HeadersSettings(_Part):
    """``[security.headers]``: response headers set on every response (computed once).

    ``hsts_seconds`` 0 sends no HSTS; HSTS goes only on HTTPS responses (the scheme as seen
    through trusted proxies). An empty string turns a header off. ``server`` replaces the
    ``Server`` header (empty: none is sent). ``exclude_paths`` opts paths out (prefixes).
    """

    hsts_seconds: int = Field(0, ge=0)
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    content_type_nosniff: bool = True
    frame_options: Literal["DENY", "SAMEORIGIN", ""] = "DENY"
    referrer_policy: str = "same-origin"
    cross_origin_opener_policy: Literal["same-origin", "same-origin-allow-popups", "unsafe-none", ""] = "same-origin"
    content_security_policy: str = ""
    csp_report_only: bool = Field(False, description="send the CSP as Content-Security-Policy-Report-Only")
    server: str = Field("", description='the Server header\'s value ("": no Server header)')
    exclude_paths: list[str] = Field(default_factory=list, description="path prefixes that get none of these")

    @field_validator("exclude_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("/"):
                raise ValueError(f'expected paths starting with "/", got "{item}"')
        return value


class RateLimitSettings(_Part):
    """``[security.rate_limits]``: how fast one client may call a route (GCRA, burst = limit).

    ``routes`` maps ``"[METHOD ]<path pattern>"`` (``*`` matches any characters, ``/``
    included) to a rate like ``"100/minute"`` or ``"5/10s"``: the first matching entry wins and
    gives one bucket per client for every path it matches. Routes marked ``@rate_limit(...)``
    come next, one bucket per route; ``default`` (if set) covers the rest with one bucket per
    client. The client is its address (through trusted proxies), or the value of
    ``identity_header`` when sent, or what a plugin's ``rate_limit_identity`` gives.
    """

    enabled: bool = True
    backend: Literal["memory", "redis"] = Field(
        "memory", description='"memory": per process; "redis": shared by every worker and host (redis plugin)'
    )
    routes: dict[str, str] = Field(default_factory=dict)
    default: str = Field("", description='a rate for every other route, e.g. "1000/minute" ("": none)')
    identity_header: str = Field(
        "",
        description='e.g. "x-api-key": clients sending it are limited by its value; only for keys a proxy in '
        "front has verified (a client can send a new value each time)",
    )
    fail_open: bool = Field(True, description="Redis down: allow (true) or answer 503 (false)")
    key_prefix: str = "fastplug:rl:"
    op_timeout: float = Field(0.1, gt=0, description="seconds one Redis call may take")
    max_keys: int = Field(100_000, ge=100, description="memory backend: client buckets kept per process")
    exempt: list[str] = Field(default_factory=list, description="client networks never limited (monitoring)")
    ipv6_prefix: int = Field(
        64,
        ge=32,
        le=128,
        description="IPv6 clients share a bucket per network of this prefix: one host holds a whole /64",
    )

    @field_validator("routes", mode="before")
    @classmethod
    def _rules(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, rate in value.items():
            method, _, pattern = str(key).strip().rpartition(" ")
            if not pattern.startswith("/") or (method and method.upper() not in (*SAFE_METHODS, "*")):
                raise ValueError(f'expected keys like "GET /products/*" or "/orders*", got "{key}"')
            out[key] = str(Rate.parse(str(rate)))
        return out

    @field_validator("default")
    @classmethod
    def _default(cls, value: str) -> str:
        return str(Rate.parse(value)) if value.strip() else ""

    @field_validator("identity_header")
    @classmethod
    def _header(cls, value: str) -> str:
        return value.strip().lower()


class SecuritySettings(PluginSettings):
    """Allowed hosts (and an optional ``www`` redirect), CORS, security headers, rate limits.

    ``allowed_hosts``: exact names (``"api.example.com"``), ``"*.example.com"`` for any
    subdomain (not the bare domain), ``"*"`` for any host (``check`` refuses it in production).
    A request with any other ``Host`` is answered 400 before routing, caching or metrics.
    """

    allowed_hosts: list[str] = Field(default_factory=lambda: list(DEVELOPMENT_HOSTS))
    www_redirect: bool = Field(
        False, description="redirect (301) example.com to www.example.com when only the www name is allowed"
    )
    websocket_same_origin: bool = Field(
        True,
        description="refuse (403) a WebSocket handshake whose Origin is neither this host nor an allowed "
        "[security.cors] origin: a browser sends the user's cookies with it (cross-site WebSocket hijacking)",
    )
    cors: CorsSettings = Field(default_factory=CorsSettings)
    headers: HeadersSettings = Field(default_factory=HeadersSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        out = []
        for host in value:
            host = host.strip().lower().rstrip(".")
            if not host or "/" in host or " " in host or ("*" in host and host != "*" and not host.startswith("*.")):
                raise ValueError(f'expected host names like "api.example.com" or "*.example.com", got "{host}"')
            out.append(host)
        return out
