"""Settings models: the base class plugins extend, and core's own sections."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class PluginSettings(BaseSettings):
    """Base for a plugin's settings section (``[<plugin name>]`` in settings.toml).

    Values come only from what core passes in (dynaconf already layered the file,
    ``.secrets.toml`` and ``FASTPLUG_<SECTION>__<KEY>`` variables), so pydantic-settings
    does not read the environment a second time. Unknown keys are errors; use
    ``SecretStr`` for secrets so they are masked everywhere.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        coerce_numbers_to_str=True,  # FASTPLUG_X__PASSWORD=1234 is TOML-parsed to a number
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class EmptySettings(PluginSettings):
    """Settings of a plugin that has none; any key in its section is an error."""


class ServerSettings(PluginSettings):
    """``[server]``: how ``manage.py serve`` runs (uvicorn, or gunicorn for workers > 1)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    timeout: int = Field(30, ge=0, description="gunicorn: seconds before a silent worker is restarted")
    graceful_timeout: int = Field(30, ge=0, description="seconds in-flight requests get on shutdown")
    keepalive: int = Field(5, ge=0, description="seconds an idle keep-alive connection stays open")
    max_requests: int = Field(0, ge=0, description="gunicorn: restart a worker after this many requests (0: never)")
    max_requests_jitter: int = Field(0, ge=0)
    backlog: int = Field(2048, ge=1)
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    forwarded_host: bool = Field(
        False,
        description="with proxy_headers, also take the host from a trusted proxy's X-Forwarded-Host (only if "
        "that proxy sets or strips it: nginx passes a client's own by default)",
    )
    access_log: bool = False
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    max_body_size: int = Field(
        4 * 1024 * 1024,
        ge=0,
        description="bytes a request body may have: 413 beyond, before it is read (a declared Content-Length) "
        "or as soon as it is passed (chunked); a route allows more with max_body_size=...; 0: no limit",
    )
    limit_request_line: int = Field(4094, ge=256, description="bytes the request target may have: 414 beyond")
    limit_request_fields: int = Field(100, ge=1, description="header fields a request may have: 431 beyond")
    limit_request_field_size: int = Field(
        8190, ge=256, description="bytes one header field (name and value) may have: 431 beyond"
    )
    header_timeout: float = Field(
        10.0,
        ge=0,
        description="seconds a client has to send a request's line and headers, from its first byte or from "
        "connecting: 408 and closed beyond; 0: no limit",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open connections per worker: beyond, idle ones are closed (oldest first), else 503; "
        "lowered to fit the open file limit",
    )
    protocol_answers: bool = Field(
        True,
        description="answer what the edge middleware can answer at once (a fresh memory-cache hit) in the HTTP "
        "protocol, without an ASGI task: the same bytes, metrics and access log",
    )


class LifespanSettings(PluginSettings):
    """``[lifespan]``: how long each plugin may take to start and to stop."""

    startup_timeout: float = Field(30.0, gt=0)
    shutdown_timeout: float = Field(30.0, gt=0)
    timeouts: dict[str, float] = Field(
        default_factory=dict, description="per-plugin startup timeout overrides, by plugin name"
    )


class MiddlewareSettings(PluginSettings):
    """``[middleware]``: ``order`` lists middleware names outermost first, overriding priorities."""

    order: list[str] = Field(default_factory=list)


class CoreSettings(BaseModel):
    """The top-level keys core owns; every other table belongs to a plugin."""

    model_config = ConfigDict(extra="allow", frozen=True)
    SECTIONS: ClassVar[dict[str, type[PluginSettings]]] = {
        "server": ServerSettings,
        "lifespan": LifespanSettings,
        "middleware": MiddlewareSettings,
    }

    plugins: list[str] = Field(default_factory=list)
    debug: bool = False
    title: str = "fastplug"
    docs: bool = Field(True, description="serve /docs, /redoc and /openapi.json (off in production)")
    server: ServerSettings = Field(default_factory=ServerSettings)
    lifespan: LifespanSettings = Field(default_factory=LifespanSettings)
    middleware: MiddlewareSettings = Field(default_factory=MiddlewareSettings)

    @property
    def extra_sections(self) -> dict[str, Any]:
        """Tables that are not core's (plugin sections, or typos)."""
        return dict(self.__pydantic_extra__ or {})
