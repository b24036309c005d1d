"""Problems found while loading settings or plugins, reported together."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration, as a single line.

    ``id`` is a Django-style check id (``fastplug.E001``); ``hint`` says how to fix it.
    """

    id: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class FastplugError(Exception):
    """One or more configuration problems; ``str()`` gives one line per problem."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
