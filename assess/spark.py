"""Score a Spark DataFrame on the executors with the same engine as :func:`assess.score`.

``score(df, "gbt42195-2022")`` runs ``DataFrame.mapInArrow``: each executor's Python worker gets
the rows as Arrow record batches, hands them straight to :func:`assess.score` (the compiled kernel
when it is built) and sends the score columns back as Arrow. Nothing is converted row by row and
no rule is re-implemented in SQL. A bad row never fails a task: it comes back with its ``status``
(``not_allowed``, ``incomplete``, ``inconsistent``) and ``error_field``, as in every batch path
(STYLE §7).

The output schema is explicit, translated from :func:`assess.batch.output_schema`: int32 scores
→ ``int``, int8 levels → ``tinyint``, the uint32 ``rules`` bitmask → ``bigint`` (Spark has no
unsigned types), flags → ``boolean``, and the dictionary columns ``status`` / ``error_field`` →
``string``. PySpark is an optional extra, imported only when this module is used:
``pip install 'assess[spark]'``.
"""
from __future__ import annotations

import functools
from typing import Iterable, Iterator, Mapping, Sequence

import pyarrow as pa

from . import batch
from .score import resolve
from .score import score as _score

EXTRA_HINT = "pip install 'assess[spark]'"


def _pyspark_types():
    try:
        from pyspark.sql import types as T
    except ImportError as exc:
        raise ImportError(f"assess.spark needs PySpark, which is not installed: {EXTRA_HINT}") from exc
    return T


def arrow_schema(ins) -> pa.Schema:
    """The Arrow schema of the batches the executors return: :func:`assess.batch.output_schema`
    with dictionary columns as plain strings and ``rules`` as int64 (no unsigned types in Spark)."""
    fields = []
    for f in batch.output_schema(ins):
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        elif t == pa.uint32():
            t = pa.int64()
        fields.append(pa.field(f.name, t, nullable=f.nullable))
    return pa.schema(fields)


def _spark_type(t: pa.DataType):
    T = _pyspark_types()
    known = {pa.int8(): T.ByteType(), pa.int16(): T.ShortType(), pa.int32(): T.IntegerType(),
             pa.int64(): T.LongType(), pa.bool_(): T.BooleanType(), pa.string(): T.StringType()}
    if t not in known:   # pragma: no cover - output_schema gained a type this table does not know
        raise TypeError(f"no Spark type for Arrow type {t} in assess.spark; add it to _spark_type")
    return known[t]


def spark_schema(ins):
    """The Spark ``StructType`` of the score columns for an instrument (see :func:`arrow_schema`)."""
    T = _pyspark_types()
    return T.StructType([T.StructField(f.name, _spark_type(f.type), f.nullable) for f in arrow_schema(ins)])


def _freeze(settings: Mapping | None) -> tuple:
    return tuple(sorted((str(k), v) for k, v in (settings or {}).items()))


@functools.lru_cache(maxsize=8)
def _instrument(instrument_id: str, settings: tuple):
    """The instrument, loaded once per Python worker process (Spark reuses workers across tasks)."""
    return resolve(instrument_id, dict(settings) or None)


def _score_batches(instrument_id: str, settings: tuple, names: tuple, n_keep: int, threads: int,
                   batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs on the executors: one output batch per input batch, the first ``n_keep`` columns kept.

    The batches arrive with placeholder column names (see :func:`score`); ``names`` are the real ones.
    """
    ins = _instrument(instrument_id, settings)
    schema = arrow_schema(ins)
    for rb in batches:
        rb = rb.rename_columns(list(names))
        scored = _score(ins, rb, threads=threads)
        cols = rb.columns[:n_keep] + [scored.column(f.name).cast(f.type) for f in schema]
        fields = list(rb.schema)[:n_keep] + list(schema)
        yield pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields))


def _quote(name: str) -> str:
    # Item ids contain dots ("B.1.1"): unquoted, Spark would read them as struct fields.
    return "`" + name.replace("`", "``") + "`"


def score(df, instrument_id: str, *, settings: Mapping | None = None, keep: Sequence[str] | None = None,
          threads: int = 1):
    """Score a Spark DataFrame with one row per assessment and one column per item or field id.

    Returns a DataFrame with the ``keep`` columns (default: every input column; ``()`` for none)
    followed by the columns of :func:`assess.score` (see :func:`spark_schema`), one output row
    per input row. Question columns may be strings (option codes as text, ICD-10 codes separated
    by ``;``) or integers; columns named otherwise than by id must be renamed first.

    ``settings`` is a plain dict of instrument settings (``{"gbt42195-2022.coma_final_level": "3"}``);
    it is checked here, on the driver, and sent to the executors with the task. ``threads`` is the
    kernel's thread count per task; keep 1 and let Spark's task slots give the parallelism.
    """
    T = _pyspark_types()
    ins = resolve(instrument_id, settings)   # unknown instrument or setting: fail now, on the driver
    out = spark_schema(ins)
    names = list(df.columns)
    keep = tuple(names if keep is None else keep)
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise ValueError(f"keep: {unknown} are not columns of the DataFrame. Columns: {names}")
    clash = sorted(set(keep) & set(out.names))
    if clash:
        raise ValueError(f"keep: {clash} would clash with score columns of the same name. "
                         "Rename them (withColumnRenamed) or leave them out of keep.")
    questions = [q for q in ins._questions if q in names and q not in keep]
    columns = (*keep, *questions)
    selected = df.select(*[_quote(c) for c in columns])
    fields = [selected.schema[name] for name in keep] + list(out.fields)
    # mapInArrow refers to its input columns by unquoted name, which fails for "B.1.1" (read as
    # struct fields): send them under placeholder names and rename inside each batch.
    placeholders = selected.toDF(*[f"_assess_in_{i}" for i in range(len(columns))])
    fn = functools.partial(_score_batches, instrument_id, _freeze(settings), columns, len(keep), int(threads))
    return placeholders.mapInArrow(fn, T.StructType(fields))
