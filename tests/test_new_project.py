"""The new-user test: fastplug from a wheel of this checkout, in a fresh venv, makes a project
outside the repository that checks, serves, passes its tests and grows a local and a
distributable plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.test_serve import stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "core", "config", "plugins")  # what the wheel is built from
STEP_LIMIT = 300  # seconds any one command may take (pip on a cold cache)
pytestmark = pytest.mark.slow


@dataclass(frozen=True, slots=True)
class Venv:
    """A fresh virtualenv with fastplug installed from a wheel."""

    root: Path
    wheel: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def fastplug(self) -> str:
        return str(self.root / "bin" / "fastplug")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a user of this venv: none of the test run's Python or fastplug variables."""
        dropped = ("FASTPLUG_", "PROMETHEUS_", "PYTHON", "VIRTUAL_ENV", "PYTEST_")
        clean = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        clean["PATH"] = f"{self.root / 'bin'}{os.pathsep}{clean.get('PATH', '')}"
        clean["VIRTUAL_ENV"] = str(self.root)
        return {**clean, **extra}

    def pip_install(self, *args: str) -> None:
        """``pip install ARGS`` into this venv (the test run's pip, aimed at it with ``--python``)."""
        run([sys.executable, "-m", "pip", "--python", self.python, "install", "-q", "--no-compile", *args], ROOT)


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded); fail with its output unless it exits 0."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_LIMIT, check=False)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(out: Path) -> Path:
    """A wheel of this checkout, built from a clean copy (no stale build/ or egg-info)."""
    source = out / "src"
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)], out)
    (wheel,) = out.glob("fastplug-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    where = tmp_path_factory.mktemp("new-user")
    wheel = build_wheel(where / "wheel")
    root = where / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(root)], where)
    made = Venv(root, wheel)
    made.pip_install(str(wheel), "pytest", "httpx")
    return made


@pytest.fixture
def serving(venv: Venv) -> Iterator[list[subprocess.Popen[str]]]:
    """The servers a test starts; each one still running at the end is killed."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def serve(venv: Venv, project: Path, procs: list[subprocess.Popen[str]]) -> tuple[subprocess.Popen[str], str]:
    """``python manage.py serve`` in ``project`` on a free port (``FASTPLUG_SERVER__PORT``), ready."""
    port = free_port()
    proc = subprocess.Popen(
        [venv.python, "manage.py", "serve"],
        cwd=project,
        env=venv.env(FASTPLUG_SERVER__PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{base}/health/live", limit=60)
    return proc, base


def stop_ok(proc: subprocess.Popen[str]) -> None:
    code, err = stop(proc)
    assert code == 0, err


def test_the_wheel_holds_only_the_fastplug_namespace(venv: Venv) -> None:
    with zipfile.ZipFile(venv.wheel) as wheel:
        names = wheel.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"fastplug", f"{venv.wheel.name.split('-py')[0]}.dist-info"}, tops
    assert "fastplug/core/scaffold/templates/project/.gitignore.tmpl" in names  # dotfiles ship
    assert "fastplug/core/scaffold/templates/project/settings.toml.tmpl" in names  # nested ones too


def test_a_new_user_makes_a_project_serves_it_tests_it_and_adds_plugins(
    venv: Venv, tmp_path: Path, serving: list[subprocess.Popen[str]]
) -> None:
    env = venv.env()
    run([venv.fastplug, "new", "myproj"], tmp_path, env)
    project = tmp_path / "myproj"
    assert (project / "migrations" / "README.md").is_file()
    assert "var/" in (project / ".gitignore").read_text().split()
    # the user's own top-level modules named like fastplug's folders
    (project / "config.py").write_text('WHO = "the user\'s config"\n')
    for package in ("core", "plugins"):
        (project / package).mkdir()
        (project / package / "__init__.py").write_text(f'WHO = "the user\'s {package}"\n')

    run([venv.python, "manage.py", "check"], project, env)
    run([venv.python, "-m", "pytest", "-q"], project, env)
    assert not (project / "var").exists(), "the tests wrote into the project's var/"

    proc, base = serve(venv, project, serving)
    assert httpx.get(f"{base}/health/live").status_code == 200
    ready = httpx.get(f"{base}/health/ready")
    assert ready.status_code == 200, ready.text
    hello = httpx.get(f"{base}/myproj/hello")
    assert hello.json() == {"message": "Hello from myproj"}
    # the security plugin, on in the new project: its headers, no server header, a bad Host refused
    assert hello.headers["x-content-type-options"] == "nosniff" and "server" not in hello.headers
    assert httpx.get(f"{base}/myproj/hello", headers={"host": "evil.example"}).status_code == 400
    stop_ok(proc)

    run([venv.fastplug, "new-plugin", "blog"], project, env)
    run([venv.fastplug, "new-plugin", "gadget", "--package"], project, env)
    venv.pip_install(str(project / "fastplug-gadget"))
    settings = project / "settings.toml"
    text = settings.read_text()
    assert '"myproj", "blog"]' in text  # enabled by its module path
    text = text.replace('"myproj", "blog"]', '"myproj", "blog", "gadget"]')
    # a rate limit, as the README shows it
    settings.write_text(text + '\n[default.security.rate_limits.routes]\n"GET /blog/*" = "2/minute"\n')
    # a mistake the profiling plugin finds: a blocking call in an async route
    routes = project / "myproj" / "routes.py"
    stuck = (
        '    @router.get("/stuck")\n    async def stuck() -> dict[str, str]:\n        import time\n\n'
        "        time.sleep(0.3)  # blocks the event loop\n        return {}\n\n    return router\n"
    )
    routes.write_text(routes.read_text().replace("    return router\n", stuck))
    stuck_line = routes.read_text().splitlines().index("        time.sleep(0.3)  # blocks the event loop") + 1

    proc, base = serve(venv, project, serving)
    assert httpx.get(f"{base}/blog/hello").json() == {"message": "Hello from blog"}
    assert httpx.get(f"{base}/blog/hello").headers["ratelimit-remaining"] == "0"
    limited = httpx.get(f"{base}/blog/hello")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "30"
    assert httpx.get(f"{base}/gadget/hello").json() == {"message": "Hello from gadget"}
    assert httpx.get(f"{base}/health/ready").status_code == 200
    # on-demand profiles in development (loopback), as the README shows them
    page = httpx.get(f"{base}/gadget/hello?_profile", timeout=30)
    assert page.headers["content-type"].startswith("text/html") and page.headers["x-profiled-status"] == "200"
    assert httpx.get(f"{base}/myproj/stuck", timeout=10).status_code == 200
    code, err = stop(proc)
    assert code == 0, err
    assert "event loop blocked for" in err and "by GET /myproj/stuck;" in err, err
    assert f'routes.py", line {stuck_line}, in stuck' in err, err
    profiled = run([venv.python, "manage.py", "profile", "GET", "/myproj/hello", "-n", "50"], project, env).stdout
    assert profiled.startswith("GET /myproj/hello: 50 requests (200 x50)"), profiled

    listed = run([venv.python, "manage.py", "plugins", "--json"], project, env).stdout
    assert '"source": "local blog"' in listed
    assert '"source": "fastplug-gadget 0.1.0"' in listed
    run([venv.python, "-m", "pytest", "-q"], project, env)  # myproj's and blog's
    run([venv.python, "-m", "pytest", "-q"], project / "fastplug-gadget", env)
