"""Serve a fastplug benchmark target the way ``manage.py serve`` serves one worker: uvicorn
with fastplug's own HTTP protocol (``[server]``'s head limits, header timeout and connection
cap), uvloop, the app frozen for the GC. The app is ``fastplug_app.create()``.

Run: ``python benchmarks/baselines/fastplug_serve.py PORT`` (host 127.0.0.1).
"""

from __future__ import annotations

import sys

import uvicorn
from fastplug_app import create

from fastplug.core.serve import http_protocol


def main(port: int) -> None:
    """Build the app from ``$FASTPLUG_SETTINGS`` and serve it on ``127.0.0.1:port``."""
    app = create()
    runtime = getattr(app, "state", None) and app.state.fastplug
    server = runtime.settings.core.server if runtime else None
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="auto",
        http=http_protocol(server) if server is not None else "auto",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=server.keepalive if server is not None else 5,
        backlog=server.backlog if server is not None else 2048,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
