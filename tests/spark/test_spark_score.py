"""assess.spark.score on a real local Spark equals assess.score row by row, rejects included."""
from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import assess
from assess import InstrumentError, SettingError, batch
from assess import spark as aspark

from spark_helpers import GBT_ROWS, as_integers, assert_rows_equal, collect_arrow, screening_table, to_spark

GBT = "gbt42195-2022"


@pytest.fixture(scope="module")
def ins():
    return assess.load_instrument(GBT)


def test_spark_equals_assess_score_row_by_row(spark, ins, tmp_path):
    """GBT_ROWS synthetic rows with 5% planted faults, read from 4 Parquet files."""
    table = screening_table(GBT_ROWS, seed=8)
    df = to_spark(spark, table, tmp_path / "screening", parts=4)
    started = time.perf_counter()
    got = collect_arrow(aspark.score(df, GBT, keep=["row_id", "公民身份号码"]))
    print(f"\n{table.num_rows:,} rows scored on local[2] in {time.perf_counter() - started:.1f} s")
    assert got.column_names == ["row_id", "公民身份号码", *batch.output_schema(ins).names]
    assert_rows_equal(got, table, ins)
    got = got.sort_by("row_id")
    assert got.column("公民身份号码").equals(table.column("公民身份号码"))
    # The planted faults come back as rows with a status, not as failed tasks.
    status = pc.value_counts(got.column("status")).to_pylist()
    counts = {s["values"]: s["counts"] for s in status}
    assert set(counts) == {"ok", "not_allowed", "incomplete", "inconsistent"}, counts
    rejected = pc.not_equal(got.column("status"), "ok")
    assert pc.all(pc.is_valid(pc.filter(got.column("error_field"), rejected))).as_py()
    assert pc.all(pc.is_null(pc.filter(got.column("level"), rejected))).as_py()


def test_integer_columns_and_small_batches(spark, ins, tmp_path):
    """Hive tables typed int (nulls, out-of-range codes) and many small Arrow batches per task."""
    table = as_integers(screening_table(30_000, seed=3, bad_share=0.1), ins)
    assert table.schema.field("B.1.1").type == pa.int32()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "777")
    try:
        df = to_spark(spark, table, tmp_path / "typed", parts=3)
        assert df.schema["B.1.1"].dataType.typeName() == "integer"
        got = collect_arrow(aspark.score(df, GBT, keep=["row_id"]))
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert_rows_equal(got, table, ins)


def test_settings_travel_as_a_plain_dict(spark, ins, tmp_path):
    table = screening_table(20_000, seed=5)
    settings = {"gbt42195-2022.coma_final_level": "3"}
    df = to_spark(spark, table, tmp_path / "settings")
    got = collect_arrow(aspark.score(df, GBT, settings=settings, keep=["row_id"]))
    assert_rows_equal(got, table, ins, settings=settings)
    default = assess.score(ins, table)
    # The setting changes something in this data (coma rows end at level 3, not 4).
    assert not got.sort_by("row_id").column("level").equals(default.column("level").cast(pa.int8()))


def test_output_schema_is_explicit_and_translated(spark, ins):
    from pyspark.sql import types as T
    df = spark.createDataFrame(screening_table(10, seed=1).to_pandas())
    out = aspark.score(df, GBT, keep=["row_id"])
    schema = out.schema
    assert schema.names == ["row_id", *batch.output_schema(ins).names]
    assert schema["total"].dataType == T.IntegerType()
    assert schema["level"].dataType == T.ByteType() and schema["level"].nullable
    assert schema["rules"].dataType == T.LongType() and not schema["rules"].nullable
    assert schema["rule_R1"].dataType == T.BooleanType()
    assert schema["status"].dataType == T.StringType() and not schema["status"].nullable
    assert schema["error_field"].dataType == T.StringType() and schema["error_field"].nullable
    assert aspark.spark_schema(ins).names == batch.output_schema(ins).names


def test_keep(spark, ins):
    table = screening_table(50, seed=2).rename_columns(
        [("person" if n == "公民身份号码" else n) for n in screening_table(1, seed=2).column_names])
    df = spark.createDataFrame(table.to_pandas())
    assert aspark.score(df, GBT).columns == [*df.columns, *batch.output_schema(ins).names]
    assert aspark.score(df, GBT, keep=()).columns == batch.output_schema(ins).names
    assert aspark.score(df, GBT, keep=["person"]).columns[0] == "person"
    with pytest.raises(ValueError, match="not columns"):
        aspark.score(df, GBT, keep=["nobody"])
    with pytest.raises(ValueError, match="clash"):
        aspark.score(df.withColumnRenamed("person", "status"), GBT, keep=["status"])


def test_unknown_instrument_and_setting_fail_on_the_driver(spark):
    df = spark.createDataFrame(screening_table(5, seed=0).to_pandas())
    with pytest.raises(InstrumentError) as exc:
        aspark.score(df, "no-such-instrument")
    assert exc.value.problems[0].code.name == "INSTR_006"
    with pytest.raises(SettingError) as exc:
        aspark.score(df, GBT, settings={"gbt42195-2022.no_such_setting": "x"})
    assert exc.value.problems[0].code.name == "SET_001"


def test_instrument_loaded_once_per_worker(ins):
    """What the executors run: the instrument comes from a per-process cache, not once per batch."""
    table = screening_table(100, seed=4)
    aspark._instrument.cache_clear()
    names = tuple(table.column_names)
    renamed = table.rename_columns([f"_assess_in_{i}" for i in range(len(names))])
    for _ in range(3):
        out = list(aspark._score_batches(GBT, (), names, 0, 1, renamed.to_batches(max_chunksize=30)))
        assert sum(b.num_rows for b in out) == 100
    info = aspark._instrument.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_odd_column_types_never_fail_a_task(spark, ins, tmp_path):
    """Hive column types nobody should use for codes (decimal, double, boolean, date, array) come
    back as rows with a status, exactly as assess.score reads them, never as a failed task."""
    table = screening_table(2_000, seed=6)
    odd = {"B.1.1": pa.decimal128(10, 0), "B.1.2": pa.float64(), "B.1.3": pa.bool_()}
    for name, typ in odd.items():
        col = table.column(name)
        numeric = pc.match_substring_regex(col, r"^[0-9]+$")
        ints = pc.if_else(numeric, col, pa.scalar(None, pa.string())).cast(pa.int32())
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pc.greater(ints, 0) if typ == pa.bool_() else ints.cast(typ))
    table = table.set_column(table.schema.get_field_index("B.1.4"), "B.1.4",
                             pa.array([None] * table.num_rows, pa.date32()))
    icd = [None if s is None else s.split(";") for s in table.column("A.4.1").to_pylist()]
    table = table.set_column(table.schema.get_field_index("A.4.1"), "A.4.1", pa.array(icd, pa.list_(pa.string())))
    df = to_spark(spark, table, tmp_path / "odd", parts=2)
    got = collect_arrow(aspark.score(df, GBT, keep=["row_id"]))
    assert_rows_equal(got, table, ins)
    # A decimal or boolean column holds no option code (cast decimals to int first), a date column
    # of nulls is unanswered: every row has a status saying so, and no task failed.
    assert set(got.column("status").to_pylist()) == {"not_allowed", "incomplete"}
