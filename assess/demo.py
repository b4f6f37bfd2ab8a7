"""``assess demo``: the main job end to end on the embedded default, for a newcomer.

A synthetic screening file is generated, screened (scores, rejects, HTML report), imported into
a SQLite results store under a demo department's keys, and one person's grade is then looked up
as the medical-insurance office would. Each step is the same command a user would type; this
module only chains them, so the demo cannot drift from the real commands.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
import pyarrow.parquet as pq

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(args: list[str]) -> None:
    from .cli import main
    click.secho("$ assess " + " ".join(args), fg="cyan")
    main.main(args, prog_name="assess", standalone_mode=False)


def _store_config(root: Path) -> Path:
    policy = EXAMPLES / "recognition-policy.yaml"
    if not policy.exists():
        raise click.ClickException(f"{policy} not found: run the demo from a source checkout of assess")
    config = root / "store.yaml"
    config.write_text(
        "# Demo store: one SQLite file; the demo department is 民政 (mca).\n"
        "url: store.db\n"
        "department: mca\n"
        "keys_dir: keys\n"
        "keep_id_number: encrypted\n"
        f"policy: {policy}\n", encoding="utf-8")
    return config


@click.command("demo")
@click.option("--dir", "root", default="demo", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's files (created).")
@click.option("--rows", default=100_000, show_default=True, help="Rows in the generated screening file.")
@click.option("--seed", default=0, show_default=True)
def demo(root: Path, rows: int, seed: int):
    """Generate a screening file, screen it, store the results in SQLite, look one grade up."""
    root.mkdir(parents=True, exist_ok=True)
    from .store.records import china_today     # here: `assess screen` need not import the store
    today = china_today().isoformat()           # the store refuses an assessment dated after today in China
    source, scored = root / "screening.csv", root / "scored.parquet"
    _run(["demo-data", "--rows", str(rows), "--out", str(source), "--bad-share", "0.01", "--seed", str(seed),
          "--as-of", today])
    _run(["screen", str(source), "--instrument", "gbt42195-2022", "--out", str(scored),
          "--rejects", str(root / "rejects.csv"), "--report", str(root / "report.html"), "--as-of", today])
    config = _store_config(root)
    _run(["store", "--config", str(config), "init"])
    _run(["store", "--config", str(config), "import", str(scored), "--assessed-on", today,
          "--organisation", "演示评估机构", "--reason", "first", "--assessor", "评估员甲", "--assessor", "评估员乙"])
    # Look up the first person with a level of 1 or more, as the insurance office would.
    table = pq.read_table(scored, columns=["A.2.8", "level", "status"])
    frail = [i for i, (lvl, st) in enumerate(zip(table.column("level").to_pylist(),
                                                  table.column("status").to_pylist())) if st == "ok" and lvl]
    if frail:
        number = table.column("A.2.8")[frail[0]].as_py()
        fd, id_file = tempfile.mkstemp(prefix="assess-id-")   # never on the command line
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(number)
            _run(["store", "--config", str(config), "lookup", "--department", "nhsa", "--purpose", "ltc_benefit",
                  "--id-file", id_file, "--actor", "demo-nhsa-officer"])
        finally:
            os.unlink(id_file)
    click.secho(f"\nDone. Files in {root}/: screening.csv, scored.parquet, rejects.csv, report.html, store.db",
                fg="green")
