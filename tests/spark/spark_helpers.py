"""Helpers for tests/spark/: skip reasons, synthetic screening tables, Arrow comparison."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import assess
from assess import demo_data
from assess.spark import arrow_schema

SPARK_SKIP = "pyspark not installed (optional extra): .venv/bin/pip install -e '.[spark]' or run .ci/spark.sh"
DASK_SKIP = "dask not installed (optional extra): .venv/bin/pip install -e '.[dask]' or run .ci/spark.sh"
AS_OF = dt.date(2026, 1, 1)
GBT_ROWS = 300_000   # "a few hundred thousand": the Spark job takes 16 s of a ~35–50 s test on 2 busy cores


def screening_table(rows: int, seed: int, bad_share: float = 0.05) -> pa.Table:
    """A synthetic screening table with columns named by id, a ``row_id`` and planted bad rows."""
    table, _ = demo_data.generate(rows=rows, seed=seed, bad_share=bad_share, header="ids", as_of=AS_OF)
    return table.append_column("row_id", pa.array(range(rows), pa.int64()))


def as_integers(table: pa.Table, ins) -> pa.Table:
    """The same table with every item column whose cells are plain numbers as int32 (what a Hive
    table typed ``int`` gives); other cells (``"四"``, ``"0a"``) become null, i.e. missing."""
    out = table
    for item in ins.items:
        if item.id == "B.3.9":            # sub-codes 0a/0b/1a/1b: stays text
            continue
        col = table.column(item.id)
        numeric = pc.match_substring_regex(col, r"^[0-9]+$")
        typed = pc.if_else(numeric, col, pa.scalar(None, pa.string())).cast(pa.int32())
        out = out.set_column(out.schema.get_field_index(item.id), item.id, typed)
    return out


def to_spark(spark, table: pa.Table, folder, parts: int = 1):
    """``table`` as a Spark DataFrame read from Parquet (as a Hive table would be), column types
    kept exactly (through pandas, nullable int32 would arrive as double); ``parts`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // parts)
    for k in range(parts):
        pq.write_table(table.slice(k * step, step), folder / f"part-{k}.parquet")
    return spark.read.parquet(str(folder))


def collect_arrow(df) -> pa.Table:
    """A Spark DataFrame as one Arrow table, without going through pandas (nullable ints stay ints)."""
    if hasattr(df, "toArrow"):            # PySpark >= 4.0
        return df.toArrow()
    return pa.Table.from_batches(df._collect_as_arrow())   # PySpark 3.5


def assert_rows_equal(got: pa.Table, table: pa.Table, ins, settings=None) -> None:
    """``got`` (sorted by row_id) holds, row by row, what assess.score gives for ``table``, in the
    Spark-side types (dictionaries as strings, rules as int64)."""
    expected = assess.score(ins, table, settings=settings)
    got = got.sort_by("row_id")
    assert got.num_rows == table.num_rows
    assert got.column("row_id").to_pylist() == table.column("row_id").to_pylist()
    for f in arrow_schema(ins):
        want = expected.column(f.name).cast(f.type).combine_chunks()
        have = got.column(f.name).combine_chunks()
        if not have.equals(want):
            bad = pc.indices_nonzero(pc.invert(pc.fill_null(pc.equal(have, want), False))).to_pylist()
            bad = [i for i in bad if have[i].as_py() != want[i].as_py()][:5]
            raise AssertionError(f"column {f.name}: first differing rows {bad}: "
                                 f"spark {[have[i].as_py() for i in bad]}, assess.score {[want[i].as_py() for i in bad]}")
