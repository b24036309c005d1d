"""HAProxy in front of the app hosts (Debian's haproxy), on loopback, driven through its
admin socket: health checks on ``/health/ready``, L7 retries of safe requests on another
host, and ``drain``/``ready`` for a rolling restart."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from chaos.instances import free_port

from fastplug.core.testing import require_tool
from fleet.services import wait

CONFIG = """\
global
    maxconn 4096
    stats socket {socket} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1
    # a safe request whose host died under it is sent to another host
    retry-on conn-failure empty-response response-timeout
    option forwardfor
frontend web
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    # /health/ready takes up to [health] timeout (2 s) while a non-critical check hangs (Redis
    # failing over): a shorter check timeout would take every host out at once
    timeout check 3s
    default-server inter 300ms fall 2 rise 2
{servers}
"""


class Balancer:
    """``servers``: (name, address:port); ``url`` is the frontend's."""

    def __init__(self, where: Path, servers: Sequence[tuple[str, str]]) -> None:
        self.binary = require_tool("haproxy")
        self.where = where
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = where / "haproxy.sock"
        lines = "\n".join(f"    server {name} {address} check" for name, address in servers)
        self.config = where / "haproxy.cfg"
        self.config.write_text(CONFIG.format(socket=self.socket, port=self.port, servers=lines))
        check = subprocess.run([self.binary, "-c", "-f", str(self.config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen(
            [self.binary, "-db", "-f", str(self.config)],
            stdout=open(where / "haproxy.log", "ab"),  # noqa: SIM115 - the process keeps it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait(lambda: self.socket.exists(), "haproxy's admin socket")

    def command(self, line: str) -> str:
        """One admin-socket command; its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> list[dict[str, str]]:
        """``show stat``: one dict per proxy or server, by the CSV header's field names."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]

    def _servers(self, field: str) -> dict[str, str]:
        return {
            row["svname"]: row[field]
            for row in self.stats()
            if row["pxname"] == "app" and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def states(self) -> dict[str, str]:
        """Each server's state as haproxy sees it (``UP``, ``DOWN``, ``DRAIN``, ``MAINT``...)."""
        return self._servers("status")

    def served(self) -> dict[str, int]:
        """Requests each server has been sent (cumulative)."""
        return {name: int(value or 0) for name, value in self._servers("stot").items()}

    def in_flight(self, server: str) -> int:
        """Requests the server has in progress now."""
        return int(self._servers("scur").get(server) or 0)

    def total(self) -> int:
        """HTTP requests the frontend has received (cumulative)."""
        row = next(r for r in self.stats() if r["pxname"] == "web" and r["svname"] == "FRONTEND")
        return int(row["req_tot"] or 0)

    def wait_up(self, *names: str, limit: float = 30.0) -> None:
        wait(lambda: all(self.states().get(n) == "UP" for n in names), f"haproxy to see {names} UP", limit)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
