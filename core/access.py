"""Operator-only access: client networks, or a bearer token compared in constant time.

One small rule for what only the operator should see (the metrics exposition, the details
of ``/health/ready``), so that every plugin applies the same semantics: an explicit
allowlist admits its networks; left unset, it means loopback while there is no token, and
no network at all once a token is set (the token is then required from everyone: a reverse
proxy on the same host would otherwise make every client loopback).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from pydantic import SecretStr
from starlette.datastructures import Headers

Network = IPv4Network | IPv6Network
LOOPBACK: tuple[Network, ...] = (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))
MIN_TOKEN_LENGTH = 16


def valid_token(value: SecretStr | None) -> SecretStr | None:
    """A settings validator: a token, if any, of at least :data:`MIN_TOKEN_LENGTH` characters."""
    if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
        raise ValueError(f"expected a token of at least {MIN_TOKEN_LENGTH} characters")
    return value


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Clients from ``networks`` are admitted; any other with ``Authorization: Bearer <token>``.

    :meth:`decide` answers ``None`` (admitted), ``401`` (a token would admit it: answer
    with ``WWW-Authenticate: Bearer``) or ``403`` (no token is configured).
    """

    networks: tuple[Network, ...] = ()
    token: bytes | None = field(default=None, repr=False)

    @classmethod
    def build(cls, allow: Iterable[Network | str] | None, token: SecretStr | str | None = None) -> AccessRule:
        """The rule of an ``allow`` setting and a ``token`` setting. ``allow`` None (not set):
        loopback without a token, no network with one (the token is required from everyone)."""
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if allow is None:
            networks = () if secret else LOOPBACK
        else:
            networks = tuple(ip_network(n, strict=False) if isinstance(n, str) else n for n in allow)
        return cls(networks, secret.encode() if secret else None)

    def admits_address(self, host: str) -> bool:
        """Whether a client at ``host`` (an IP address; IPv4-mapped IPv6 counts as IPv4) is in ``networks``."""
        if not self.networks:
            return False
        try:
            address = ip_address(host)
        except ValueError:  # a unix socket path, or no address at all
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def decide(self, scope: Mapping[str, Any]) -> int | None:
        """None when the ASGI request ``scope`` is admitted, else the status to answer (401 or 403)."""
        client = scope.get("client")
        if client and self.admits_address(client[0]):
            return None
        if self.token is None:
            return 403
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("latin-1"), self.token):
            return None
        return 401

    def admits(self, scope: Mapping[str, Any]) -> bool:
        """Whether the ASGI request ``scope`` is admitted."""
        return self.decide(scope) is None


LOOPBACK_ONLY = AccessRule(LOOPBACK)
"""The rule when nothing was configured: loopback clients, no token."""
