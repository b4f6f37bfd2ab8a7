"""The ``assess`` command line. Errors from the library are translated here, once."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from ._clitools import reports_errors
from .errors import AssessError
from .instrument import list_instruments, load_instrument, load_path
from .score import score_one


def _settings(pairs) -> dict:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: write NAME=VALUE, e.g. gbt42195-2022.raise_stacking=additive",
                                     param_hint="--set")
        out[name.strip()] = value.strip()
    return out


def _dump(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


class _Main(click.Group):
    """The command group; ``web`` is imported only when asked for (Flask and Jinja take a fifth of
    a second to import, which every other command, ``assess screen`` included, would pay)."""

    LAZY = {"web": ("web.cli", "web")}

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx, name):
        if name in self.LAZY:
            import importlib
            module, attr = self.LAZY[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=_Main)
@click.version_option(__version__, prog_name="assess")
def main():
    """assess: score standardised elderly ability and disability assessments."""


@main.group()
def instruments():
    """List, show and validate instrument definitions."""


@instruments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@reports_errors
def instruments_list(as_json):
    """List the installed instruments and their versions."""
    refs = list_instruments()
    if as_json:
        _dump([{"id": r.id, "version": r.version, "title": r.title, "title_en": r.title_en,
                "effective_date": r.effective_date} for r in refs])
        return
    for r in refs:
        click.echo(f"{r.id}\t{r.version}\t{r.title}\t{r.effective_date or '生效日期未核实'}")


@instruments.command("show")
@click.argument("instrument_id")
@click.option("--version", "version", default=None, help="Instrument version (default: newest).")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE", help="Change a setting.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def instruments_show(instrument_id, version, pairs, as_json):
    """Show an instrument: items, options and points, bands, rules and settings in force."""
    from . import describe
    ins = load_instrument(instrument_id, version=version, settings=_settings(pairs))
    if as_json:
        _dump(describe.as_dict(ins))
        return
    click.echo("\n".join(describe.lines(ins)))


@instruments.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
def instruments_validate(paths, as_json):
    """Validate definition files; list every problem found in each."""
    failed = False
    for path in paths:
        try:
            ins = load_path(path)
        except AssessError as exc:
            failed = True
            if as_json:
                click.echo(json.dumps({"path": str(path), **exc.to_dict()}, ensure_ascii=False), err=True)
            else:
                click.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
                for p in exc.problems:
                    click.echo(f"  {p.code.name}: {p.message}", err=True)
        else:
            click.echo(f"{path}: ok ({ins.id} v{ins.version}, {len(ins.items)} items)")
    sys.exit(1 if failed else 0)


@main.command("score-one")
@click.argument("instrument_id")
@click.argument("answers", type=click.File("r", encoding="utf-8"))
@click.option("--text", is_flag=True, help="Print a readable Chinese summary instead of JSON.")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE", help="Change a setting.")
@click.option("--allow-incomplete", is_flag=True, help="Score complete domains even if answers are missing.")
@click.option("--json", "as_json", is_flag=True, help="Print errors as JSON.")
@reports_errors
def score_one_cmd(instrument_id, answers, text, pairs, allow_incomplete, as_json):
    """Score one assessment from a JSON file of answers (use - for standard input)."""
    try:
        data = json.load(answers)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc}); give an object mapping item ids to codes",
                                 param_hint="ANSWERS") from exc
    if not isinstance(data, dict):
        raise click.BadParameter("give a JSON object mapping item ids to codes", param_hint="ANSWERS")
    result = score_one(instrument_id, data, settings=_settings(pairs), allow_incomplete=allow_incomplete)
    click.echo(result.summary_zh() if text else json.dumps(result.to_dict(), ensure_ascii=False, indent=2))


# Commands that live in their own packages, registered here so that `assess --help` lists them all.
from .screen.cli import demo_data as _demo_data, screen as _screen  # noqa: E402
from .store.cli import store as _store_group  # noqa: E402
from .demo import demo as _demo  # noqa: E402

main.add_command(_demo)
main.add_command(_screen)
main.add_command(_demo_data)
main.add_command(_store_group)

if __name__ == "__main__":  # pragma: no cover
    main()
