"""Bodies a client may send on purpose: never a 500, never echoed whole, never logged."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fastplug.core.app import create_app

SHIPPED = Path(__file__).resolve().parents[1] / "settings.toml"
NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = tmp_path / "settings.toml"
    settings.write_text(SHIPPED.read_text())  # the embedded default: SQLite beside it
    with TestClient(create_app(settings, "development")) as client:
        yield client  # type: ignore[misc]


def _post(client: TestClient, path: str, body: str):  # type: ignore[no-untyped-def]
    return client.post(
        path, content=body.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("number", NUMBERS)
@pytest.mark.parametrize("path", ["/users", "/orders", "/products"])
def test_non_finite_numbers_are_422(client: TestClient, path: str, number: str) -> None:
    body = {
        "/users": f'{{"email": {number}, "name": "x"}}',
        "/orders": f'{{"user_id": {number}, "items": [{{"product_id": 1, "quantity": {number}}}]}}',
        "/products": f'{{"sku": "S-1", "name": "n", "category": "c", "price": {number}}}',
    }[path]
    answer = _post(client, path, body)
    assert answer.status_code == 422, answer.text
    assert isinstance(answer.json()["detail"], list)


def test_a_lone_surrogate_is_422(client: TestClient) -> None:
    answer = _post(client, "/users", '{"email": "x\\ud800y@example.com", "name": "\\udfff"}')
    assert answer.status_code == 422, answer.text
    answer.json()


def test_a_huge_input_is_not_echoed_or_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    canary = "zq" * 500_000  # 1 MB
    caplog.set_level(logging.DEBUG)
    answers = [
        _post(client, "/users", f'{{"email": "{canary}", "name": "x"}}'),
        _post(client, "/orders", f'{{"note": "{canary}", "{canary}": 1}}'),  # a whole object, and a huge key
    ]
    for answer in answers:
        assert answer.status_code == 422
        assert len(answer.content) < 4000, len(answer.content)
    assert "zqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzq" not in caplog.text


def _raw(url: str, head: bytes, chunks: int = 0, chunk: bytes = b"") -> tuple[bytes, int]:
    """Send ``head`` then up to ``chunks`` chunked pieces, stopping when the server answers;
    what it answered, and how many pieces went out (bounded by a socket timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        sent = 0
        sock.setblocking(False)
        answer = b""
        for sent in range(chunks):  # noqa: B007
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, sent


def test_a_body_over_the_limit_is_413_before_it_is_read(tmp_path: Path) -> None:
    """``[server] max_body_size``: a declared Content-Length over it is refused at once (no
    byte of the body sent), a chunked body as soon as it passes it; memory stays bounded."""
    from fastplug.core.testing import LiveServer

    settings = tmp_path / "settings.toml"
    shipped = SHIPPED.read_text()
    assert "max_body_size = 4194304" in shipped
    settings.write_text(shipped.replace("max_body_size = 4194304", "max_body_size = 100000", 1))
    with LiveServer(create_app(settings, "development")) as server:
        head = b"POST /users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        declared = head + b"Content-Length: 200000000\r\n\r\n"
        answer, _ = _raw(server.url, declared)
        chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
        cut, sent = _raw(server.url, chunked, chunks=2000, chunk=b"x" * 10_000)  # 20 MB if all went out
        import httpx

        ok = httpx.post(f"{server.url}/users", json={"email": "big@example.com", "name": "x" * 50})
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert cut.startswith(b"HTTP/1.1 413"), cut[:200]
    assert sent < 1000, f"{sent} chunks of 10 KB were taken before the 413"
    assert ok.status_code == 201, ok.text  # ordinary bodies are left alone
