"""``manage.py profile METHOD PATH [-n N]``: run a route N times in-process and show where the time went.

The app is built from the settings and its lifespan started (pools, clients, the cache), one
request is run unprofiled to warm what a first request warms, then N requests run one after
another under pyinstrument. The summary (statuses, mean and slowest time) and the profile's
call tree are printed; ``--html`` and ``--speedscope`` also write the profile to files.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import click

from fastplug.core import get_context


@click.command("profile")
@click.argument("method")
@click.argument("path")
@click.option("-n", "count", default=20, show_default=True, type=click.IntRange(1, 100_000), help="profiled requests")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="a request header (repeat)")
@click.option("-d", "--data", default=None, help="the request body (JSON unless a Content-Type header says)")
@click.option("--html", type=click.Path(dir_okay=False, path_type=Path), help="also write the profile as HTML")
@click.option("--speedscope", type=click.Path(dir_okay=False, path_type=Path), help="also write it as speedscope JSON")
def profile_command(
    method: str,
    path: str,
    count: int,
    headers: tuple[str, ...],
    data: str | None,
    html: Path | None,
    speedscope: Path | None,
) -> None:
    """Profile METHOD PATH (e.g. GET /users/1) run N times in-process, the lifespan up."""
    obj = get_context()
    settings, plugins = obj.load()
    parsed: list[tuple[bytes, bytes]] = []
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected 'Name: value', got {header!r}", param_hint="-H/--header")
        parsed.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
    if not path.startswith("/"):
        raise click.BadParameter(f"expected a path starting with /, got {path!r}", param_hint="PATH")
    body = data.encode() if data is not None else b""
    if body and not any(name == b"content-type" for name, _ in parsed):
        parsed.append((b"content-type", b"application/json"))
    try:
        profiler, statuses, times = asyncio.run(_run(settings, plugins, method.upper(), path, parsed, body, count))
    except Exception as exc:  # the app failed to build or start: say so in one line
        obj.fail(exc)
    spread = f"mean {statistics.fmean(times) * 1000:.2f} ms, slowest {max(times) * 1000:.2f} ms"
    codes = ", ".join(f"{code} x{n}" for code, n in sorted(statuses.items()))
    click.echo(f"{method.upper()} {path}: {count} requests ({codes}); {spread}")
    click.echo(profiler.output_text(unicode=True, color=sys.stdout.isatty()))
    if html is not None:
        html.write_text(profiler.output_html(), encoding="utf-8")
        click.echo(f"wrote {html}")
    if speedscope is not None:
        from pyinstrument.renderers import SpeedscopeRenderer

        speedscope.write_text(profiler.output(renderer=SpeedscopeRenderer()), encoding="utf-8")
        click.echo(f"wrote {speedscope}")


async def _run(
    settings: Any,
    plugins: Any,
    method: str,
    target: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    count: int,
) -> tuple[Any, dict[int, int], list[float]]:
    from pyinstrument import Profiler

    from fastplug.core import build_app

    app = build_app(settings, plugins)
    url = urlsplit(target)
    raw_path = quote(url.path, safe="/%!$&'()*+,;=:@-._~")  # as a client would send it: percent-encoded
    query = quote(url.query, safe="/%!$&'()*+,;=:@-._~?")
    if not any(name == b"host" for name, _ in headers):
        headers = [(b"host", b"localhost"), *headers]
    if body:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    statuses: dict[int, int] = {}
    times: list[float] = []
    async with app.router.lifespan_context(app) as state:
        base = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(raw_path),  # as uvicorn gives it: decoded
            "raw_path": raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("localhost", 80),
        }

        async def once() -> int:
            sent: list[int] = [0]
            done = [False]

            async def receive() -> dict[str, Any]:
                if done[0]:
                    await asyncio.sleep(3600)  # a disconnect only after the answer
                done[0] = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    sent[0] = message["status"]

            await app({**base, "state": dict(state or {})}, receive, send)
            return sent[0]

        await once()  # warm: first-request costs are not what a route costs
        profiler = Profiler(interval=0.0005, async_mode="enabled")
        profiler.start()
        try:
            for _ in range(count):
                began = perf_counter()
                status = await once()
                times.append(perf_counter() - began)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            profiler.stop()
    return profiler, statuses, times
