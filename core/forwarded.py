"""Who the client is behind trusted reverse proxies: the one place that decides it.

With ``[server] proxy_headers = true``, a request from a peer that ``[server]
forwarded_allow_ips`` trusts has its ``X-Forwarded-For``, ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` applied to the ASGI scope (``client``, ``scheme``, the ``host`` header)
before any middleware or route sees it; from any other peer they change nothing. Everything
downstream (allowed hosts, rate-limit identity, the metrics allowlist, redirects, the cache key)
then reads the scope and agrees.

uvicorn's own :class:`~uvicorn.middleware.proxy_headers.ProxyHeadersMiddleware` does the first
two with the same trust rules; this subclass adds the host, and core runs it inside the app
(uvicorn's own is switched off) so that ``X-Forwarded-Host`` is judged by the same peer as the
others, which uvicorn's has already replaced by the time an app middleware runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from fastplug.core.specs import Answer

Scope = dict[str, Any]


class ForwardedMiddleware(ProxyHeadersMiddleware):
    """uvicorn's proxy-headers rules (its trusted-host matching, its choice of the client in
    ``X-Forwarded-For``) plus ``X-Forwarded-Host`` (the value the nearest trusted proxy
    appended, the last one), as pure ASGI. Only a request that carries such headers from a
    trusted peer gets a new scope; every other keeps its own."""

    def __init__(self, app: Any, trusted_hosts: list[str] | str = "127.0.0.1", host: bool = False) -> None:
        super().__init__(app, trusted_hosts)
        self.host = host  # [server] forwarded_host: X-Forwarded-Host is honoured only when asked
        self._inner_now: Callable[[Scope], Answer | None] | None = getattr(app, "answer_now", None)

    def trusts(self, peer: str | None) -> bool:
        """Whether ``peer`` (the connecting address) is a trusted proxy."""
        return peer in self.trusted_hosts

    def forwarded(self, scope: Scope, in_place: bool = False) -> Scope:
        """``scope`` as seen through trusted proxies: a changed copy (changed itself with
        ``in_place``, as uvicorn's middleware does, so its access log names the client), or
        ``scope`` itself when nothing applies."""
        client = scope.get("client")
        if not client or client[0] not in self.trusted_hosts:
            return scope
        proto = host = None
        chain: list[bytes] = []
        for name, value in scope["headers"]:
            if name[:12] == b"x-forwarded-":
                if name == b"x-forwarded-for":
                    chain.append(value)
                elif name == b"x-forwarded-proto":
                    proto = value
                elif name == b"x-forwarded-host" and self.host:
                    host = value
        if proto is None and host is None and not chain:
            return scope
        seen = scope if in_place else dict(scope)
        if proto is not None:
            scheme = proto.decode("latin-1").strip()
            if scheme in ("http", "https", "ws", "wss"):
                seen["scheme"] = scheme.replace("http", "ws") if scope["type"] == "websocket" else scheme
        if chain:
            address, port = self.trusted_hosts.get_trusted_client_address(b", ".join(chain).decode("latin-1"))
            if address:  # an empty X-Forwarded-For names nobody: keep the peer
                seen["client"] = (address, port)
        if host is not None and (last := host.rpartition(b",")[2].strip()):
            seen["headers"] = [(b"host", last), *((n, v) for n, v in seen["headers"] if n != b"host")]
        return seen

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:  # type: ignore[override]
        await self.app(scope if scope["type"] == "lifespan" else self.forwarded(scope, in_place=True), receive, send)

    def answer_now(self, scope: Scope) -> Answer | None:
        """The inner edge middleware's answer for the forwarded view of ``scope`` (a copy when
        it differs, so a request not answered here starts again from the original; the
        protocol's access-log line for an answer given here names the peer)."""
        inner = self._inner_now
        return None if inner is None else inner(self.forwarded(scope))
