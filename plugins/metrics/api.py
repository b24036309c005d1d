"""The metrics plugin's public module: its operator access rule, as a service.

While the plugin runs, the service :data:`OPERATOR_ACCESS` is the :class:`fastplug.core.AccessRule`
of ``[metrics] allow`` and ``token``: the clients that may scrape. Other plugins use it for
what only the operator should see (the health plugin's readiness details default to it)::

    rule = services.get(OPERATOR_ACCESS)      # None when the metrics plugin is not running
    if rule is not None and rule.admits(request.scope): ...

or, in a handler, ``async def h(rule: OperatorAccess)``. Imports nothing heavy.
"""

from __future__ import annotations

from fastplug.core import AccessRule, service

OPERATOR_ACCESS = "metrics.operator_access"
"""The service key of the :class:`~fastplug.core.AccessRule` ``[metrics]`` configures."""

OperatorAccess = service(OPERATOR_ACCESS, AccessRule)
"""A FastAPI dependency for that rule (503 ``ServiceMissing`` if the plugin is not running)."""

__all__ = ["OPERATOR_ACCESS", "OperatorAccess"]
