"""``X-DB-Queries``: the number of SQL statements a request ran (debugging, N+1 tests)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastplug.plugins.db.api import QUERIES


class QueryCountHeader:
    """Pure ASGI: counts the statements of each HTTP request and reports them in a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counter = scope["type"] == "http" and scope.get("state", {}).get(QUERIES)
        if not counter:
            await self.app(scope, receive, send)
            return
        cell = counter.start()

        async def send_with_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-db-queries", str(cell[0]).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_count)
