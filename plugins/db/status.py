"""``manage.py db status``: one aligned line per plugin with migrations, the app's last."""

from __future__ import annotations

from collections.abc import Sequence

from fastplug.plugins.db.migrations import BranchStatus

HEADER = ("plugin", "enabled", "current", "head", "state")


def render(statuses: Sequence[BranchStatus]) -> list[str]:
    """A header and one line per branch: plugin, enabled yes/no, current, head, state."""
    rows = [HEADER] + [
        (
            s.name,
            "yes" if s.enabled else "no",
            ",".join(s.current) or "-",
            "?" if s.heads is None else ",".join(s.heads) or "-",
            s.state,
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]) for row in rows]
