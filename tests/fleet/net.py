"""Hosts on this machine for the fleet tests: network namespaces joined by one bridge.

The bridge lives in a namespace of its own (the switch); each host is a namespace with one
veth link to it and an address in a private /24. The test process itself (the root
namespace) gets one more link, so it reaches every host directly, and the balancer it starts
on loopback reaches them too. Nothing leaves these namespaces and loopback: the /24 has no
route anywhere else. ``close()`` kills what runs in each namespace and removes them all.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time

from fastplug.core.testing import require_tool


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` (iproute2)."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _free_prefix() -> str:
    """A 10.213.N.0/24 no route of this machine covers."""
    routes = ip("-4", "route", "show", "table", "all").stdout
    for _ in range(100):
        prefix = f"10.213.{random.randint(16, 250)}"
        if f"{prefix}." not in routes:
            return prefix
    raise RuntimeError("no free 10.213.N.0/24 for the fleet's hosts")


class Host:
    """One namespace: ``address`` on the fleet's /24; ``argv(...)`` runs a command in it."""

    def __init__(self, net: Network, name: str, number: int) -> None:
        self.net, self.name = net, name
        self.ns = f"{net.tag}-{name}"
        self.address = f"{net.prefix}.{number}"
        link, peer = f"{net.tag}-{number}", f"{net.tag}-{number}p"
        ip("netns", "add", self.ns)
        ip("link", "add", link, "type", "veth", "peer", "name", peer)
        ip("link", "set", link, "netns", self.ns)
        ip("link", "set", peer, "netns", net.switch)
        net.run_in(net.switch, "ip", "link", "set", peer, "master", "br0", "up")
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "addr", "add", f"{self.address}/24", "dev", link)
        self.run("ip", "link", "set", link, "up")

    def argv(self, *command: str) -> list[str]:
        """``command`` as run inside this host."""
        return ["ip", "netns", "exec", self.ns, *command]

    def run(self, *command: str) -> str:
        """Run ``command`` inside this host to its end; its output."""
        return self.net.run_in(self.ns, *command)

    def pids(self) -> list[int]:
        """The processes running in this host."""
        return [int(pid) for pid in ip("netns", "pids", self.ns, check=False).stdout.split()]

    def kill_all(self) -> None:
        """SIGKILL every process of this host."""
        pids = ip("netns", "pids", self.ns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        self.kill_all()
        time.sleep(0.05)
        ip("netns", "del", self.ns, check=False)


class Network:
    """The switch and the root namespace's link to it; ``host(name, number)`` adds a host."""

    def __init__(self) -> None:
        require_tool("ip")
        if os.geteuid() != 0:
            import pytest

            pytest.skip("the fleet's network namespaces need root (ip netns)")
        self.tag = f"fp{os.getpid() % 0xFFFF:04x}"
        self.prefix = _free_prefix()
        self.switch = f"{self.tag}-sw"
        self.gateway = f"{self.prefix}.254"  # the root namespace's address: the tests, the balancer, Prometheus
        self.hosts: list[Host] = []
        ip("netns", "add", self.switch)
        try:
            self.run_in(self.switch, "ip", "link", "add", "br0", "type", "bridge")
            self.run_in(self.switch, "ip", "link", "set", "br0", "up")
            ip("link", "add", f"{self.tag}-r", "type", "veth", "peer", "name", f"{self.tag}-rp")
            ip("link", "set", f"{self.tag}-rp", "netns", self.switch)
            self.run_in(self.switch, "ip", "link", "set", f"{self.tag}-rp", "master", "br0", "up")
            ip("addr", "add", f"{self.gateway}/24", "dev", f"{self.tag}-r")
            ip("link", "set", f"{self.tag}-r", "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def run_in(ns: str, *command: str) -> str:
        done = subprocess.run(["ip", "netns", "exec", ns, *command], capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} in {ns} failed: {done.stderr.strip()}")
        return done.stdout

    def host(self, name: str, number: int) -> Host:
        """A new host ``name`` at ``<prefix>.<number>``."""
        host = Host(self, name, number)
        self.hosts.append(host)
        return host

    def close(self) -> None:
        """Kill every host's processes; remove the hosts, the switch and the root's link."""
        for host in reversed(self.hosts):
            host.close()
        ip("link", "del", f"{self.tag}-r", check=False)
        ip("netns", "del", self.switch, check=False)
