"""FastAPI's native OpenTelemetry under fastplug: asked once when serving starts, not on each
request (``FastplugApp.serving_started``); with a tracer provider configured, every request
is still traced as FastAPI traces it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient


def test_without_a_provider_requests_skip_the_check(fastplug_app_factory: Callable[..., FastAPI]) -> None:
    app = fastplug_app_factory(plugins=["health", "metrics"])
    telemetry: Any = app._native_telemetry  # type: ignore[attr-defined]
    asked = []
    real = telemetry.enabled
    telemetry.enabled = lambda: asked.append(1) or real()
    with TestClient(app) as client:
        for _ in range(5):
            assert client.get("/health/live").status_code == 200
        assert client.get("/nowhere").status_code == 404
        assert app.direct is not None  # type: ignore[attr-defined]
    assert len(asked) == 1  # once, when every plugin had started
    assert app.direct is None  # type: ignore[attr-defined]  # stopped: FastAPI's own entry again


SCRIPT = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from fastapi.testclient import TestClient

from fastplug.core.app import create_app

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # as opentelemetry-instrument or an app's startup does

app = create_app({settings!r})
with TestClient(app) as client:
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/live").status_code == 200
for span in exporter.get_finished_spans():
    print(span.name, dict(span.attributes or {{}}).get("http.response.status_code"))
"""


def test_a_configured_provider_still_traces_each_request(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed (pip install -e .[test])")
    settings = tmp_path / "settings.toml"
    settings.write_text('[default]\nplugins = ["health", "metrics"]\n')
    script = tmp_path / "traced.py"
    script.write_text(textwrap.dedent(SCRIPT.format(settings=str(settings))))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    spans = [line for line in done.stdout.splitlines() if line.startswith("GET /health/live")]
    assert spans == ["GET /health/live 200", "GET /health/live 200"], done.stdout
