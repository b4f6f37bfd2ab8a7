"""The README's first command: `assess demo` runs the main job end to end on SQLite."""
import re

import pyarrow.parquet as pq
from click.testing import CliRunner

from assess.cli import main


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def test_demo_screens_stores_and_looks_up(tmp_path):
    root = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(root), "--rows", "400", "--seed", "3"])
    assert result.exit_code == 0, result.output
    for name in ("screening.csv", "scored.parquet", "rejects.csv", "report.html", "store.db"):
        assert (root / name).exists(), name
    read, scored, rejected = map(_count, re.search(
        r"rows read: ([\d,]+) = 已评分 scored ([\d,]+) \+ 已拒绝 rejected ([\d,]+)", result.output).groups())
    assert read == 400 and scored + rejected == read and rejected > 0
    table = pq.read_table(root / "scored.parquet")
    assert table.num_rows == scored
    ok = table.column("status").to_pylist().count("ok")
    assert re.search(rf"{scored} rows, {ok} stored", result.output)
    assert "recognised: level" in result.output
    # the identity number is never echoed
    assert not any(n in result.output for n in table.column("A.2.8").to_pylist())
