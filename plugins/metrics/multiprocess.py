"""prometheus-client's multiprocess mode for ``serve --workers N``.

Each worker writes its metric values to files in one directory; a scrape, whichever worker
answers it, sums them. The directory must be known before a worker imports
prometheus-client (it picks its value class at import), so the serve process sets
``PROMETHEUS_MULTIPROC_DIR`` before forking; nothing imports prometheus-client there first.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("fastplug.metrics")


def prepare(configured: str | None, workers: int) -> Path | None:
    """Set up the directory when several workers will serve (or one was set already):
    create it, wipe what an earlier run left, export it. Returns it, or None."""
    given = configured or os.environ.get(MULTIPROC_ENV)
    if workers <= 1 and not given:
        return None
    if given:
        path = Path(given).resolve()
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="fastplug-metrics-"))
        owner = os.getpid()
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))
    os.environ[MULTIPROC_ENV] = str(path)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:  # imported already (by another plugin): switch before any metric exists
        log.warning("metrics: prometheus_client was imported before serve started; switching to multiprocess mode")
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    log.info("metrics: multiprocess mode, %d workers, directory %s", workers, path)
    return path


def mark_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters stay in the sums)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)
