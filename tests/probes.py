"""In-process test plugins (passed to core through ``extra_plugins``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastplug.core import PluginInfo, hookimpl
from fastplug.core.services import Services


class Probe:
    """A configurable in-process plugin that records what happens to it."""

    def __init__(
        self,
        name: str,
        events: list[str],
        *,
        requires: tuple[str, ...] = (),
        after: tuple[str, ...] = (),
        fail_start: bool = False,
        hang_start: bool = False,
        fail_stop: bool = False,
        yields: Callable[[Services], Mapping[str, Any]] | None = None,
    ) -> None:
        self.name, self.events = name, events
        self.requires, self.after = requires, after
        self.fail_start, self.hang_start, self.fail_stop = fail_start, hang_start, fail_stop
        self.yields = yields

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name=self.name, requires=self.requires, after=self.after)

    @hookimpl
    def lifespan(self, services: Services) -> Any:
        @asynccontextmanager
        async def run() -> AsyncIterator[Mapping[str, Any] | None]:
            self.events.append(f"start:{self.name}")
            if self.fail_start:
                raise RuntimeError(f"{self.name} cannot start")
            if self.hang_start:
                await asyncio.sleep(30)
            yield self.yields(services) if self.yields else None
            self.events.append(f"stop:{self.name}")
            if self.fail_stop:
                raise RuntimeError(f"{self.name} cannot stop")

        return run()
