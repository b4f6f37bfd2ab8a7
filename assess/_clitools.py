"""The one translation of library errors for every ``assess`` command (STYLE §7)."""
from __future__ import annotations

import functools
import json
import sys

import click

from .errors import AssessError


def reports_errors(fn):
    """Print an AssessError's problems (or, with --json, its codes) on stderr and exit 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AssessError as exc:
            if kwargs.get("as_json"):
                click.echo(json.dumps(exc.to_dict(), ensure_ascii=False, indent=2), err=True)
            else:
                for p in exc.problems:
                    click.echo(f"error {p.code.name}: {p.message}", err=True)
            sys.exit(2)
    return wrapper
