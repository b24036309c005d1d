"""pluggy markers for the ``fastplug`` project."""

import pluggy

PROJECT = "fastplug"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
