"""``assess screen`` and ``assess demo-data``: registered on the main group in assess/cli.py."""
from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path

import click

from .._clitools import reports_errors as _errors
from .columns import read_map
from .reader import DEFAULT_BATCH_ROWS


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for the next batch (blocks up to 32 MB from its heap, not
    mapped apart, and no trimming below 512 MB free) instead of handing it back to the system and
    taking it back page by page, each page zeroed on first write: about a twentieth of a province
    file's CPU time. For this command's own process only (library callers keep their settings);
    a no-op where the C library has no ``mallopt``. Returns whether it was applied."""
    import ctypes
    import ctypes.util
    m_trim_threshold, m_mmap_threshold = -1, -3
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 512 << 20))
    except (OSError, AttributeError):
        return False


def numpy_huge_page_setter():
    """numpy's switch for asking the system for 2 MB pages for large arrays (it reads
    NUMPY_MADVISE_HUGEPAGE only at import), or None where this numpy has none."""
    import importlib
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):   # numpy 2, then 1.x
        try:
            setter = getattr(importlib.import_module(name), "_set_madvise_hugepage", None)
        except ImportError:
            continue
        if setter is not None:
            return setter
    return None


def stop_numpy_huge_pages() -> bool:
    """Stop numpy asking for 2 MB pages. A chunk's arrays are written once, front to back, so large
    pages save them little; and where the system compacts memory to grant one at the first write
    (transparent_hugepage/defrag ``madvise``, as on the machines measured), those faults cost
    0.3–0.5 s of system time a province file. Lasts for the rest of the process; returns whether
    numpy offers the switch."""
    setter = numpy_huge_page_setter()
    if setter is None:
        return False
    setter(False)
    return True


def stop_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, a scheduler's time limit) into SystemExit in this command's process,
    so that the run stops as on Ctrl-C: the files written aside are removed, nothing half-written
    remains. Python's default ends the process at once, leaving them behind."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


# The GIL switch interval of this command's process (Python's default: 5 ms). The reading and
# scoring threads need the GIL only briefly between compiled loops; behind the main thread's Python
# they could wait up to the interval each time while a core stood idle.
SWITCH_INTERVAL_S = 0.0005


def _date(ctx, param, value):
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("give a date as YYYY-MM-DD") from exc


@click.command("screen")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--instrument", "instrument_id", required=True, help="Instrument id, e.g. gbt42195-2022.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Scored rows: .parquet or .csv.")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Problems, one line each (.csv or .parquet). Default: OUT's name + .rejects.csv.")
@click.option("--map", "map_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file mapping input column names to item/field ids.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report.")
@click.option("--as-of", callback=_date, help="Assessment date for ages and id checks (default today).")
@click.option("--under-60", type=click.Choice(["warn", "reject"]), default="warn", show_default=True,
              help="What to do with people under 60.")
@click.option("--encoding", help="CSV encoding (default: UTF-8 if it decodes, else GB18030).")
@click.option("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, show_default=True,
              help="Rows per record batch (about; memory grows with it).")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE", help="Change an instrument setting.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_errors
def screen(input_path, instrument_id, out, rejects, map_path, report, as_of, under_60, encoding, batch_rows,
           pairs, as_json):
    """Score a screening file (CSV, Excel, Parquet) in batches; every row ends in OUT or REJECTS."""
    from .run import screen as run
    stop_on_sigterm()
    keep_freed_memory()
    stop_numpy_huge_pages()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    settings = dict(p.split("=", 1) for p in pairs) if pairs else None
    mapping = read_map(map_path) if map_path else None
    bar = None
    if sys.stderr.isatty() and not as_json:
        bar = click.progressbar(length=1, label="screening", file=sys.stderr, show_percent=True, show_eta=True)
        bar.__enter__()

    def progress(done, total):
        if bar is not None:
            bar.length = max(1, total)
            bar.update(done - bar.pos)
    try:
        summary = run(input_path, instrument_id, out, rejects=rejects, report=report, mapping=mapping,
                      settings=settings, as_of=as_of, under_60=under_60, batch_rows=batch_rows,
                      encoding=encoding, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    st = summary.stats
    if as_json:
        click.echo(json.dumps({**st.to_dict(), "out": str(summary.out), "rejects": str(summary.rejects),
                               "seconds": round(summary.seconds, 3), "notes": list(summary.notes)},
                              ensure_ascii=False, indent=2))
        return
    rate = st.rows_read / summary.seconds if summary.seconds else 0
    click.echo(f"读取 rows read: {st.rows_read:,} = 已评分 scored {st.scored:,} + 已拒绝 rejected {st.rejected:,}"
               f"   ({summary.seconds:.1f} s, {rate:,.0f} rows/s)")
    click.echo("等级 level:")
    for lv, label, c, pct in st.level_rows():
        click.echo(f"  {lv} {label:<14} {c:>12,}  {pct:5.1f}%")
    if st.errors:
        click.echo("拒绝原因 problems (rows may have several):")
        for code, n in sorted(st.errors.items()):
            click.echo(f"  {code:<9} {n:>10,}")
    if st.warnings:
        click.echo("警告 warnings:")
        for code, n in sorted(st.warnings.items()):
            click.echo(f"  {code:<9} {n:>10,}")
    if summary.ignored:
        click.echo(f"未识别的列 ignored columns: {', '.join(map(str, summary.ignored))}")
    for note in summary.notes:
        click.echo(f"注意 note: {note}")
    click.echo(f"OUT {summary.out}   REJECTS {summary.rejects}" + (f"   REPORT {summary.report}" if summary.report else ""))


@click.command("demo-data")
@click.option("--instrument", "instrument_id", default="gbt42195-2022", show_default=True)
@click.option("--rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help=".csv, .xlsx or .parquet")
@click.option("--bad-share", type=float, default=0.02, show_default=True, help="Share of rows with one fault each.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--as-of", callback=_date, help="Assessment date the ages refer to (default today).")
@click.option("--header", type=click.Choice(["labels", "ids"]), default="labels", show_default=True,
              help="Name item columns by Chinese label (进食 …) or by id (B.1.1 …).")
@click.option("--encoding", default="utf-8", show_default=True, help="CSV encoding, e.g. gb18030.")
@_errors
def demo_data(instrument_id, rows, out, bad_share, seed, as_of, header, encoding):
    """Write a synthetic screening file (valid id numbers, region codes, a share of bad rows)."""
    from collections import Counter

    from ..demo_data import write
    if not 0 <= bad_share <= 1:
        raise click.BadParameter("between 0 and 1", param_hint="--bad-share")
    try:
        kinds = write(out, instrument_id, rows, seed=seed, bad_share=bad_share, as_of=as_of, header=header,
                      encoding=encoding)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    bad = Counter(k for k in kinds if k)
    click.echo(f"{out}: {rows:,} rows, {sum(bad.values()):,} with a fault"
               + (f" ({', '.join(f'{k} {n}' for k, n in sorted(bad.items()))})" if bad else ""))
