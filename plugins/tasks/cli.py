"""``manage.py worker`` and ``manage.py beat``: Celery's own worker and beat on the app."""

from __future__ import annotations

import sys
from typing import Any

import click

from fastplug.config import FastplugError, mask_url
from fastplug.core import CliContext, PluginHookError, get_context

LOGLEVELS = ("debug", "info", "warning", "error", "critical")


def _app(ctx: CliContext, worker: bool) -> Any:
    """The worker's Celery app from the CLI's settings; exits 1 with a reason if there is none."""
    settings, plugins = ctx.load()
    if "tasks" not in plugins.names:
        ctx.fail(RuntimeError(f"the tasks plugin is not enabled in {settings.path.name} (add 'tasks' to plugins)"))
    from fastplug.plugins.tasks.settings import TasksSettings

    conf = settings.section("tasks", TasksSettings)
    if conf.is_memory:
        ctx.fail(
            RuntimeError(
                f"[tasks] broker_url is {mask_url(conf.broker_url)}: an in-process broker only the "
                "server's embedded worker sees; set broker_url to amqp://... or redis://... to run workers"
            )
        )
    try:
        if worker:
            from fastplug.plugins.tasks.worker import build_worker_app

            return build_worker_app(settings, plugins)
        from fastplug.plugins.tasks.celery_app import build_celery

        return build_celery(settings, plugins)
    except (FastplugError, PluginHookError) as exc:
        ctx.fail(exc)


@click.command("worker")
@click.option("-c", "--concurrency", type=click.IntRange(1, 1024), help="processes or threads (default: CPUs)")
@click.option(
    "-Q", "--queues", help="comma-separated queues to consume (default: the default queue and every [tasks] routes one)"
)
@click.option("-l", "--loglevel", type=click.Choice(LOGLEVELS, case_sensitive=False), default="info")
@click.option("-P", "--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork")
@click.option("-n", "--hostname", help="node name (default: celery@<host>)")
def worker_command(concurrency: int | None, queues: str | None, loglevel: str, pool: str, hostname: str | None) -> None:
    """Run a Celery worker on the tasks every plugin registers (needs a broker server)."""
    app = _app(get_context(), worker=True)
    argv = ["worker", f"--loglevel={loglevel.upper()}", f"--pool={pool}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    queues = queues or ",".join(app.fastplug.conf.queues)
    argv.append(f"--queues={queues}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    sys.exit(app.start(argv) or 0)


@click.command("beat")
@click.option("-l", "--loglevel", type=click.Choice(LOGLEVELS, case_sensitive=False), default="info")
@click.option("-s", "--schedule", help="beat's state file (default: [tasks.celery] beat_schedule_filename)")
def beat_command(loglevel: str, schedule: str | None) -> None:
    """Send the periodic tasks plugins registered (conf.beat_schedule) when they are due."""
    ctx = get_context()
    app = _app(ctx, worker=False)
    if not app.conf.beat_schedule:
        ctx.fail(RuntimeError("no periodic tasks are registered (celery_app.conf.beat_schedule is empty)"))
    argv = ["beat", f"--loglevel={loglevel.upper()}"]
    if schedule:
        argv.append(f"--schedule={schedule}")
    sys.exit(app.start(argv) or 0)
