"""The services host's servers, started privately for the fleet tests and reached over the
fleet's network: a PostgreSQL primary and its streaming standby, a Redis master, its replica
and three sentinels. Nothing is kept on disk beyond the test's temp dirs."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis as redis_sync
from chaos.instances import PrivateRabbit, _as, _postgres_bin, _private_dir

from fastplug.core.testing import require_tool
from fleet.net import Host

MASTER = "fleetmaster"


def wait(check: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll ``check`` until it is true (errors count as not yet); fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {limit:g}s waiting for {what}")


class Postgres:
    """A cluster on ``host`` at ``port``: a primary, or with ``primary`` its standby."""

    def __init__(self, host: Host, port: int, primary: Postgres | None = None) -> None:
        self.host, self.port = host, port
        self.pg_ctl = _postgres_bin("pg_ctl")
        self.dir = _private_dir("fastplug-fleet-pg-", "postgres")
        self.data, self.log = self.dir / "data", self.dir / "postgres.log"
        self.options = (
            f"-p {port} -k {self.dir} -c listen_addresses={host.address},127.0.0.1 -c fsync=off"
            " -c max_connections=300 -c shared_buffers=32MB -c hot_standby=on"
        )
        if primary is None:
            self._run([_postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"])
            with open(self.data / "pg_hba.conf", "a") as hba:
                network = f"{host.net.prefix}.0/24"
                hba.write(f"host all all {network} trust\nhost replication all {network} trust\n")
        else:
            source = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"]
            self._run([_postgres_bin("pg_basebackup"), *source, "-D", str(self.data), "-R", "-c", "fast", "-N"])
        self.start()
        self.url = f"postgresql+asyncpg://postgres@{host.address}:{port}/app"

    def _run(self, argv: list[str]) -> str:
        done = subprocess.run(self.host.argv(*_as("postgres", argv)), capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise AssertionError(f"{argv[0]} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        argv = [self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", self.options]
        self._run([*argv, "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def sql(self, statement: str, database: str = "app") -> str:
        psql = [_postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database]
        return self._run([*psql, "-Atqc", statement]).strip()

    def remove(self) -> None:
        subprocess.run(
            self.host.argv(*_as("postgres", [self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"])),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisGroup:
    """A master, its replica and three sentinels watching them (nothing kept on disk), bound
    to ``address``. ``ports`` by name (``master``, ``replica``, ``s1``-``s3``; default: Redis's
    own, for a host of its own); ``argv`` runs a command where they live (``host.argv`` for a
    fleet host, as it is for loopback)."""

    NAMES = ("master", "replica", "s1", "s2", "s3")

    def __init__(
        self,
        where: Path,
        address: str,
        ports: dict[str, int] | None = None,
        argv: Callable[..., list[str]] = lambda *command: list(command),
    ) -> None:
        self.where, self.address, self.argv = where, address, argv
        self.binary = require_tool("redis-server")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports = ports or dict(zip(self.NAMES, (6379, 6380, 26379, 26380, 26381), strict=True))
        self.server("master")
        self.server("replica", self.ports["master"])
        for name in ("s1", "s2", "s3"):
            self.sentinel(name)
        wait(self._ready, "the sentinels to know each other and the replica")

    def client(self, name: str) -> redis_sync.Redis:
        return redis_sync.Redis(host=self.address, port=self.ports[name], socket_timeout=0.5)

    def server(self, name: str, replica_of: int | None = None) -> None:
        """Start ``name`` (a replica of the server on port ``replica_of``, when given)."""
        args = ["--port", str(self.ports[name]), "--bind", self.address, "--protected-mode", "no"]
        args += ["--save", "", "--appendonly", "no"]
        if replica_of is not None:
            args += ["--replicaof", self.address, str(replica_of)]
        argv = self.argv(self.binary, *args)
        self.procs[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
        wait(lambda: bool(self.client(name).ping()), f"redis {name}")

    def sentinel(self, name: str) -> None:
        conf = self.where / f"{name}.conf"
        conf.write_text(
            f"port {self.ports[name]}\nbind {self.address}\nprotected-mode no\ndir {self.where}\n"
            f"sentinel monitor {MASTER} {self.address} {self.ports['master']} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 10000\n"
        )
        argv = self.argv(self.binary, str(conf), "--sentinel")
        self.procs[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)

    def _ready(self) -> bool:
        sentinel = self.client("s1")
        replicas = sentinel.sentinel_slaves(MASTER)
        return len(sentinel.sentinel_sentinels(MASTER)) == 2 and any(
            r.get("master-link-status") == "ok" for r in replicas
        )

    def master_port(self) -> int:
        """The port of the server the sentinels name as master now."""
        return int(self.client("s1").sentinel_get_master_addr_by_name(MASTER)[1])

    def master_name(self) -> str:
        """``"master"`` or ``"replica"``: the server the sentinels name as master now."""
        port = self.master_port()
        return next(name for name, known in self.ports.items() if known == port)

    def rejoin(self, name: str) -> None:
        """Start ``name`` again (it was killed), as a replica of the current master."""
        self.server(name, self.master_port())
        wait(self._ready, "the sentinels to see the rejoined replica")

    def nodes(self) -> list[str]:
        return [f"{self.address}:{self.ports[name]}" for name in ("s1", "s2", "s3")]

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)


class Rabbit(PrivateRabbit):
    """A private RabbitMQ node on ``host``, listening on its address (and loopback)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        super().__init__()
        self.url = f"amqp://guest:guest@{host.address}:{self.port}//"

    def start(self) -> None:
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nloopback_users = none\n"  # guest from the other hosts
        )
        out = open(self.dir / "out.log", "ab")  # noqa: SIM115 - the node's own output, kept with its dir
        argv = self.host.argv(*_as("rabbitmq", [self.server]))
        self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=out, start_new_session=True)
        out.close()

        def accepts() -> bool:
            import socket

            with socket.create_connection((self.host.address, self.port), timeout=0.5):
                return True

        wait(accepts, "the fleet's RabbitMQ node", 90)
