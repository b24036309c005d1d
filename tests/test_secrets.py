"""Secrets never leave fastplug: URL passwords and secret query parameters are masked by
parsing (a password may hold ``@ : / ? #``), in every command's output, log line and answer.

The integration tests put a canary password of awkward characters and canary tokens into a
temp project (its settings.toml, then the environment), run every command and a real server
against the real PostgreSQL, Redis and RabbitMQ with error paths (a database that does not
exist, a broker refusing the login, ports nothing listens on), and look for any 6-character
piece of a canary, raw, percent-encoded or JSON-escaped, in everything that came out.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from fastplug.config import mask_secrets, mask_url, mask_url_password
from fastplug.config.masking import MASK, leaks_password, secret_param
from fastplug.core import mask_url_password as core_mask_url_password
from fastplug.core import one_line
from fastplug.core.effective import mask
from fastplug.core.logmask import MaskSecrets, mask_log_handlers
from fastplug.core.testing import require_service
from tests.conftest import PG_HOST, PG_PORT, _pg_admin, free_port

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
PASSWORD = "Pw@:/?#[]%25 !'\"S3CRET-CANARY"
TOKEN = "Tk&=;#?/ Q-TOKEN-CANARY-7f3"
METRICS_TOKEN = "M3trics-BEARER-CANARY-0c9d"
ENC = quote(PASSWORD, safe="")
ENC_TOKEN = quote(TOKEN, safe="")


def forbidden() -> set[str]:
    """Every 6-character piece of each canary, in each form it could be printed in."""
    forms: set[str] = set()
    for secret in (PASSWORD, TOKEN, METRICS_TOKEN):
        forms |= {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    return {form[i : i + 6] for form in forms for i in range(len(form) - 5)}


PIECES = forbidden()


def assert_no_secret(where: str, text: str) -> None:
    leaked = sorted(piece for piece in PIECES if piece in text)
    assert not leaked, f"{where}: pieces of a secret {leaked} in:\n{text}"


# --- the masking function ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # the reviewer's case: the userinfo ends at the LAST @
        (
            "postgresql://app:p@ss:Pw-AT-S3CRET-66@127.0.0.1:5432/db",
            f"postgresql://app:{MASK}@127.0.0.1:5432/db",
        ),
        ("redis://:pass:with:colons@h:6379/0", f"redis://:{MASK}@h:6379/0"),
        (f"postgresql+asyncpg://app:{ENC}@db:5432/shop", f"postgresql+asyncpg://app:{MASK}@db:5432/shop"),
        ("postgresql+asyncpg://app@db/shop", "postgresql+asyncpg://app@db/shop"),  # user only
        ("redis://db:6379/0", "redis://db:6379/0"),  # no userinfo: host:port untouched
        ("memory://", "memory://"),
        ("sqlite+aiosqlite:///./var/app.db", "sqlite+aiosqlite:///./var/app.db"),
        ("amqp://guest:guest@localhost:5672//", f"amqp://guest:{MASK}@localhost:5672//"),
        ("postgresql://u:pw@[::1]:5432/db", f"postgresql://u:{MASK}@[::1]:5432/db"),
        ("redis://[2001:db8::7]:6380/1?password=x", f"redis://[2001:db8::7]:6380/1?password={MASK}"),
        (
            "postgresql://u@h/db?sslmode=require&password=a%40b&api_key=k&access_key=k&auth=a&pwd=p&page=2",
            f"postgresql://u@h/db?sslmode=require&password={MASK}&api_key={MASK}&access_key={MASK}"
            f"&auth={MASK}&pwd={MASK}&page=2",
        ),
        ("https://h/cb#access_token=t&state=s", f"https://h/cb#access_token={MASK}&state=s"),
        ("https://h/p?x=1;token=t", f"https://h/p?x=1;token={MASK}"),
    ],
)
def test_urls_are_masked_by_parsing(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert mask_url(text) == masked


def test_urls_inside_text_are_each_masked_and_the_rest_kept() -> None:
    text = (
        "cannot connect to 'postgresql://app:p@ss@db/x' (tried redis://:r3dis@[::1]:6379/0, "
        "amqp://guest:gu3st@mq//?token=t0k) for user@example.com: Connection refused"
    )
    assert mask_secrets(text) == (
        f"cannot connect to 'postgresql://app:{MASK}@db/x' (tried redis://:{MASK}@[::1]:6379/0, "
        f"amqp://guest:{MASK}@mq//?token={MASK}) for user@example.com: Connection refused"
    )
    two = "a=postgresql://u:p1@h/db,b=redis://x:p2@h2/0"
    assert mask_secrets(two) == f"a=postgresql://u:{MASK}@h/db,b=redis://x:{MASK}@h2/0"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "user:pass@host is not a URL",
        "ValueError: invalid port 'abc' (expected 1-65535)",
        "GET /users?token=abc HTTP/1.1",  # a request line: not a URL (the access log's business)
        "ratio 3:1 at 12:30, see docs/x.md",
    ],
)
def test_text_without_urls_is_untouched(text: str) -> None:
    assert mask_secrets(text) == text


def test_a_settings_value_is_one_url_spaces_and_all() -> None:
    raw = f"postgresql+asyncpg://app:{PASSWORD}@127.0.0.1:5432/db"
    assert mask_url(raw) == f"postgresql+asyncpg://app:{MASK}@127.0.0.1:5432/db"
    assert_no_secret("mask_url", mask_url(raw))
    assert mask(key="url", value=raw) == f"postgresql+asyncpg://app:{MASK}@127.0.0.1:5432/db"
    assert mask(key="urls", value=[raw, "redis://h/0"]) == [mask_url(raw), "redis://h/0"]
    assert mask(key="metrics_token", value="anything") == MASK


def test_compatible_names_and_one_line_mask_too() -> None:
    url = f"redis://:{ENC}@h:6379/0?password={ENC_TOKEN}"
    expected = f"redis://:{MASK}@h:6379/0?password={MASK}"
    assert mask_url_password(url) == core_mask_url_password(url) == expected
    line = one_line(ConnectionError(f"cannot connect to {url}\n  retrying"))
    assert line == f"ConnectionError: cannot connect to {expected} retrying"


def test_the_server_log_handlers_mask_every_line() -> None:
    """Whoever logs a DSN (a driver, a library, a traceback), the line written is masked."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        mask_log_handlers()
        mask_log_handlers()  # once only: not wrapped twice
        assert isinstance(handler.formatter, MaskSecrets)
        assert not isinstance(handler.formatter.inner, MaskSecrets)
        url = f"postgresql://app:{ENC}@db/x?password={ENC_TOKEN}"
        logger.warning("cannot connect to %s", url)
        try:
            raise ConnectionError(f"refused by {url}")
        except ConnectionError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert f"WARNING cannot connect to postgresql://app:{MASK}@db/x?password={MASK}" in written
    assert "Traceback" in written and f"refused by postgresql://app:{MASK}@db/x" in written
    assert_no_secret("log", written)


def test_secret_query_parameter_names() -> None:
    for name in ("password", "PASSWD", "pwd", "secret", "client_secret", "token", "access_token", "key"):
        assert secret_param(name), name
    for name in ("api_key", "apikey", "access_key", "sslkey", "auth", "authToken", "sig", "credentials"):
        assert secret_param(name), name
    for name in ("sslmode", "page", "limit", "application_name", "timeout", "db", "host"):
        assert not secret_param(name), name


def test_a_message_quoting_a_password_is_recognised() -> None:
    url = "postgresql+asyncpg://app:p@ss:Pw-AT-S3CRET-66@127.0.0.1:5432/db"
    assert leaks_password("invalid literal for int() with base 10: 'Pw-AT-S3CRET-66@127.0.0.1:5432'", url)
    assert not leaks_password("invalid port", url)
    assert not leaks_password("anything", "postgresql+asyncpg://app@h/db")


def test_settings_errors_never_quote_a_password(tmp_path: Path) -> None:
    """SQLAlchemy's make_url fails on a raw '@' with a message quoting the rest of the URL."""
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[default]\nplugins = ["db"]\n[default.db]\nurl = "postgresql+asyncpg://app:p@ss:Pw-AT-S3CRET-66@h:5432/db"\n'
    )
    for command in (["settings"], ["check"], ["db", "status"]):
        result = manage(settings, {}, *command)
        assert result.returncode == 1, result
        assert "S3CRET" not in result.stdout + result.stderr
        assert "percent-encode" in result.stdout + result.stderr


# --- every command, a real server, the real services ---------------------------------


def manage(settings: Path, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_"))}
    return subprocess.run(
        [sys.executable, str(MANAGE), "--settings", str(settings), *args],
        cwd=settings.parent,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass(frozen=True, slots=True)
class Canary:
    """A role whose password is the canary, and a database name that does not exist."""

    role: str
    missing_db: str


@pytest.fixture
def canary() -> Iterator[Canary]:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    require_service("Redis", "127.0.0.1", 6379)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    tag = uuid.uuid4().hex[:10]
    role = f"fp_secrets_{tag}"
    literal = PASSWORD.replace("'", "''")
    asyncio.run(_pg_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{literal}'"))
    try:
        yield Canary(role, f"fp_secrets_missing_{tag}")
    finally:
        asyncio.run(_pg_admin(f"DROP ROLE IF EXISTS {role}"))


PLUGINS = ["health", "metrics", "db", "redis", "cache", "tasks", "users", "products"]


def toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def project_in_file(root: Path, canary: Canary) -> tuple[Path, dict[str, str]]:
    """The canaries in settings.toml: the db and broker passwords, a ?password= on Redis."""
    db = f"postgresql+asyncpg://{canary.role}:{ENC}@{PG_HOST}:{PG_PORT}/{canary.missing_db}"
    redis = f"redis://127.0.0.1:{free_port()}/0?password={ENC_TOKEN}"
    broker = f"amqp://{canary.role}:{ENC}@127.0.0.1:5672//"  # RabbitMQ refuses this login
    settings = root / "settings.toml"
    settings.write_text(
        f"[default]\nplugins = {json.dumps(PLUGINS)}\n"
        f"[default.db]\nurl = {toml(db)}\n"
        f"[default.redis]\nurl = {toml(redis)}\n"
        f"[default.tasks]\nbroker_url = {toml(broker)}\npublish_timeout = 2.0\n"
        f"[default.metrics]\ntoken = {toml(METRICS_TOKEN)}\n"
    )
    return settings, {}


def project_in_env(root: Path, canary: Canary) -> tuple[Path, dict[str, str]]:
    """The canaries in FASTPLUG_* variables: a ?password= on the db URL, passwords on the others."""
    settings = root / "settings.toml"
    settings.write_text(f"[default]\nplugins = {json.dumps(PLUGINS)}\n")
    return settings, {
        "FASTPLUG_DB__URL": f"postgresql+asyncpg://{canary.role}@{PG_HOST}:{PG_PORT}/{canary.missing_db}"
        f"?password={ENC}",
        "FASTPLUG_REDIS__URL": f"redis://:{ENC}@127.0.0.1:6379/0?token={ENC_TOKEN}",
        "FASTPLUG_TASKS__BROKER_URL": f"amqp://guest:{ENC}@127.0.0.1:{free_port()}//",
        "FASTPLUG_TASKS__PUBLISH_TIMEOUT": "2.0",
        "FASTPLUG_METRICS__TOKEN": METRICS_TOKEN,
    }


COMMANDS = [
    ("settings",),
    ("settings", "--json"),
    ("check",),
    ("plugins",),
    ("plugins", "--json"),
    ("routes",),
    ("db", "status"),
    ("db", "current"),
    ("db", "upgrade"),
]


@pytest.mark.slow
@pytest.mark.parametrize("where", [project_in_file, project_in_env], ids=["settings.toml", "environment"])
def test_no_command_prints_a_secret(tmp_path: Path, canary: Canary, where: object) -> None:
    settings, env = where(tmp_path, canary)  # type: ignore[operator]
    results = {" ".join(args): manage(settings, env, *args) for args in COMMANDS}
    for name, result in results.items():
        assert_no_secret(f"manage.py {name} (stdout)", result.stdout)
        assert_no_secret(f"manage.py {name} (stderr)", result.stderr)

    # the paths ran: values shown masked, the error paths reached
    rows = {row["key"]: row["value"] for row in json.loads(results["settings --json"].stdout)}
    assert MASK in rows["db.url"] and f"@{PG_HOST}:{PG_PORT}/{canary.missing_db}" in rows["db.url"]
    assert MASK in rows["redis.url"] and MASK in rows["tasks.broker_url"]
    assert rows["metrics.token"] == MASK
    assert MASK in results["settings"].stdout
    check = results["check"]
    assert check.returncode == 1
    assert "db.E001" in check.stderr and "tasks.E001" in check.stderr and "redis.E001" in check.stderr
    for name in ("db status", "db current", "db upgrade"):
        assert results[name].returncode == 1
        assert canary.missing_db in results[name].stderr  # "database ... does not exist"


def serve(settings: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_"))}
    proc = subprocess.Popen(
        [sys.executable, str(MANAGE), "--settings", str(settings), "serve", "--port", str(port)],
        cwd=settings.parent,
        env={**clean, **env, "FASTPLUG_SERVER__LOG_LEVEL": "debug", "FASTPLUG_SERVER__ACCESS_LOG": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_live(proc: subprocess.Popen[str], base: str) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"server exited with {proc.returncode}:\n{out}\n{err}")
        try:
            if httpx.get(f"{base}/health/live", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    raise AssertionError("server not live")


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"server did not stop on SIGTERM:\n{err}") from None


@pytest.mark.slow
@pytest.mark.parametrize("where", [project_in_file, project_in_env], ids=["settings.toml", "environment"])
def test_the_server_logs_and_answers_no_secret(tmp_path: Path, canary: Canary, where: object) -> None:
    settings, env = where(tmp_path, canary)  # type: ignore[operator]
    proc, base = serve(settings, env)
    answers: list[str] = []
    try:
        wait_live(proc, base)
        ready = httpx.get(f"{base}/health/ready", timeout=30)
        answers.append(ready.text)
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["db"]["status"] == "fail"
        write = httpx.post(f"{base}/users", json={"email": "canary@example.com", "name": "Canary"}, timeout=30)
        answers.append(write.text)
        assert write.status_code == 503, write.text
        scrape = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
        answers.append(scrape.text)
        assert scrape.status_code == 200
    finally:
        out, err = stop(proc)
    for answer in answers:
        assert_no_secret("a response body", answer)
    assert_no_secret("serve stdout", out)
    assert_no_secret("serve stderr", err)
    assert "Application startup complete" in err
    assert canary.missing_db in err  # the database's error was logged (the db plugin, the outbox relay)


@pytest.mark.slow
def test_a_server_that_cannot_start_logs_no_secret(tmp_path: Path, canary: Canary) -> None:
    """auto_migrate on a database that does not exist: startup fails, its reason logged."""
    settings, env = project_in_env(tmp_path, canary)
    proc, _ = serve(settings, {**env, "FASTPLUG_DB__AUTO_MIGRATE": "true"})
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"server did not exit:\n{err}") from None
    assert proc.returncode != 0
    assert "failed to start" in err, err
    assert_no_secret("serve stdout", out)
    assert_no_secret("serve stderr", err)
