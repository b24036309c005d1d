"""Fake installed distributions: ``*.dist-info`` + ``entry_points.txt`` + plugin modules.

A :class:`FakeDists` directory is put on ``sys.path`` so ``importlib.metadata`` finds its
distributions and core discovers their ``fastplug`` entry points exactly like those of
a pip-installed package. Subprocesses get the same directory through :meth:`env`.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

# Helper module every fake plugin may import: records lifespan events in order, in
# ``EVENTS`` (in-process) and as ``event: <text>`` lines on stderr (subprocesses).
RECORDER_MODULE = "fp_events"
_RECORDER_SOURCE = '''\
"""Lifespan events of the fake plugins, in order."""

import sys

EVENTS: list[str] = []


def record(event: str) -> None:
    EVENTS.append(event)
    print(f"event: {event}", file=sys.stderr, flush=True)
'''


class FakeDists:
    """A temp directory of fake distributions, on ``sys.path`` for the test's duration."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{RECORDER_MODULE}.py").write_text(_RECORDER_SOURCE)
        monkeypatch.syspath_prepend(str(root))  # also invalidates importlib's caches

    def add(
        self,
        dist: str,
        version: str = "1.0",
        entry_points: Mapping[str, str] | None = None,
        modules: Mapping[str, str] | None = None,
    ) -> None:
        """Install distribution ``dist``: ``entry_points`` maps plugin name -> ``module[:attr]``
        in the ``fastplug`` group; ``modules`` maps module name -> source, written beside it."""
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[fastplug]", *(f"{name} = {target}" for name, target in (entry_points or {}).items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()

    def plugin(self, name: str, body: str = "", **info: object) -> str:
        """Install a one-plugin distribution ``fp-<name>`` 1.0 whose module ``fp_<name>``
        comes from :func:`plugin_source`; returns the distribution name."""
        module = f"fp_{name}"
        self.add(f"fp-{name}", "1.0", {name: module}, {module: plugin_source(name, body, **info)})
        return f"fp-{name}"

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) with this directory first on ``PYTHONPATH``."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.root), env.get("PYTHONPATH", "")) if p)
        return env

    @property
    def events(self) -> list[str]:
        """Lifespan events recorded in this process so far."""
        module = sys.modules.get(RECORDER_MODULE)
        return list(module.EVENTS) if module is not None else []

    def cleanup(self) -> None:
        """Forget every module imported from this directory (the next test gets fresh ones)."""
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file and Path(file).is_relative_to(self.root):
                del sys.modules[name]
        importlib.invalidate_caches()


def plugin_source(
    name: str,
    body: str = "",
    fields: Iterable[str] = (),
    requires: Iterable[str] = (),
    after: Iterable[str] = (),
) -> str:
    """Source of a plugin module: ``plugin_info`` for ``name`` with a settings model of
    ``fields`` (``"key: int = 1"`` lines; ``SecretStr`` and ``Field`` are imported), plus ``body``."""
    field_lines = "\n".join(f"    {line}" for line in fields) or "    pass"
    return (
        textwrap.dedent(
            """\
            import asyncio
            from contextlib import asynccontextmanager

            from pydantic import AnyUrl, Field, PostgresDsn, SecretStr

            from fastplug.config.models import PluginSettings
            from fastplug.core import PluginInfo, hookimpl
            from fp_events import record


            class Conf(PluginSettings):
            {fields}


            @hookimpl
            def plugin_info():
                return PluginInfo(name={name!r}, settings=Conf, requires={requires!r}, after={after!r})
            """
        ).format(fields=field_lines, name=name, requires=tuple(requires), after=tuple(after))
        + "\n\n"
        + textwrap.dedent(body)
    )


def lifespan_body(name: str, before_yield: str = "") -> str:
    """A ``lifespan`` hook recording ``<name>.start``/``<name>.stop``; ``before_yield`` runs
    after the start event (raise or sleep there to fail the startup)."""
    return textwrap.dedent(
        f"""\
        @hookimpl
        def lifespan():
            @asynccontextmanager
            async def run():
                record("{name}.start")
                {before_yield or "pass"}
                try:
                    yield {{"{name}.ready": True}}
                finally:
                    record("{name}.stop")

            return run()
        """
    )
