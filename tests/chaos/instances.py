"""Private service instances a chaos test starts, breaks and kills (never the shared ones).

Each runs in its own temp dir on free ports, in its own process group, and is killed by
its fixture. When this runs as root, PostgreSQL and RabbitMQ run as their Debian users.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from fastplug.core.testing import require_tool

ROOT = os.geteuid() == 0


def free_port() -> int:
    """A TCP port nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port: int, up: bool, what: str, limit: float = 60.0) -> None:
    """Wait until the port is open (``up``) or closed; bounded."""
    deadline = time.monotonic() + limit
    while port_open(port) != up:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not {'start' if up else 'stop'} within {limit:g}s")
        time.sleep(0.05)


def _private_dir(prefix: str, owner: str | None) -> Path:
    # not under pytest's tmp_path: that is private to root, and the service users must enter
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner and ROOT:
        shutil.chown(path, owner, owner)
    return path


def _as(user: str, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if ROOT else argv


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    return found or require_tool(name)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster: ``start()``, ``stop(mode)``, ``restart(mode)``, ``kill()``.

    ``url`` is the SQLAlchemy URL of its database ``app``; ``dsn`` the asyncpg one.
    """

    def __init__(self) -> None:
        self.pg_ctl, initdb = _postgres_bin("pg_ctl"), _postgres_bin("initdb")
        self.dir = _private_dir("fastplug-chaos-pg-", "postgres")
        self.data, self.log = self.dir / "data", self.dir / "postgres.log"
        self.port = free_port()
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200 -c shared_buffers=32MB"
        )
        (self.data / "postgresql.auto.conf").write_text("")
        self._options = options
        self.start()
        self._run(
            [
                _postgres_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-qc",
                "CREATE DATABASE app",
            ]
        )
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/app"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/app"

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as("postgres", argv), capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self._run(
            [self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", self._options, "-w", "-t", "60", "start"]
        )

    def stop(self, mode: str = "fast", wait: bool = True) -> None:
        """``pg_ctl stop -m fast|immediate|smart`` (``wait=False``: return at once)."""
        argv = [self.pg_ctl, "-D", str(self.data), "-m", mode, "stop"]
        if wait:
            self._run([*argv[:-1], "-w", "-t", "60", "stop"], check=False)
        else:
            subprocess.Popen(_as("postgres", [*argv[:-1], "-W", "stop"]), stdout=subprocess.DEVNULL)

    def restart(self, mode: str = "fast") -> None:
        """Stop with ``mode`` and start again (the downtime is as short as PostgreSQL allows)."""
        self.stop(mode)
        self.start()

    def kill(self) -> None:
        """Stop it for good and remove its files."""
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, statement: str) -> str:
        """Run ``statement`` in its database ``app`` with psql; what it printed."""
        argv = [_postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "app"]
        return self._run([*argv, "-Atqc", statement]).stdout.strip()


class PrivateReplica(PrivatePostgres):
    """A streaming standby of ``primary`` (``pg_basebackup -R``), on its own port and files:
    the same ``start()``, ``stop(mode)``, ``kill()`` and ``sql(statement)``."""

    def __init__(self, primary: PrivatePostgres) -> None:
        self.pg_ctl = primary.pg_ctl
        self.dir = _private_dir("fastplug-chaos-pgr-", "postgres")
        self.data, self.log = self.dir / "data", self.dir / "postgres.log"
        self.port = free_port()
        basebackup = _postgres_bin("pg_basebackup")
        self._run(
            [
                basebackup,
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(self.data),
                "-R",
                "-c",
                "fast",
                "-N",
            ]
        )
        self._options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200 -c shared_buffers=32MB -c hot_standby=on"
        )
        self.start()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/app"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/app"


class PrivatePgBouncer:
    """A throwaway PgBouncer in front of ``database`` on ``target`` (``host:port``), listening
    on ``listen`` (``host:port``), trust auth, ``pool_mode``; ``prefix`` runs it elsewhere
    (``ip netns exec NS``). ``kill()`` stops it and removes its files."""

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        database: str,
        pool_mode: str = "transaction",
        pool_size: int = 2,
        prefix: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("pgbouncer") or require_tool("pgbouncer")
        self.dir = _private_dir("fastplug-pgbouncer-", "postgres")
        self.host, self.port = listen
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n{database} = host={target[0]} port={target[1]} dbname={database} user=postgres\n"
            f"[pgbouncer]\nlisten_addr = {self.host}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'users.txt'}\npool_mode = {pool_mode}\n"
            f"default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\nmax_client_conn = 2000\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        argv = [*prefix, *_as("postgres", [binary, str(self.dir / "pgbouncer.ini")])]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.kill()
                    raise AssertionError("the private PgBouncer did not start") from None
                time.sleep(0.05)
        self.url = f"postgresql+asyncpg://postgres@{self.host}:{self.port}/{database}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A throwaway ``redis-server`` (nothing on disk): ``start()``, ``kill()``, ``pause()``
    (SIGSTOP: hung, connections open), ``resume()``, ``restart()`` (empty again)."""

    def __init__(self) -> None:
        self.binary = require_tool("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, True, "redis-server")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Killed and started empty on the same port (a broker that lost its messages)."""
        self.kill()
        self.start()


class PrivateRabbit:
    """A throwaway RabbitMQ node (its own name, ports, Mnesia dir; no plugins):
    ``start()``, ``kill()`` (SIGKILL of the node), ``restart()`` (its queues kept on disk)."""

    def __init__(self) -> None:
        server = shutil.which("rabbitmq-server") or require_tool("rabbitmq-server")
        # the real script, not Debian's wrapper (which would su and lose the environment)
        real = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        self.server = str(real) if real.exists() else server
        self.dir = _private_dir("fastplug-chaos-rmq-", "rabbitmq")
        self.port, dist = free_port(), free_port()
        self.node = f"fpchaos{uuid.uuid4().hex[:8]}@localhost"
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        if ROOT:
            for path in self.dir.iterdir():
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "HOME": "/var/lib/rabbitmq" if ROOT else os.environ.get("HOME", str(self.dir)),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
        }
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        out = open(self.dir / "out.log", "ab")  # noqa: SIM115 - the node's own output, kept with its dir
        self.proc = subprocess.Popen(
            _as("rabbitmq", [self.server]), env=self.env, stdout=out, stderr=out, start_new_session=True
        )
        out.close()
        wait_port(self.port, True, "the private RabbitMQ node", limit=90)

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None
        # the node's VM may have left the process group: find it by its private directory
        subprocess.run(["pkill", "-KILL", "-f", str(self.dir)], check=False)
        wait_port(self.port, False, "the private RabbitMQ node")

    def restart(self) -> None:
        self.kill()
        self.start()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
