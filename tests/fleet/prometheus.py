"""A Prometheus server (Debian's ``prometheus``) on loopback, scraping every app host's
metrics port each second, for PromQL queries about the fleet."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from chaos.instances import free_port

from fastplug.core.testing import require_tool
from fleet.services import wait

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: fastplug
    static_configs:
      - targets: [{targets}]
"""


class Prometheus:
    """``query(promql, at)``: the instant vector's samples as ``{labels: value}``."""

    def __init__(self, where: Path, targets: Sequence[str]) -> None:
        binary = require_tool("prometheus")
        where.mkdir(parents=True, exist_ok=True)
        config = where / "prometheus.yml"
        config.write_text(CONFIG.format(targets=", ".join(f'"{t}"' for t in targets)))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={where / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        log = open(where / "prometheus.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait(lambda: httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200, "prometheus to be ready", 60)

    def query(self, promql: str, at: float | None = None) -> dict[tuple[tuple[str, str], ...], float]:
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        answer = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return {
            tuple(sorted(sample["metric"].items())): float(sample["value"][1]) for sample in answer["data"]["result"]
        }

    def targets_up(self) -> dict[str, str]:
        """Each scrape target's health (``up``, ``down``, ``unknown``)."""
        active = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return {t["labels"]["instance"]: t["health"] for t in active}

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
