"""Database errors as answers: unavailable is 503 + Retry-After, anything else a JSON 500.

One classification, :func:`unavailable`, for every path: SQLAlchemy (the driver's error
wrapped: ``exc.orig``, its ``sqlstate``, the ``__cause__`` chain), the raw asyncpg pool,
``ReadQuery``, and other plugins (the tasks plugin at shutdown). By SQLSTATE, SQLite result
code and exception class (never the message's words, but for asyncpg's few code-less
``InterfaceError``s), each cause gets a short reason for the 503's body (``database
unavailable: authentication failed``) that names no user, password, host or port. It runs on
error paths only; the hot path pays nothing (exception handlers, and ``try``/``with`` blocks,
are free until they catch).
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn

from sqlalchemy import exc as sa_exc
from starlette.requests import Request
from starlette.responses import JSONResponse

from fastplug.core import one_line

log = logging.getLogger("fastplug.db")

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]

DOWN = "database unavailable"
BUSY = "database busy: no connection available"

# SQLSTATEs meaning "try again later" (besides class 08, connection exception), each with the
# reason the 503 gives: short, and never the user, host or port (the log has the cause)
AUTH_FAILED = f"{DOWN}: authentication failed"
UNAVAILABLE_SQLSTATES = {
    "28000": AUTH_FAILED,  # invalid_authorization_specification: no such role, NOLOGIN, pg_hba refuses
    "28P01": AUTH_FAILED,  # invalid_password: the app cannot get in (a configuration fault, not the request's)
    "3D000": f"{DOWN}: unknown database",  # invalid_catalog_name: the database does not exist (yet)
    "57P01": f"{DOWN}: shutting down",  # admin_shutdown: the server is stopping (fast shutdown)
    "57P02": f"{DOWN}: restarting after a crash",  # crash_shutdown: another backend crashed, all are reset
    "57P03": f"{DOWN}: starting up or shutting down",  # cannot_connect_now: also in recovery
    "57P05": f"{DOWN}: connection closed by the server",  # idle_session_timeout
    "53000": f"{DOWN}: out of resources",  # insufficient_resources
    "53100": f"{DOWN}: disk full",
    "53200": f"{DOWN}: out of memory",
    "53300": f"{DOWN}: too many connections",  # too_many_connections: max_connections reached
}
CONNECTION_LOST = f"{DOWN}: connection failed"
# SQLite primary result codes meaning the same: busy, locked, no memory, I/O error, full, cannot open
UNAVAILABLE_SQLITE = {
    5: f"{DOWN}: locked",
    6: f"{DOWN}: locked",
    7: f"{DOWN}: out of memory",
    10: f"{DOWN}: I/O error",
    13: f"{DOWN}: disk full",
    14: f"{DOWN}: cannot open the database file",
}
# asyncpg InterfaceError messages of a connection or pool that is gone (others are misuse: a bug)
CLOSED = ("connection is closed", "pool is closing", "pool is closed")
# asyncpg's protocol after the server's FATAL (a shutdown) and before it sees the socket close
STUCK = "cannot switch to state"
DRIVERS = ("asyncpg", "sqlalchemy", "aiosqlite")


class DatabaseUnavailable(ConnectionError):  # noqa: N818 - reads as the condition it is
    """The database cannot answer now (down, starting or stopping, out of connections, the
    connection lost, no connection within ``pool_timeout``): 503 + Retry-After. ``reason``
    is the cause on one line, ``detail`` the response's."""

    def __init__(self, reason: str, detail: str = DOWN) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps: a ``DBAPIError``'s ``orig``, else each ``__cause__``."""
    current: BaseException | None = exc
    for _ in range(8):  # bounded: a cycle or a pathological chain stops here
        if current is None:
            return
        yield current
        orig = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = orig if isinstance(orig, BaseException) and orig is not current else current.__cause__


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def _os_detail(exc: OSError) -> str:
    """The 503 detail of a connection that failed at the socket: what failed, not where."""
    if isinstance(exc, ConnectionRefusedError):
        return f"{DOWN}: connection refused"
    if isinstance(exc, socket.gaierror):
        return f"{DOWN}: host not found"
    if isinstance(exc, ssl.SSLError):
        return f"{DOWN}: TLS failed"
    if isinstance(exc, TimeoutError):
        return f"{DOWN}: connection timed out"
    return CONNECTION_LOST


def _detail(exc: BaseException) -> str | None:
    """The 503 detail when this one exception (not its causes) means unavailable, else ``None``."""
    if isinstance(exc, DatabaseUnavailable):
        return exc.detail
    if isinstance(exc, sa_exc.TimeoutError):  # the engine's pool (or the gate) had no connection in time
        return BUSY
    code = _sqlstate(exc)
    if code is not None:
        return CONNECTION_LOST if code.startswith("08") else UNAVAILABLE_SQLSTATES.get(code)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return CONNECTION_LOST
    if isinstance(exc, OSError):  # refused, reset, unreachable, DNS, TLS, a connect or acquire timeout
        return _os_detail(exc)
    sqlite = getattr(exc, "sqlite_errorcode", None)
    if isinstance(sqlite, int):
        return UNAVAILABLE_SQLITE.get(sqlite & 0xFF)
    if type(exc).__module__.startswith("asyncpg"):
        name = type(exc).__name__
        if name == "InterfaceError":
            return CONNECTION_LOST if any(text in str(exc) for text in CLOSED) else None
        if name == "InternalClientError" and str(exc).startswith(STUCK):
            return CONNECTION_LOST
    return None


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """``exc`` as a :class:`DatabaseUnavailable` when it means the database cannot answer
    now, else ``None`` (a bug, a constraint violation...: a real error)."""
    chain = list(_chain(exc))
    found: str | None = None  # the first detail, unless a cause further down says more
    for link in chain:
        if isinstance(link, DatabaseUnavailable):
            return link
        detail = _detail(link)
        if detail is not None and found in (None, CONNECTION_LOST):
            found = detail
    if found is not None:
        return DatabaseUnavailable(one_line(chain[-1]), found)
    coded = any(_sqlstate(link) or hasattr(link, "sqlite_errorcode") for link in chain)
    if isinstance(exc, sa_exc.OperationalError) and not coded:  # a driver that says no more
        return DatabaseUnavailable(one_line(chain[-1]))
    return None


def raised_by_driver(exc: BaseException) -> bool:
    """True when ``exc`` passed through the database driver (asyncpg, SQLAlchemy, aiosqlite)."""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if name.startswith(DRIVERS):
            return True
        tb = tb.tb_next
    return False


def driver_os_error(exc: OSError) -> DatabaseUnavailable | None:
    """A bare ``OSError``/``TimeoutError`` the driver raised (connect refused, DNS, TLS, a
    timeout) as a :class:`DatabaseUnavailable`; ``None`` for one raised elsewhere (another
    service a handler called) or one converted already. No handler can tell these apart by
    type."""
    if isinstance(exc, DatabaseUnavailable) or not raised_by_driver(exc):
        return None
    return DatabaseUnavailable(one_line(exc), _os_detail(exc))


def reraise_os_error(exc: OSError) -> NoReturn:
    """In an ``except OSError as exc:`` block around database calls: raise it as
    :class:`DatabaseUnavailable` (503, chained to it) when the driver raised it, else as it
    is. The ``try`` costs nothing until something raises (a ``with`` would, per request)."""
    down = driver_os_error(exc)
    if down is None:
        raise exc
    raise down from exc


def describe_error(exc: BaseException) -> str:
    """``database unavailable (cause)`` or the error on one line, for a log message."""
    down = unavailable(exc)
    return f"{DOWN} ({down.reason})" if down is not None else one_line(exc)


def _handler(retry_after: int) -> Handler:
    headers = {"Retry-After": str(retry_after)}

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        down = unavailable(exc)
        if down is not None:
            log.warning("db unavailable on %s %s: %s", request.method, request.url.path, down.reason)
            return JSONResponse({"detail": down.detail}, status_code=503, headers=headers)
        log.error("database error on %s %s: %s", request.method, request.url.path, one_line(exc), exc_info=exc)
        return JSONResponse({"detail": "database error"}, status_code=500)

    return handle


def exception_handlers(retry_after: int) -> dict[type[BaseException], Any]:
    """Every database error the app can see: 503 + ``Retry-After: retry_after`` when the
    database is unavailable, else a JSON 500 (never a traceback page, never a dropped
    connection). Bare ``OSError``s of the driver are converted where the db plugin's code
    sees them (dependencies, raw pool, reads): see :func:`driver_os_error`."""
    handle = _handler(retry_after)
    handlers: dict[type[BaseException], Any] = {DatabaseUnavailable: handle, sa_exc.SQLAlchemyError: handle}
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return handlers
    for error in (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError):
        handlers[error] = handle
    return handlers
