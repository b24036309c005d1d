"""The profiling plugin's public module: the service it runs, and the on-demand flag names.

While the plugin runs with ``[profiling] loop_lag`` on, the service :data:`LOOP` is this
process's :class:`LoopFigures` (ticks, last and largest lag, blocks, blocked seconds by
route, the last stall): a readiness check or an admin route may read it. A request asks
for its own profile with ``?_profile=html|speedscope`` or the ``X-Profile`` header
(``[profiling] on_demand``). Imports nothing heavy.
"""

from __future__ import annotations

from fastplug.core import service
from fastplug.plugins.profiling.loop import LoopFigures

LOOP = "profiling.loop"
"""The service key of this process's :class:`LoopFigures`."""

PROFILE_QUERY = "_profile"
PROFILE_HEADER = "X-Profile"

Loop = service(LOOP, LoopFigures)
"""A FastAPI dependency for those figures (503 ``ServiceMissing`` if the monitor is not running)."""

__all__ = ["LOOP", "PROFILE_HEADER", "PROFILE_QUERY", "Loop", "LoopFigures"]
