"""``python -m web`` (or ``assess web`` once registered): serve the app, run the demo, manage accounts.

``--demo`` prepares a demo deployment under ``demo/web`` (store, keys, accounts) and serves it with
gunicorn on 127.0.0.1. ``serve`` serves a real instance folder (``ASSESS_WEB_INSTANCE``).
"""
from __future__ import annotations

import logging
import os
import sys

import click

from . import INSTANCE_ENV


def _serve(instance, host: str, port: int, workers: int, threads: int) -> None:
    os.environ[INSTANCE_ENV] = str(instance)
    from gunicorn.app.base import BaseApplication

    from .worker import ACCESS_LOG_FORMAT, AccessLogger, InlineWorker

    class Server(BaseApplication):
        def load_config(self):
            for k, v in {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                         "worker_class": "gthread" if threads > 1 else InlineWorker, "accesslog": "-",
                         "access_log_format": ACCESS_LOG_FORMAT, "logger_class": AccessLogger,
                         "timeout": 60, "graceful_timeout": 10, "backlog": 512}.items():
                self.cfg.set(k, v)

        def load(self):             # in each worker: build the app, then warm it before the first request
            from . import create_app, stores
            app = create_app()
            with app.app_context():
                stores.warm()
            logging.getLogger("gunicorn.error").info("web worker %d ready", os.getpid())
            return app
    Server().run()


def _default_workers() -> int:
    # One single-threaded process per core (web/worker.py): SQLite takes one writer at a time whatever
    # the count, and writers of several processes queue on the deployment's write lock (web/db.py).
    # Kept-alive connections stay with the process that accepted them: the 50 of bench/test_web_load.py,
    # opened at once once both workers are ready, split 23-27 a worker (19-31 at worst in 7 starts).
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


workers_option = click.option("--workers", default=None, type=int, help="Worker processes (default: one per CPU core).")
threads_option = click.option("--threads", default=1, show_default=True, type=int,
                              help="Threads per worker (above 1: gunicorn's gthread worker).")


@click.group("web", invoke_without_command=True)
@click.option("--demo", is_flag=True, help="Prepare a demo deployment and serve it on 127.0.0.1.")
@click.option("--dir", "demo_dir", default="demo/web", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo deployment lives.")
@click.option("--port", default=8000, show_default=True, type=int)
@workers_option
@threads_option
@click.pass_context
def web(ctx, demo, demo_dir, port, workers, threads):
    """Web front end: tablet forms, insurance look-up, JSON API."""
    if ctx.invoked_subcommand is not None:
        return
    if not demo:
        click.echo(ctx.get_help())
        return
    from .demo import DEMO_PASSWORD, DEMO_USERS, prepare
    instance = prepare(demo_dir)
    click.echo(f"demo deployment in {os.path.abspath(demo_dir)} (demo data only)", err=True)
    click.echo("accounts (password " + DEMO_PASSWORD + "): " +
               ", ".join(f"{u} [{r}/{d}]" for u, _, r, d, _ in DEMO_USERS), err=True)
    click.echo(f"open http://127.0.0.1:{port}/", err=True)
    _serve(instance, "127.0.0.1", port, workers or _default_workers(), threads)


@web.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@workers_option
@threads_option
def serve(host, port, workers, threads):
    """Serve the instance folder named by ASSESS_WEB_INSTANCE with gunicorn."""
    instance = os.environ.get(INSTANCE_ENV)
    if not instance:
        sys.exit(f"set {INSTANCE_ENV} to the instance folder (holding config.py)")
    _serve(instance, host, port, workers or _default_workers(), threads)


@web.command("create-user")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["assessor", "reviewer", "officer", "admin"]))
@click.option("--department", required=True)
@click.option("--name", "display_name", default="")
@click.option("--organisation", default="")
def create_user(username, role, department, display_name, organisation):
    """Create an account in ASSESS_WEB_INSTANCE (the password is asked for, never an argument)."""
    from . import accounts, create_app
    password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with create_app().app_context():
        try:
            accounts.create_user(username, password, role, department, display_name, organisation)
        except accounts.AccountError as exc:
            sys.exit(str(exc))
    click.echo(f"created {username} ({role}, {department})")


@web.command("issue-token")
@click.argument("username")
@click.option("--label", default="system")
def issue_token(username, label):
    """Issue an API token for an account (printed once)."""
    from . import accounts, create_app
    with create_app().app_context():
        user = next((u for u in accounts.list_users() if u.username == username), None)
        if user is None:
            sys.exit(f"no account {username}")
        click.echo(accounts.issue_token(user.id, label))


def main():
    web(prog_name="python -m web")
