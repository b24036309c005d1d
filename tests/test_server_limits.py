"""``manage.py serve`` against hostile clients: oversized heads, idle and slow connections.

The real server process (uvicorn, and gunicorn with workers) with ``[server]``'s
``limit_request_line``, ``limit_request_fields``, ``limit_request_field_size``,
``header_timeout`` and ``max_connections``.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers_plugins import FakeDists, lifespan_body
from tests.test_serve import MANAGE, SLOW_ROUTE, stop, wait_ready

pytestmark = pytest.mark.slow
HEAD = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    """A pip-installed plugin with a ``/slow`` route."""
    fake = FakeDists(tmp_path / "dists", monkeypatch)
    fake.plugin("probe", lifespan_body("probe") + SLOW_ROUTE)
    yield fake
    fake.cleanup()


@dataclass
class Served:
    """A running server: its process, base URL and, once stopped, its exit code and stderr."""

    proc: subprocess.Popen[str]
    base: str
    code: int | None = None
    stderr: str = field(default="")


@contextlib.contextmanager
def serving(
    tmp_path: Path, env: dict[str, str], server: str = "", *args: str, files: int | None = None
) -> Iterator[Served]:
    """``manage.py serve`` with ``[server]`` lines ``server``; ``files``: its open file limit."""
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[default]\nplugins = ["health", "probe"]\n[default.server]\n{server}\n')
    port = free_port()
    clean = {k: v for k, v in env.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_"))}

    def limit_files() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    proc = subprocess.Popen(
        [sys.executable, str(MANAGE), "--settings", str(settings), "serve", "--port", str(port), *args],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_files,
    )
    served = Served(proc, f"http://127.0.0.1:{port}")
    try:
        wait_ready(proc, f"{served.base}/health/live")
        yield served
    finally:
        if proc.poll() is None:
            served.code, served.stderr = stop(proc)


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _ask(base: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> bytes:
    """Send ``head`` (and ``body``) on a new connection; what came back before it closed."""
    with socket.create_connection(("127.0.0.1", _port(base)), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(head + body)
        return _read(sock)


def _read(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _flood(base: str, header_bytes: int) -> tuple[bytes, int]:
    """One header of ``header_bytes`` bytes, sent 64 KB at a time until the server stops
    taking it: (its answer, bytes it took before answering)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", _port(base)), timeout=10) as sock:
        piece = b"a" * 65536
        try:
            sock.sendall(HEAD + b"X-Big: ")
            while sent < header_bytes:
                sock.sendall(piece)
                sent += len(piece)
        except OSError:  # the server answered and closed
            pass
        return _read(sock), sent


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["uvicorn", "gunicorn"])
def test_oversized_heads_are_refused_at_once(probe: FakeDists, tmp_path: Path, args: tuple[str, ...]) -> None:
    with serving(tmp_path, probe.env(), "", *args) as served:
        proc, base = served.proc, served.base
        long_line = _ask(base, b"GET /health/live?" + b"q" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        many = _ask(base, HEAD + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n")
        wide = _ask(base, HEAD + b"X-Wide: " + b"w" * 9000 + b"\r\n\r\n")
        before = _rss_kb(proc.pid) if not args else 0
        flood, taken = _flood(base, 100 * 1024 * 1024)
        after = _rss_kb(proc.pid) if not args else 0
        near = _ask(base, HEAD + b"".join(b"X-%d: %s\r\n" % (i, b"n" * 8000) for i in range(90)) + b"\r\n")
        fine = httpx.get(f"{base}/health/live")
    assert _status(long_line) == 414, long_line[:300]
    assert _status(many) == 431, many[:300]
    assert _status(wide) == 431, wide[:300]
    assert b'"detail"' in wide and b"connection: close" in wide.lower()
    assert _status(flood) == 431, flood[:300]
    assert taken < 16 * 1024 * 1024, f"{taken} bytes of one header went out"  # the rest: socket buffers
    assert after - before < 20_000, f"RSS grew {after - before} KB"
    assert _status(near) == 200, near[:300]  # 90 fields of 8 KB: within every limit
    assert fine.status_code == 200


def _open(base: str, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", _port(base)), timeout=10)
        sockets.append(sock)
    return sockets


def test_idle_and_slow_connections_do_not_starve_requests(probe: FakeDists, tmp_path: Path) -> None:
    """1,100 idle and 100 slow-header sockets on a server with the usual 1024 open files:
    normal requests are all answered; slow heads get 408 after ``header_timeout``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1500:
        pytest.skip("this test process needs 1,500 open files")
    idle: list[socket.socket] = []
    slow: list[socket.socket] = []
    stop_trickle = threading.Event()

    def trickle() -> None:  # one more byte of each slow head every 0.5 s
        while not stop_trickle.wait(0.5):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    try:
        with serving(tmp_path, probe.env(), "header_timeout = 3.0", files=1024) as served:
            base = served.base
            idle = _open(base, 1100)
            slow = _open(base, 100)
            for sock in slow:
                sock.sendall(HEAD + b"X-Slow: ")
            thread = threading.Thread(target=trickle, daemon=True)
            thread.start()
            answers = [httpx.get(f"{base}/health/live", headers={"connection": "close"}) for _ in range(50)]
            time.sleep(4.0)  # past header_timeout
            stop_trickle.set()
            thread.join()
            slow_answers = []
            for sock in slow:
                sock.settimeout(2.0)
                slow_answers.append(_read(sock))
            for sock in idle[-50:]:  # the newest idle ones were not evicted: the timer closed them
                sock.settimeout(2.0)
                assert _read(sock) == b""
            after = [httpx.get(f"{base}/health/live") for _ in range(5)]
    finally:
        stop_trickle.set()
        for sock in idle + slow:
            sock.close()
    assert [a.status_code for a in answers] == [200] * 50
    assert [a.status_code for a in after] == [200] * 5
    refused = [_status(a) for a in slow_answers]
    assert all(status in (408, 0) for status in refused), refused  # 0: closed to make room
    assert refused.count(408) > 0, refused
    assert "the open file limit is 1024, so max_connections is 896, not 1000" in served.stderr
    assert "Traceback" not in served.stderr


@contextlib.contextmanager
def _in_flight(base: str, count: int) -> Iterator[list[int]]:
    """``count`` requests to ``/slow`` (2 s) in flight on their own connections; their statuses
    once the block ends."""
    statuses: list[int] = []
    started = threading.Barrier(count + 1)

    def hold() -> None:
        with httpx.Client(base_url=base, timeout=10) as own:
            started.wait()
            statuses.append(own.get("/slow", params={"seconds": 2}).status_code)

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.5)  # the requests are in flight
    try:
        yield statuses
    finally:
        for thread in threads:
            thread.join()


def test_beyond_max_connections_an_idle_one_makes_room(probe: FakeDists, tmp_path: Path) -> None:
    with (
        serving(tmp_path, probe.env(), "max_connections = 4") as served,
        httpx.Client(base_url=served.base, timeout=10) as client,
        _in_flight(served.base, 3) as statuses,
    ):
        own = client.get("/health/live")  # the 4th connection, idle after this
        admitted = _ask(served.base, HEAD + b"\r\n")  # a 5th: only the idle 4th can make room
    assert own.status_code == 200
    assert _status(admitted) == 200, admitted[:300]  # the idle connection was closed for it
    assert statuses == [200, 200, 200]


def test_a_request_on_a_full_server_is_503_with_retry_after(probe: FakeDists, tmp_path: Path) -> None:
    with serving(tmp_path, probe.env(), "max_connections = 3") as served:
        with _in_flight(served.base, 3) as statuses:  # no connection is idle
            refused = _ask(served.base, HEAD + b"\r\n")
        fine = httpx.get(f"{served.base}/health/live")
    assert _status(refused) == 503, refused[:300]
    assert b"retry-after: 1" in refused.lower()
    assert statuses == [200, 200, 200]
    assert fine.status_code == 200
