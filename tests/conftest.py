"""Shared fixtures: core's own pytest plugin (core.testing) provides the fastplug_* ones."""

from __future__ import annotations

import pytest


@pytest.fixture
def events() -> list[str]:
    """What the probe plugins did, in order."""
    return []
