"""The health endpoints.

``/health/ready`` shows everyone its status code, overall ``status`` and each check's name,
``status`` and ``critical``; each check's ``error``, ``detail`` and ``duration_ms`` (error
texts, hosts, user names, pool sizes) only to the operator: the clients the access rule of
:func:`detail_rule` admits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fastplug.core import LOOPBACK_ONLY, AccessRule, HealthCheck, one_line
from fastplug.plugins.health.settings import HealthSettings

_LIVE = b'{"status":"ok"}'
PUBLIC = ("status", "critical")  # what everyone sees of a check
NO_STORE = {"Cache-Control": "no-store"}  # the operator's answer must not be cached for others
# the service the metrics plugin offers (fastplug.plugins.metrics.api.OPERATOR_ACCESS), named
# here so that a disabled metrics plugin is not imported
OPERATOR_ACCESS = "metrics.operator_access"

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


def detail_rule(conf: HealthSettings) -> AccessRule | None:
    """The rule of ``[health] detail_allow`` / ``detail_token``; None when neither is set (then the
    metrics plugin's ``metrics.operator_access`` service while it runs, else loopback only)."""
    if conf.detail_allow is None and conf.detail_token is None:
        return None
    return AccessRule.build(conf.detail_allow, conf.detail_token)


def operator_rule(own: AccessRule | None, services: Any) -> AccessRule:
    """Who sees the details: ``[health]``'s own rule, the metrics plugin's, or loopback."""
    if own is not None:
        return own
    found = services.get(OPERATOR_ACCESS)
    return found if isinstance(found, AccessRule) else LOOPBACK_ONLY


def public(checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The checks as anyone may see them: ``status`` and ``critical`` only."""
    return {name: {key: result[key] for key in PUBLIC} for name, result in checks.items()}


def build_router(conf: HealthSettings) -> APIRouter:
    """``/live``: the process answers. ``/ready``: no critical check fails (within the budget)."""
    router = APIRouter(prefix=conf.prefix, tags=["health"], include_in_schema=conf.include_in_schema)
    down_headers = {"Retry-After": str(conf.retry_after), **NO_STORE}
    own = detail_rule(conf)

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
        if not operator_rule(own, runtime.services).admits(request.scope):
            named = public(named)
        body: dict[str, Any] = {"status": "fail" if down else "degraded" if degraded else "ok", "checks": named}
        if failed:
            body["failed"] = failed
        if degraded:
            body["degraded"] = degraded
        return JSONResponse(body, status_code=503 if down else 200, headers=down_headers if down else NO_STORE)

    return router
