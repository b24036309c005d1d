"""The health endpoints."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fastplug.core import HealthCheck, one_line
from fastplug.plugins.health.settings import HealthSettings

_LIVE = b'{"status":"ok"}'


async def _run(check: HealthCheck, services: Any, default_timeout: float) -> dict[str, Any]:
    timeout = check.timeout or default_timeout
    began = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            detail = await check.check(services)
    except TimeoutError:
        result: dict[str, Any] = {"status": "fail", "error": f"timed out after {timeout:g}s"}
    except Exception as exc:
        result = {"status": "fail", "error": one_line(exc)}
    else:
        result = {"status": "ok"}
        if detail is not None:
            result["detail"] = detail
    result["duration_ms"] = round((time.perf_counter() - began) * 1000, 2)
    return result


def build_router(conf: HealthSettings) -> APIRouter:
    """``/live``: the process answers. ``/ready``: every plugin's checks pass."""
    router = APIRouter(prefix=conf.prefix, tags=["health"], include_in_schema=conf.include_in_schema)

    @router.get("/live", name="health_live")
    async def live() -> Response:
        return Response(_LIVE, media_type="application/json")

    @router.get("/ready", name="health_ready", responses={503: {"description": "a check failed"}})
    async def ready(request: Request) -> JSONResponse:
        runtime = request.app.state.fastplug
        checks = runtime.health_checks
        services = runtime.services
        results = await asyncio.gather(*(_run(c, services, conf.timeout) for _, c in checks))
        named = {
            plugin if c.name == plugin else f"{plugin}.{c.name}": r
            for (plugin, c), r in zip(checks, results, strict=True)
        }
        failed = [name for name, r in named.items() if r["status"] != "ok"]
        body = {"status": "fail" if failed else "ok", "checks": named}
        if failed:
            body["failed"] = failed
        return JSONResponse(body, status_code=503 if failed else 200)

    return router
