"""Run the app: uvicorn for one worker or --reload, gunicorn + uvicorn-worker otherwise."""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from fastplug.config.models import ServerSettings
from fastplug.config.settings import Settings
from fastplug.core.logmask import MaskSecrets, mask_log_handlers
from fastplug.core.manager import Plugins
from fastplug.core.protocol import HeadLimits, protocol_class

log = logging.getLogger("fastplug")
WORKER_CLASS = "fastplug.core.worker.FastplugWorker"
FILES_RESERVED = 128
"""Open files kept for everything but client connections (pools, logs, the listening socket)."""


def fit_connections(wanted: int) -> int:
    """``max_connections`` that fits the open file limit: the soft limit is raised toward the
    hard one if need be; what still does not fit is lowered, with a warning (a connection
    over the limit would fail its ``accept()`` instead of being answered)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FILES_RESERVED
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        fitted = max(1, soft - FILES_RESERVED)
        log.warning("server: the open file limit is %d, so max_connections is %d, not %d", soft, fitted, wanted)
        return fitted
    return wanted


def http_protocol(server: ServerSettings) -> type[Any] | str:
    """The HTTP protocol class with ``[server]``'s head limits and connection cap."""
    return protocol_class(HeadLimits.of(server, fit_connections(server.max_connections)), server.protocol_answers)


class HideStartupTraceback(logging.Filter):
    """Drop uvicorn's traceback of a plugin startup failure: core already logged the
    one-line reason (``plugin 'db' failed to start: ...``). Off with ``--traceback``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "PluginStartupError" not in record.getMessage()


def configure_logging(level: str, traceback: bool) -> None:
    """Log fastplug's own lines like uvicorn's, and hide startup tracebacks."""
    logger = logging.getLogger("fastplug")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(MaskSecrets(logging.Formatter("%(levelname)-9s %(message)s")))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if level in ("debug", "trace") else logging.INFO)
    logger.propagate = False
    if not traceback:
        for name in ("uvicorn.error", "gunicorn.error"):
            logging.getLogger(name).addFilter(HideStartupTraceback())


def _quiet_signals() -> None:
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, under the handler
    # that was installed before it started; a no-op handler here lets us exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def run_uvicorn(settings: Settings, plugins: Plugins, server: ServerSettings, reload: bool, traceback: bool) -> int:
    """Serve with one uvicorn process (uvloop and httptools when installed)."""
    import uvicorn

    configure_logging(server.log_level, traceback)
    common: dict[str, Any] = dict(
        host=server.host,
        port=server.port,
        loop="auto",
        http="auto" if reload else http_protocol(server),
        lifespan="on",
        timeout_keep_alive=server.keepalive,
        timeout_graceful_shutdown=server.graceful_timeout or None,
        backlog=server.backlog,
        access_log=server.access_log,
        log_level=server.log_level,
        # the app applies trusted proxies' headers itself (fastplug.core.forwarded), Host included
        proxy_headers=False,
        server_header=False,  # no "server: uvicorn"; the security plugin sets one if configured
    )
    if reload:
        os.environ["FASTPLUG_SETTINGS"] = str(settings.path)
        os.environ["FASTPLUG_ENV"] = settings.env
        root = Path(__file__).resolve().parent.parent
        uvicorn.run(
            "fastplug.core.asgi:create_app_from_env",
            factory=True,
            reload=True,
            reload_dirs=[str(root), str(settings.path.parent)],
            reload_includes=["*.toml"],
            **common,
        )
        return 0
    from fastplug.core.app import build_app
    from fastplug.core.asgi import freeze

    config = uvicorn.Config(freeze(build_app(settings, plugins)), **common)  # configures uvicorn's logging
    mask_log_handlers()
    srv = uvicorn.Server(config)
    _quiet_signals()
    srv.run()
    return 0 if srv.started else 1


def run_gunicorn(settings: Settings, plugins: Plugins, server: ServerSettings, traceback: bool) -> int:
    """Serve with gunicorn: ``server.workers`` uvicorn workers, each building its own app
    after the fork (no connection is shared with the parent)."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter
    from gunicorn.errors import HaltServer

    from fastplug.core.app import build_app

    build_app(settings, plugins)  # build errors are reported once, here, not by every worker
    os.environ["FASTPLUG_SETTINGS"] = str(settings.path)
    os.environ["FASTPLUG_ENV"] = settings.env
    from fastplug.core.worker import FastplugWorker

    configure_logging(server.log_level, traceback)
    FastplugWorker.CONFIG_KWARGS = {
        **FastplugWorker.CONFIG_KWARGS,
        "http": http_protocol(server),
        "proxy_headers": False,  # the app applies them (fastplug.core.forwarded)
        "server_header": False,
    }
    options = {
        "bind": f"{server.host}:{server.port}",
        "workers": server.workers,
        "worker_class": WORKER_CLASS,
        "timeout": server.timeout,
        "graceful_timeout": server.graceful_timeout,
        "keepalive": server.keepalive,
        "max_requests": server.max_requests,
        "max_requests_jitter": server.max_requests_jitter,
        "backlog": server.backlog,
        "loglevel": "debug" if server.log_level == "trace" else server.log_level,
        "accesslog": "-" if server.access_log else None,
        # uvicorn-worker always enables proxy headers: trusting no one turns them off (the app
        # applies trusted proxies' headers itself, fastplug.core.forwarded)
        "forwarded_allow_ips": "",
        "proc_name": "fastplug",
        "control_socket_disable": True,  # gunicorn >= 27: no control socket in $HOME
        "child_exit": lambda _arbiter, worker: plugins.call_each("worker_exited", settings=settings, pid=worker.pid),
    }

    class FastplugApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # settings this gunicorn version knows
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from fastplug.config.errors import FastplugError
            from fastplug.core.asgi import create_app_from_env

            try:
                return create_app_from_env()
            except FastplugError as exc:
                log.error("%s", exc)
                sys.exit(Arbiter.WORKER_BOOT_ERROR)

    try:
        FastplugApplication().run()
    except SystemExit as exc:
        return int(exc.code or 0)
    except HaltServer as exc:  # e.g. a worker failed to boot: its reason was logged above
        log.error("server stopped: %s", exc.reason)
        return int(exc.exit_status or 1)
    return 0
