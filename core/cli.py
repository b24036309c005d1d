"""``manage.py``: serve, check, plugins, routes, settings, and plugin commands."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click

from fastplug.config.errors import FastplugError, Problem
from fastplug.config.masking import mask_secrets
from fastplug.config.settings import Settings
from fastplug.core.hookresults import wrong_result
from fastplug.core.manager import PluginHookError, Plugins, one_line
from fastplug.core.specs import CheckError, CheckMessage, CheckWarning


@dataclass(slots=True)
class CliContext:
    """What commands share: the chosen settings file/environment, loaded on first use."""

    settings_path: str | None = None
    env: str | None = None
    traceback: bool = False
    _loaded: tuple[Settings, Plugins] | None = field(default=None, repr=False)

    def load(self) -> tuple[Settings, Plugins]:
        """Settings and plugins; on any problem, print them all and exit 1."""
        if self._loaded is None:
            from fastplug.core.bootstrap import load

            try:
                self._loaded = load(self.settings_path, self.env)
            except FastplugError as exc:
                self.fail(exc)
        return self._loaded

    def fail(self, exc: FastplugError | Exception) -> NoReturn:
        """Print a one-line error per problem (a traceback only with --traceback); exit 1."""
        if self.traceback:
            raise exc
        problems = exc.problems if isinstance(exc, FastplugError) else [Problem("fastplug.E000", str(exc))]
        for problem in problems:
            click.echo(f"error: {mask_secrets(str(problem))}", err=True)
        sys.exit(1)


def get_context() -> CliContext:
    """The :class:`CliContext` of the running command (for plugin commands)."""
    return click.get_current_context().ensure_object(CliContext)


ROOT_OPTIONS = "fastplug.root_options"
_VALUE_OPTIONS = {"--settings": "settings_path", "--env": "env"}


def root_options(args: Sequence[str]) -> dict[str, str]:
    """``--settings``/``--env`` (``--opt VALUE`` or ``--opt=VALUE``) given before the command name."""
    found: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] != "--":
        arg = rest.pop(0)
        option, eq, value = arg.partition("=")
        if option in _VALUE_OPTIONS:
            if not eq:
                if not rest:
                    break
                value = rest.pop(0)
            found[_VALUE_OPTIONS[option]] = value
    return found


def _plugin_commands(ctx: click.Context) -> dict[str, click.Command]:
    root = ctx.find_root()
    cached = root.meta.get("fastplug.commands")
    if cached is not None:
        return cached
    commands: dict[str, click.Command] = {}
    # --settings/--env as pre-parsed from argv: --help lists commands before root params exist
    options = root.meta.get(ROOT_OPTIONS, root.params)
    try:
        from fastplug.core.bootstrap import load

        loaded = load(options.get("settings_path"), options.get("env"))
        root.meta["fastplug.loaded"] = loaded  # the command reuses it: one load per run
        problems: list[Problem] = []
        for _plugin, result in loaded[1].call_each("register_commands", problems):
            for command in result:
                commands[command.name or ""] = command
        if problems:  # the good plugins' commands still work; check reports these too
            raise FastplugError(problems)
    except (FastplugError, PluginHookError) as exc:
        root.meta["fastplug.load_error"] = exc  # reported if the command asked for is unknown
    root.meta["fastplug.commands"] = commands
    return commands


class FastplugGroup(click.Group):
    """Core commands plus those plugins contribute through ``register_commands``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Before click parses anything: --help and the command lookup need the plugins of
        # the settings file the user chose, not of ./settings.toml.
        ctx.meta[ROOT_OPTIONS] = root_options(args)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *sorted(set(_plugin_commands(ctx)) - set(self.commands))]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name) or _plugin_commands(ctx).get(cmd_name)
        error = ctx.find_root().meta.get("fastplug.load_error")
        if command is None and error is not None and not ctx.resilient_parsing:
            # Perhaps a plugin command: the plugins could not load, so say why.
            traceback = bool(ctx.find_root().params.get("traceback"))
            CliContext(traceback=traceback).fail(error)
        return command


@click.group(cls=FastplugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--settings", "settings_path", metavar="PATH", help="settings file (default: $FASTPLUG_SETTINGS or ./settings.toml)"
)
@click.option("--env", metavar="NAME", help="environment (default: $FASTPLUG_ENV or development)")
@click.option("--traceback", is_flag=True, help="show full tracebacks on errors")
@click.pass_context
def cli(ctx: click.Context, settings_path: str | None, env: str | None, traceback: bool) -> None:
    """fastplug: a FastAPI app assembled from settings.toml and plugins."""
    ctx.obj = CliContext(settings_path, env, traceback, ctx.meta.get("fastplug.loaded"))


@cli.command()
@click.option("--host", help="bind address (default: [server] host)")
@click.option("--port", type=int, help="port (default: [server] port)")
@click.option("--workers", type=click.IntRange(1, 256), help="processes; > 1 runs gunicorn with uvicorn workers")
@click.option("--reload", is_flag=True, help="restart on code or settings changes (development)")
@click.pass_obj
def serve(obj: CliContext, host: str | None, port: int | None, workers: int | None, reload: bool) -> None:
    """Serve the app (uvicorn; gunicorn + uvicorn-worker for several workers)."""
    from fastplug.core.serve import run_gunicorn, run_uvicorn

    settings, plugins = obj.load()
    changes = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    server = settings.core.server.model_copy(update=changes)
    try:
        plugins.call_each("serve_starting", settings=settings, plugins=plugins, workers=1 if reload else server.workers)
        if reload or server.workers == 1:
            code = run_uvicorn(settings, plugins, server, reload, obj.traceback)
        else:
            code = run_gunicorn(settings, plugins, server, obj.traceback)
    except (FastplugError, PluginHookError) as exc:
        obj.fail(exc)
    sys.exit(code)


def _owned(plugin: str, messages: Sequence[CheckMessage]) -> list[CheckMessage]:
    """Messages attributed to the plugin that returned them (Django's ``obj``)."""
    return [m if m.obj else dataclasses.replace(m, obj=plugin) for m in messages]


def _run_checks(settings: Settings, plugins: Plugins) -> list[CheckMessage]:
    from fastplug.core.app import build_app

    messages: list[CheckMessage] = []
    known = set(plugins.known) | set(type(settings.core).model_fields)
    for section in settings.core.extra_sections:
        if section not in known:
            messages.append(
                CheckWarning(
                    f"{settings.path.name}: [{section}] belongs to no known plugin and is ignored",
                    "fastplug.W001",
                    "check the spelling, or install the plugin",
                )
            )
    for name in plugins.known:
        if name in settings.core.extra_sections and name not in settings.plugins:
            messages.append(
                CheckMessage("info", f"plugin '{name}' has settings but is not enabled", "fastplug.I001", obj=name)
            )
    if settings.core.debug and settings.env == "production":
        messages.append(
            CheckWarning("debug is on in production: errors show tracebacks", "fastplug.W002", "set debug = false")
        )
    server = settings.core.server
    if server.proxy_headers and "*" in (ip.strip() for ip in server.forwarded_allow_ips.split(",")):
        messages.append(
            CheckWarning(
                '[server] forwarded_allow_ips = "*" with proxy_headers: any client can claim any address with '
                "X-Forwarded-For, and pass the address allowlists ([metrics] allow)",
                "fastplug.W003",
                "set forwarded_allow_ips to the address of your reverse proxy",
            )
        )
    try:
        build_app(settings, plugins)
    except FastplugError as exc:
        messages.extend(CheckError(p.message, p.id, p.hint) for p in exc.problems)
    problems: list[Problem] = []
    plugins.call_each("register_commands", problems)
    results = plugins.call_each("check", problems, settings=settings)
    messages.extend(CheckError(p.message, p.id, p.hint) for p in problems)
    pending = [(name, r) for name, r in results if inspect.isawaitable(r)]
    for name, result in results:
        if not inspect.isawaitable(result):
            messages.extend(_owned(name, result))
    if pending:

        async def gather() -> list[Any]:
            return await asyncio.gather(*(r for _, r in pending), return_exceptions=True)

        for (name, _), outcome in zip(pending, asyncio.run(gather()), strict=True):
            if isinstance(outcome, BaseException):
                messages.append(CheckError(f"check failed: {one_line(outcome)}", "fastplug.E050", obj=name))
            elif (wrong := wrong_result("check", outcome)) is not None:
                messages.append(CheckError(f"plugin '{name}': {wrong[0]}", "fastplug.E028", wrong[1]))
            else:
                messages.extend(_owned(name, outcome or ()))
    return messages


@cli.command()
@click.pass_obj
def check(obj: CliContext) -> None:
    """Validate settings and plugins and run every plugin's checks (exit 1 on errors)."""
    from fastplug.core.bootstrap import load

    try:
        settings, plugins = load(obj.settings_path, obj.env)
    except FastplugError as exc:
        messages = [CheckError(p.message, p.id, p.hint) for p in exc.problems]
    else:
        try:
            messages = _run_checks(settings, plugins)
        except PluginHookError as exc:
            messages = [CheckError(str(exc), "fastplug.E023", obj=exc.plugin)]
    serious = [m for m in messages if m.is_serious]
    if messages:
        out = [
            "SystemCheckError: System check identified some issues:"
            if serious
            else "System check identified some issues:"
        ]
        for level, title in (
            ("critical", "CRITICALS"),
            ("error", "ERRORS"),
            ("warning", "WARNINGS"),
            ("info", "INFOS"),
        ):
            group = [m for m in messages if m.level == level]
            if group:
                out += ["", f"{title}:", *(str(m) for m in group)]
        click.echo(mask_secrets("\n".join(out)), err=bool(serious))  # a plugin's message may quote a URL
    n = len(messages)
    click.echo(
        f"\nSystem check identified {'no issues' if not n else f'{n} issue' + ('s' if n > 1 else '')} (0 silenced)."
    )
    sys.exit(1 if serious else 0)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def plugins_command(obj: CliContext, as_json: bool) -> None:
    """List known plugins: version, source, enabled, requires, hooks, start order."""
    _, plugins = obj.load()
    order = {name: i + 1 for i, name in enumerate(plugins.names)}
    loaded = {p.name: p for p in plugins}
    rows = []
    for name in sorted(plugins.known, key=lambda n: (order.get(n, 10**6), n)):
        source = plugins.known[name]
        p = loaded.get(name)
        rows.append(
            {
                "name": name,
                "version": p.version if p else (source.version or "?"),
                "source": source.origin if not source.builtin else "built-in",
                "enabled": p is not None,
                "requires": list(p.info.requires) if p else [],
                "after": list(p.info.after) if p else [],
                "hooks": [h for h in p.hooks if h != "plugin_info"] if p else [],
                "order": order.get(name),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = ["name", "version", "source", "enabled", "requires", "order", "hooks"]
    click.echo(
        _table(
            [
                [
                    r["name"],
                    r["version"],
                    r["source"],
                    "yes" if r["enabled"] else "no",
                    ",".join(r["requires"]) or "-",
                    str(r["order"] or "-"),
                    ",".join(r["hooks"]) or "-",
                ]
                for r in rows
            ],
            header,
        )
    )


@cli.command()
@click.pass_obj
def routes(obj: CliContext) -> None:
    """List routes: method, path, name, plugin."""
    from fastplug.core.app import build_app
    from fastplug.core.routes import iter_routes

    settings, plugins = obj.load()
    try:
        app = build_app(settings, plugins)
    except FastplugError as exc:
        obj.fail(exc)
    owners = {id(route): plugin for plugin, route in app.state.fastplug.routes}
    rows = [
        [",".join(r.methods) or "-", r.path, r.name, owners.get(id(r.original), "core")]
        for r in iter_routes(app.routes)
    ]
    click.echo(_table(rows, ["method", "path", "name", "plugin"]))


@cli.command("settings")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def settings_command(obj: CliContext, as_json: bool) -> None:
    """Show the effective settings, where each value came from; secrets masked."""
    from fastplug.core.effective import effective_settings

    settings, _ = obj.load()
    rows = effective_settings(settings)
    if as_json:
        click.echo(json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows], indent=2, default=str))
        return
    click.echo(f"# {settings.path} (environment: {settings.env})")
    click.echo(_table([[k, json.dumps(v, default=str), s] for k, v, s in rows], ["key", "value", "source"]))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``manage.py`` and the ``fastplug`` script: an unexpected error is one
    ``error:`` line and exit 1 (the traceback only with ``--traceback``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="manage.py")
    except Exception as exc:
        if "--traceback" in args:
            raise
        click.echo(f"error: {one_line(exc)}", err=True)  # secrets masked
        sys.exit(1)


from fastplug.core.scaffold.commands import new_command, new_plugin_command  # noqa: E402 - after cli exists

cli.add_command(new_command)
cli.add_command(new_plugin_command)

from fastplug.core.hooks_command import hooks  # noqa: E402 - after cli exists

cli.add_command(hooks)


if __name__ == "__main__":
    main()
