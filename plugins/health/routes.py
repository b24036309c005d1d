"""The health endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fastplug.core import HealthCheck, one_line
from fastplug.plugins.health.settings import HealthSettings

_LIVE = b'{"status":"ok"}'

# Checks cut at the budget whose cancellation has not finished yet: kept referenced until it has.
_abandoned: set[asyncio.Task[dict[str, Any]]] = set()


@dataclass(frozen=True, slots=True)
class Planned:
    """One check as ``/health/ready`` runs it: its public name, criticality and timeout."""

    name: str
    check: HealthCheck
    critical: bool
    timeout: float


def check_name(plugin: str, check: HealthCheck) -> str:
    """The name shown on ``/health/ready``: ``db``, or ``<plugin>.<check>`` (``kv.ping``)."""
    return plugin if check.name == plugin else f"{plugin}.{check.name}"


def plan(checks: Sequence[tuple[str, HealthCheck]], conf: HealthSettings) -> list[Planned]:
    """Each check with ``[health] critical`` applied and its timeout capped at the budget."""
    out = []
    for plugin, check in checks:
        name = check_name(plugin, check)
        timeout = min(check.timeout or conf.timeout, conf.timeout)
        out.append(Planned(name, check, conf.critical.get(name, check.critical), timeout))
    return out


def unknown_names(checks: Sequence[tuple[str, HealthCheck]], conf: HealthSettings) -> list[str]:
    """Names in ``[health] critical`` that no health check has."""
    known = {check_name(plugin, check) for plugin, check in checks}
    return sorted(set(conf.critical) - known)


async def _run(planned: Planned, services: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"status": "ok", "critical": planned.critical}
    began = time.perf_counter()
    try:
        async with asyncio.timeout(planned.timeout):
            detail = await planned.check.check(services)
    except TimeoutError:
        result |= {"status": "fail", "error": f"timed out after {planned.timeout:g}s"}
    except Exception as exc:
        result |= {"status": "fail", "error": one_line(exc)}
    else:
        if detail is not None:
            result["detail"] = detail
    result["duration_ms"] = round((time.perf_counter() - began) * 1000, 2)
    return result


def _forget(task: asyncio.Task[dict[str, Any]]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at exit


def _abandon(task: asyncio.Task[dict[str, Any]]) -> None:
    """Cancel a check past the budget without waiting for its clean-up."""
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_forget)


async def run_checks(planned: Sequence[Planned], services: Any, budget: float) -> list[dict[str, Any]]:
    """Run every check concurrently; answer within ``budget`` seconds even if one hangs
    (or hangs again while being cancelled): what is still running then has timed out."""
    began = time.perf_counter()
    tasks = [asyncio.create_task(_run(p, services), name=f"health:{p.name}") for p in planned]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, timeout=budget)
    finally:
        for task in tasks:
            if not task.done():
                _abandon(task)
    results = []
    for p, task in zip(planned, tasks, strict=True):
        if task.done() and not task.cancelled():
            results.append(task.result())
            continue
        elapsed = round((time.perf_counter() - began) * 1000, 2)
        error = f"timed out after {p.timeout:g}s"
        results.append({"status": "fail", "critical": p.critical, "error": error, "duration_ms": elapsed})
    return results


def build_router(conf: HealthSettings) -> APIRouter:
    """``/live``: the process answers. ``/ready``: no critical check fails (within the budget)."""
    router = APIRouter(prefix=conf.prefix, tags=["health"], include_in_schema=conf.include_in_schema)
    retry_after = {"Retry-After": str(conf.retry_after)}

    @router.get("/live", name="health_live")
    async def live() -> Response:
        return Response(_LIVE, media_type="application/json")

    @router.get("/ready", name="health_ready", responses={503: {"description": "a critical check failed"}})
    async def ready(request: Request) -> JSONResponse:
        runtime = request.app.state.fastplug
        planned = plan(runtime.health_checks, conf)
        results = await run_checks(planned, runtime.services, conf.timeout)
        named = {p.name: r for p, r in zip(planned, results, strict=True)}
        failed = [p.name for p in planned if named[p.name]["status"] != "ok"]
        degraded = [p.name for p in planned if p.name in failed and not p.critical]
        down = len(failed) > len(degraded)  # a critical check failed
        body: dict[str, Any] = {"status": "fail" if down else "degraded" if degraded else "ok", "checks": named}
        if failed:
            body["failed"] = failed
        if degraded:
            body["degraded"] = degraded
        return JSONResponse(body, status_code=503 if down else 200, headers=retry_after if down else None)

    return router
