"""``assess store``: init, import, lookup, verify, rescore, audit.

Identity numbers are never taken from argv (argv is visible in process lists and shell
history): ``lookup`` reads the number from ``--id-file`` (a file, or ``-`` for standard input),
else from standard input when it is not a terminal, else from a hidden prompt.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sys

import click

from .._clitools import reports_errors as _errors


def _dump(obj):
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _store(ctx):
    from .core import Store
    st = Store.from_config(ctx.obj["config"])
    ctx.call_on_close(st.close)          # dispose of pooled connections when the command ends
    return st


def _date(ctx, param, value):
    """An option's date, strictly YYYY-MM-DD (a usage error, exit 2, otherwise)."""
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a date as YYYY-MM-DD") from None


# --id-file: a file that exists, or '-' for standard input (click checks before the command runs).
_ID_FILE = click.Path(exists=True, dir_okay=False, allow_dash=True)


def _read_id(id_file) -> str:
    if id_file is not None:
        with click.open_file(id_file, "r", encoding="utf-8") as f:
            return f.readline().strip()
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return click.prompt("公民身份号码", hide_input=True).strip()


@click.group("store")
@click.option("--config", "config", envvar="ASSESS_STORE_CONFIG", type=click.Path(dir_okay=False),
              help="Deployment store config (YAML); default $ASSESS_STORE_CONFIG.")
@click.pass_context
def store(ctx, config):
    """Append-only, signed results store and cross-department recognition (互认)."""
    ctx.ensure_object(dict)["config"] = config


@store.command("init")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_errors
def init_cmd(ctx, as_json):
    """Create the database (or migrate it) and this department's missing key files."""
    done = _store(ctx).init()
    if as_json:
        _dump({"done": done})
    else:
        click.echo("\n".join(done) if done else "store is up to date")


@store.command("import")
@click.argument("parquet", type=click.Path(exists=True, dir_okay=False))
@click.option("--assessed-on", required=True, callback=_date, help="Assessment date of the screening (YYYY-MM-DD).")
@click.option("--organisation", required=True, help="The assessing organisation.")
@click.option("--reason", required=True, type=click.Choice(["first", "routine", "change", "review"]))
@click.option("--assessor", "assessors", multiple=True, help="An assessor (repeat for each).")
@click.option("--instrument", default="gbt42195-2022", show_default=True)
@click.option("--version", default=None, help="Instrument version the screening used (default newest).")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE", help="A setting the screening used.")
@click.option("--batch-size", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=None, type=click.IntRange(0),
              help="Processes that hash and encrypt while this one writes (default: two for files of "
                   "1,000,000 rows or more on two cores or more, else none).")   # importer.WORKERS_AUTO_ROWS
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_errors
def import_cmd(ctx, parquet, assessed_on, organisation, reason, assessors, instrument, version, pairs, batch_size,
               workers, as_json):
    """Import the status-ok rows of a screening output (idempotent, resumable)."""
    from ..cli import _settings
    rep = _store(ctx).import_parquet(parquet, instrument=instrument, version=version, settings=_settings(pairs),
                                     assessed_on=assessed_on, assessors=list(assessors),
                                     organisation=organisation, reason=reason, batch_size=batch_size,
                                     workers=workers)
    if as_json:
        _dump(rep.to_dict())
        return
    click.echo(f"{rep.file}: {rep.rows} rows, {rep.stored} stored, {rep.already} already stored, "
               f"{sum(rep.skipped.values())} not stored; {rep.batches} batches "
               f"({rep.batches_resumed} already committed); {rep.seconds:.1f} s")
    for k, v in sorted(rep.skipped.items()):
        click.echo(f"  not stored: {k}: {v}")


@store.command("lookup")
@click.option("--department", required=True, help="The department asking (policy id, e.g. nhsa).")
@click.option("--purpose", required=True, help="The purpose (policy id, e.g. ltc_benefit).")
@click.option("--on", "on", default=None, callback=_date, help="Date to recognise on (default today).")
@click.option("--id-file", type=_ID_FILE,
              help="Read the 公民身份号码 from this file ('-' = stdin). Never give it on the command line.")
@click.option("--all", "all_records", is_flag=True, help="List every record of the person with its state.")
@click.option("--actor", default=None, help="Who is asking (for the audit log; default the OS user).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_errors
def lookup_cmd(ctx, department, purpose, on, id_file, all_records, actor, as_json):
    """Recognise a person's result for a department and purpose (reads are audited)."""
    st = _store(ctx)
    number = _read_id(id_file)
    if all_records:
        rows = st.lookup(number, department, purpose, actor=actor)
        if as_json:
            _dump(rows)
        for r in rows if not as_json else []:
            click.echo(f"{r['record_id']}  {r['assessed_on']}  {r['department']}  {r['instrument']} "
                       f"v{r['version']}  level {r['level']}  {r['state']}  "
                       f"{'verified' if r['verified'] else 'NOT VERIFIED: ' + r['verify_detail']}")
        return
    rec = st.recognise(number, department, purpose, on=on, actor=actor)
    if as_json:
        _dump(rec.to_dict())
    else:
        click.echo(str(rec))
    sys.exit(0 if rec else 1)


@store.command("verify")
@click.argument("record_ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_errors
def verify_cmd(ctx, record_ids, as_json):
    """Verify records against the trusted public keys; name the fields changed after signing."""
    checked = {"record": 0, "revocation": 0}
    bad = 0
    for v in _store(ctx).verify(record_ids or None):
        checked[v.kind] += 1
        if not v.ok:
            bad += 1
            what = v.record_id if v.kind == "record" else f"revocation of {v.record_id}"
            click.echo(json.dumps(v.to_dict(), ensure_ascii=False) if as_json else f"FAIL {what}: {v.reason}")
    click.echo(f"{checked['record']} records and {checked['revocation']} revocations checked, {bad} failed",
               err=as_json)
    sys.exit(1 if bad else 0)


@store.command("rescore")
@click.option("--instrument", default="gbt42195-2022", show_default=True)
@click.option("--version", default=None, help="Instrument version to re-score under (default newest).")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE")
@click.option("--record", "record_ids", multiple=True, help="Only these records (default all current ones).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_errors
def rescore_cmd(ctx, instrument, version, pairs, record_ids, as_json):
    """Re-score this department's current records from their raw answers; record before and after."""
    from ..cli import _settings
    logs = _store(ctx).rescore(instrument, version=version, settings=_settings(pairs), record_ids=record_ids)
    if as_json:
        _dump(logs)
        return
    for r in logs:
        b, a = json.loads(r["before"]), json.loads(r["after"])
        click.echo(f"{r['old_record_id']} → {r['new_record_id']}  total {b['total']} → {a['total']}  "
                   f"level {b['level']} → {a['level']}")
    click.echo(f"{len(logs)} records re-scored ({sum(r['changed'] for r in logs)} changed)")


@store.command("audit")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0))
@click.option("--id-file", type=_ID_FILE,
              help="Only reads about the person whose 公民身份号码 is in this file ('-' = stdin).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_errors
def audit_cmd(ctx, limit, id_file, as_json):
    """Show the audit log of cross-department reads (who, when, person key, purpose)."""
    st = _store(ctx)
    rows = st.audit_rows(_read_id(id_file) if id_file else None, limit=limit or None)
    if as_json:
        _dump(rows)
        return
    for r in rows:
        click.echo(f"{r['at']}  {r['department']}/{r['actor']}  {r['action']} {r['purpose']}  "
                   f"person {r['person_key'][:12]}…  record {r['record_id']} ({r['record_department']})  "
                   f"{r['outcome']}")
