"""Load the enabled plugins into a pluggy manager, validate them, order them."""

from __future__ import annotations

import difflib
import graphlib
import importlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from fastplug.config.errors import FastplugError, Problem
from fastplug.config.masking import mask_secrets
from fastplug.config.models import CoreSettings, PluginSettings
from fastplug.config.settings import Settings, plugin_name
from fastplug.config.sources import RawSettings
from fastplug.config.validation import validate_section
from fastplug.core import hookspecs
from fastplug.core.discovery import PluginSource, clash_problem, discover, local_source
from fastplug.core.hookresults import async_hook_problems, wrong_result
from fastplug.core.markers import PROJECT
from fastplug.core.specs import PluginInfo

CORE_HOOKS = frozenset(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), f"{PROJECT}_spec"))


class PluginHookError(Exception):
    """A plugin's hook raised while core was building something; names the plugin."""

    def __init__(self, plugin: str, hook: str, exc: BaseException) -> None:
        self.plugin, self.hook, self.original = plugin, hook, exc
        super().__init__(f"plugin '{plugin}': hook {hook} failed: {one_line(exc)}")


class PluginResultError(PluginHookError):
    """A plugin's hook returned something core cannot use; names the plugin, the hook and what was expected."""

    def __init__(self, plugin: str, hook: str, detail: str, hint: str | None = None) -> None:
        self.plugin, self.hook, self.original = plugin, hook, self
        self.detail, self.hint = detail, hint
        self.problem = Problem("fastplug.E028", f"plugin '{plugin}': {detail}", hint)
        Exception.__init__(self, str(self.problem))

    @property
    def reason(self) -> str:
        """What is wrong, without the plugin's name: ``detail (hint: ...)``."""
        return f"{self.detail} (hint: {self.hint})" if self.hint else self.detail


def one_line(exc: BaseException) -> str:
    """``ExcType: message`` on one line, URL passwords and secret parameters masked (a
    driver's error may quote its DSN; this text goes to logs, ``check`` and responses)."""
    text = " ".join(str(exc).split())
    return mask_secrets(f"{type(exc).__name__}: {text}") if text else type(exc).__name__


@dataclass(slots=True)
class LoadedPlugin:
    """An enabled plugin: where it came from, what it declared, its validated settings."""

    name: str
    source: PluginSource
    obj: Any
    info: PluginInfo
    settings: PluginSettings | None = None
    hooks: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        """The plugin's declared version, else its distribution's."""
        return self.info.version or self.source.version or "?"


@dataclass(slots=True)
class Plugins:
    """The enabled plugins in start order, and the pluggy manager holding them."""

    pm: pluggy.PluginManager
    ordered: list[LoadedPlugin]
    known: dict[str, PluginSource]

    def __iter__(self) -> Iterator[LoadedPlugin]:
        return iter(self.ordered)

    @property
    def names(self) -> list[str]:
        """Enabled plugin names in start order."""
        return [p.name for p in self.ordered]

    def call_each(self, hook: str, problems: list[Problem] | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call ``hook`` on each plugin in start order: ``[(plugin, result), ...]``.

        Unlike ``pm.hook.<name>(...)`` the caller knows which plugin returned what,
        and the order is the dependency order. ``None`` results are dropped. A wrong
        result (see :mod:`fastplug.core.hookresults`) raises :class:`PluginResultError`, or, when
        ``problems`` is given, is appended to it and left out so every plugin is checked.
        """
        out = []
        for name in self.names:
            try:
                result = self.call_each_one(name, hook, **kwargs)
            except PluginResultError as exc:
                if problems is None:
                    raise
                problems.append(exc.problem)
                continue
            if result is not None:
                out.append((name, result))
        return out

    def call_each_one(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on one plugin; ``None`` when it does not implement it.

        Raises :class:`PluginHookError` when the hook raises, :class:`PluginResultError`
        when it returns what the hook must not.
        """
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == plugin and not (impl.hookwrapper or impl.wrapper):
                try:
                    result = impl.function(*(kwargs[a] for a in impl.argnames))
                except Exception as exc:
                    raise PluginHookError(plugin, hook, exc) from exc
                wrong = wrong_result(hook, result)
                if wrong is not None:
                    raise PluginResultError(plugin, hook, *wrong)
                return result
        return None


def _import(source: PluginSource) -> Any:
    if source.obj is not None:
        return source.obj
    if source.entry_point is not None:
        return source.entry_point.load()
    return importlib.import_module(source.target)


# pluggy's message for an implementation taking arguments its hookspec does not have
_BAD_ARGS = re.compile(
    r"for hook '(?P<hook>\w+)'.*?hookimpl definition: (?P<sig>\S.*?\))\s.*?Argument\(s\) (?P<args>\{.*?\})"
)


def _validation_problem(name: str, exc: pluggy.PluginValidationError, pm: pluggy.PluginManager) -> Problem:
    text = " ".join(str(exc).split())
    found = _BAD_ARGS.search(text)
    if found is None:
        return Problem("fastplug.E024", f"plugin '{name}': invalid hook implementation: {text}")
    spec = getattr(pm.hook, found["hook"]).spec
    allowed = ", ".join(spec.argnames) if spec is not None else ""
    return Problem(
        "fastplug.E024",
        f"plugin '{name}': invalid hook implementation: {found['sig']} takes argument(s) "
        f"{found['args']} that the hook does not pass",
        f"{found['hook']} accepts any of ({allowed})",
    )


def _hook_functions(pm: pluggy.PluginManager, plugin: str) -> dict[str, Any]:
    """The functions ``plugin`` implements hooks with, by hook name."""
    return {
        hook: impl.function
        for hook, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller)
        for impl in caller.get_hookimpls()
        if impl.plugin_name == plugin
    }


def _unknown_hooks(pm: pluggy.PluginManager, enabled: set[str]) -> list[Problem]:
    problems = []
    specced = [n for n, c in vars(pm.hook).items() if isinstance(c, pluggy.HookCaller) and c.has_spec()]
    for hook_name, caller in vars(pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook or impl.plugin_name not in enabled:
                continue
            close = difflib.get_close_matches(hook_name, specced, n=1)
            problems.append(
                Problem(
                    "fastplug.E025",
                    f"plugin '{impl.plugin_name}' implements unknown hook '{hook_name}'",
                    f"did you mean '{close[0]}'?"
                    if close
                    else "mark hooks of optional plugins @hookimpl(optionalhook=True)",
                )
            )
    return problems


def _missing_requirement(name: str, req: str, known: Mapping[str, PluginSource]) -> Problem:
    """``req`` is installed but not enabled (E030), or not a known plugin at all (E032)."""
    if req in known:
        return Problem(
            "fastplug.E030",
            f"plugin '{name}' requires '{req}', which is not enabled",
            f"add '{req}' to plugins in settings.toml",
        )
    close = difflib.get_close_matches(req, list(known), n=1)
    return Problem(
        "fastplug.E032",
        f"plugin '{name}' requires '{req}', which is not installed"
        + (f" (did you mean '{close[0]}'?)" if close else ""),
        f"install it (pip install the distribution that provides '{req}') or, if it is a local plugin, "
        "list it by module path in plugins in settings.toml",
    )


def _order(
    infos: dict[str, PluginInfo], listed: list[str], known: Mapping[str, PluginSource]
) -> tuple[list[str], list[Problem]]:
    problems: list[Problem] = []
    graph: dict[str, set[str]] = {}
    for name, info in infos.items():
        deps = set()
        for req in info.requires:
            if req in infos:
                deps.add(req)
            else:
                problems.append(_missing_requirement(name, req, known))
        deps.update(a for a in info.after if a in infos)
        graph[name] = deps
    sorter = graphlib.TopologicalSorter(graph)
    position = {n: i for i, n in enumerate(listed)}
    order: list[str] = []
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        return listed, [
            *problems,
            Problem("fastplug.E031", f"plugins form a dependency cycle: {cycle}", "break it in requires/after"),
        ]
    while sorter.is_active():
        for name in sorted(sorter.get_ready(), key=lambda n: position.get(n, len(position))):
            order.append(name)
            sorter.done(name)
    return order, problems


def _unknown_plugin(file: str, entry: str, known: Mapping[str, PluginSource]) -> Problem:
    close = difflib.get_close_matches(entry, list(known), n=1)
    return Problem(
        "fastplug.E020",
        f"{file}: unknown plugin '{entry}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
        f"known plugins: {', '.join(sorted(known))}; install third-party ones with pip, or list a local "
        "plugin by its module path from the settings file's directory (e.g. 'app.plugins.blog')",
    )


def load_plugins(
    raw: RawSettings, core: CoreSettings, extra: Mapping[str, Any] | None = None
) -> tuple[Settings, Plugins]:
    """Load, register, validate and order the enabled plugins.

    Disabled plugins are blocked before anything is imported. Every problem found
    (unknown names, import failures, bad hooks, missing requirements, cycles, settings
    errors) is collected and raised together as one :class:`FastplugError`.
    ``extra`` adds plugin objects by name, as if installed (tests, embedding apps).
    """
    problems: list[Problem] = []
    known, clashes = discover(extra)
    entries = {plugin_name(entry): entry for entry in reversed(core.plugins)}  # first listing wins
    enabled = list(dict.fromkeys(plugin_name(entry) for entry in core.plugins))
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in known:
        if name not in enabled:
            pm.set_blocked(name)

    objects: dict[str, Any] = {}
    for name in enabled:
        entry = entries[name]
        if name in clashes:
            problems.append(clash_problem(name, clashes[name]))
            continue
        source = known.get(name) if entry == name else None
        if source is None:
            local = local_source(entry, raw.path.parent)
            if local is not None and name in known:
                problems.append(clash_problem(name, [known[name], local]))
                continue
            if local is None:
                problems.append(_unknown_plugin(raw.path.name, entry, known))
                continue
            source = known[name] = local
        try:
            obj = _import(source)
        except Exception as exc:
            problems.append(
                Problem(
                    "fastplug.E022",
                    f"plugin '{name}' ({source.origin}) failed to import: {one_line(exc)}",
                    None
                    if source.builtin
                    else f"fix {source.path}"
                    if source.path
                    else f"reinstall or fix the distribution '{source.distribution}'",
                )
            )
            continue
        try:
            pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            problems.append(_validation_problem(name, exc, pm))
            continue
        except ValueError as exc:  # the same object registered under two names
            problems.append(Problem("fastplug.E021", f"plugin '{name}': {one_line(exc)}"))
            continue
        objects[name] = obj

    plugins = Plugins(pm=pm, ordered=[], known=known)
    plugins.ordered = [LoadedPlugin(n, known[n], o, PluginInfo(n)) for n, o in objects.items()]
    try:
        plugins.call_each("add_hookspecs", pm=pm)
    except PluginResultError as exc:
        problems.append(exc.problem)
    except PluginHookError as exc:
        if isinstance(exc.original, pluggy.PluginValidationError):
            problems.append(_validation_problem(exc.plugin, exc.original, pm))
        else:
            problems.append(Problem("fastplug.E023", str(exc)))
    problems.extend(_unknown_hooks(pm, set(objects)))
    for name in objects:
        problems.extend(async_hook_problems(name, _hook_functions(pm, name)))

    infos: dict[str, PluginInfo] = {}
    for loaded in plugins.ordered:
        impl = [i for i in pm.hook.plugin_info.get_hookimpls() if i.plugin_name == loaded.name]
        if not impl:
            problems.append(Problem("fastplug.E026", f"plugin '{loaded.name}' does not implement the plugin_info hook"))
            continue
        try:
            info = impl[0].function()
        except Exception as exc:
            problems.append(
                Problem("fastplug.E023", f"plugin '{loaded.name}': hook plugin_info failed: {one_line(exc)}")
            )
            continue
        if not isinstance(info, PluginInfo) or info.name != loaded.name:
            problems.append(
                Problem(
                    "fastplug.E026",
                    f"plugin '{loaded.name}': plugin_info must return "
                    f"PluginInfo(name='{loaded.name}', ...), got {info!r}",
                )
            )
            continue
        loaded.info = info
        loaded.hooks = sorted(
            hook
            for hook, caller in vars(pm.hook).items()
            if isinstance(caller, pluggy.HookCaller)
            and any(i.plugin_name == loaded.name for i in caller.get_hookimpls())
        )
        infos[loaded.name] = info

    order, order_problems = _order(infos, enabled, known)
    problems.extend(order_problems)
    by_name = {p.name: p for p in plugins.ordered if p.name in infos}
    plugins.ordered = [by_name[n] for n in order if n in by_name]

    settings = Settings(raw=raw, core=core)
    for loaded in plugins.ordered:
        if loaded.name in CoreSettings.SECTIONS or loaded.name in CoreSettings.model_fields:
            problems.append(Problem("fastplug.E027", f"plugin '{loaded.name}': the name is reserved for core settings"))
            continue
        model, section_problems = validate_section(
            loaded.info.settings, raw.values.get(loaded.name), raw, (loaded.name,)
        )
        problems.extend(section_problems)
        if model is not None:
            loaded.settings = model
            settings.sections[loaded.name] = model

    if problems:
        raise FastplugError(problems)
    return settings, plugins
