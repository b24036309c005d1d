"""``manage.py check`` for ``[profiling]``.

* ``profiling.E001``: ``on_demand`` or the ``profile`` command need pyinstrument, and it is not installed.
* ``profiling.W001``: outside development, ``on_demand`` is on without the metrics plugin's token
  or an explicit ``[profiling] allow``: who may profile is decided by address alone.
* ``profiling.W002``: ``slow_request_ms`` is 0 and ``loop_lag`` off: the plugin watches nothing.
"""

from __future__ import annotations

import importlib.util

from fastplug.config import Settings
from fastplug.core import CheckError, CheckMessage, CheckWarning
from fastplug.plugins.profiling.settings import ProfilingSettings


def profiling_checks(conf: ProfilingSettings, settings: Settings) -> list[CheckMessage]:
    out: list[CheckMessage] = []
    if conf.on_demand and importlib.util.find_spec("pyinstrument") is None:
        out.append(
            CheckError(
                "[profiling] on_demand = true needs pyinstrument, which is not installed",
                "profiling.E001",
                "pip install pyinstrument (fastplug depends on it: reinstall fastplug), or set on_demand = false",
                "profiling",
            )
        )
    if conf.on_demand and settings.env != "development":
        metrics = "metrics" in settings.plugins
        # with the metrics plugin on, its rule decides (and [profiling] allow is not read)
        guarded = _has_metrics_token(settings) if metrics else conf.allow is not None
        if not guarded:
            out.append(
                CheckWarning(
                    f"[profiling] on_demand = true in {settings.env} with no [metrics] token: profiles are "
                    "asked for by address alone (loopback, or [profiling] allow)",
                    "profiling.W001",
                    "set [metrics] token (profiles then need it), list [profiling] allow, or on_demand = false",
                    "profiling",
                )
            )
    if not conf.loop_lag and not conf.slow_request_ms and not conf.on_demand:
        out.append(
            CheckWarning(
                "[profiling] watches nothing: loop_lag is off, slow_request_ms is 0 and on_demand is off",
                "profiling.W002",
                'turn one on, or take "profiling" out of plugins',
                "profiling",
            )
        )
    return out


def _has_metrics_token(settings: Settings) -> bool:
    try:
        return getattr(settings.section("metrics"), "token", None) is not None
    except Exception:  # the metrics plugin's settings are invalid: its own check says so
        return False
