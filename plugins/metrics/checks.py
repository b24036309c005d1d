"""``manage.py check``: who could scrape ``/metrics`` without the operator meaning it.

* ``metrics.W001``: nobody can (``allow = []`` and no token).
* ``metrics.W002``: on the app's port with ``[server] proxy_headers``, the allowlist includes an
  address ``forwarded_allow_ips`` trusts (a request through the proxy without
  ``X-Forwarded-For`` scrapes as the proxy), or that is ``"*"`` (anyone can claim any address).
* ``metrics.W003``: on the app's port without ``proxy_headers``, while the app listens on a
  non-loopback host, the allowlist includes loopback: a reverse proxy on the same host makes
  every client loopback.
* ``metrics.W004``: no token and the allowlist has a network broader than an IPv4 /16 (IPv6 /48),
  loopback aside.

"The allowlist" is the effective one: ``allow``, or loopback when it is unset and no token is.
The metrics port (``[metrics] port``) never reads forwarding headers, so W002 and W003 concern
only the app's port.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from fastplug.config import ServerSettings
from fastplug.core import LOOPBACK, CheckMessage, CheckWarning
from fastplug.plugins.metrics.routes import access_rule
from fastplug.plugins.metrics.settings import MetricsSettings

Network = IPv4Network | IPv6Network
BROADEST = {4: 16, 6: 48}  # the shortest prefix an allowlist without a token may have, per IP version
FIX = "set [metrics] token and leave allow unset (the token is then required from everyone), or set [metrics] port"


def _trusted(forwarded_allow_ips: str) -> tuple[bool, list[Network]]:
    """Whether ``forwarded_allow_ips`` trusts everyone, and the networks it lists."""
    entries = [entry.strip() for entry in forwarded_allow_ips.split(",") if entry.strip()]
    networks = []
    for entry in entries:
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:  # "*", or a unix socket literal
            continue
    return "*" in entries, networks


def _overlapping(ours: tuple[Network, ...], theirs: Sequence[Network]) -> list[Network]:
    """Our networks that share an address with one of theirs."""
    return [n for n in ours if any(n.version == t.version and n.overlaps(t) for t in theirs)]  # type: ignore[arg-type]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_loopback_network(network: Network) -> bool:
    """Whether every address of ``network`` is this host (``127.0.0.0/8`` is not broad)."""
    return any(network.version == lo.version and network.subnet_of(lo) for lo in LOOPBACK)  # type: ignore[arg-type]


def _names(networks: list[Network]) -> str:
    return ", ".join(str(n) for n in networks)


def exposure(conf: MetricsSettings, server: ServerSettings) -> list[CheckMessage]:
    """The warnings for ``[metrics]`` beside ``[server]`` (``host``, ``proxy_headers``, ``forwarded_allow_ips``)."""
    messages: list[CheckMessage] = []
    networks = access_rule(conf).networks
    if not networks and conf.token is None:
        messages.append(
            CheckWarning(
                f"{conf.path} answers 403 to everyone: [metrics] allow is empty and no token is set",
                "metrics.W001",
                "allow the Prometheus server's network, or set [metrics] token in .secrets.toml",
            )
        )
    if conf.port is None and server.proxy_headers:
        anyone, trusted = _trusted(server.forwarded_allow_ips)
        if anyone and networks:
            messages.append(
                CheckWarning(
                    f'[server] forwarded_allow_ips = "*" with proxy_headers: any client can claim an address '
                    f"in [metrics] allow ({_names(list(networks))}) with X-Forwarded-For and scrape {conf.path}",
                    "metrics.W002",
                    FIX,
                )
            )
        elif proxied := _overlapping(networks, trusted):
            messages.append(
                CheckWarning(
                    f"[metrics] allow includes {_names(proxied)}, which [server] forwarded_allow_ips trusts as a "
                    f"reverse proxy: a request it forwards without X-Forwarded-For scrapes {conf.path}",
                    "metrics.W002",
                    FIX,
                )
            )
    host = server.host
    on_open_host = conf.port is None and not server.proxy_headers and not _is_loopback(host)
    if on_open_host and (loopback := _overlapping(networks, LOOPBACK)):
        messages.append(
            CheckWarning(
                f"[metrics] allow includes loopback ({_names(loopback)}) while the app listens on {host} "
                "without proxy_headers: behind a reverse proxy on this host every client connects from "
                f"loopback and scrapes {conf.path}",
                "metrics.W003",
                FIX,
            )
        )
    broad = [n for n in networks if n.prefixlen < BROADEST[n.version] and not _is_loopback_network(n)]
    if broad and conf.token is None:
        messages.append(
            CheckWarning(
                f"[metrics] allow includes {_names(broad)}, broader than an IPv4 /16 (IPv6 /48), and no token "
                f"is set: every host there can scrape {conf.path}",
                "metrics.W004",
                "allow only the Prometheus server's addresses, or set [metrics] token and leave allow unset",
            )
        )
    return messages
