"""Tables in, tables out: the columnar side of :func:`assess.score`.

A scoring backend (compiled kernel or reference) turns question columns into raw arrays
(see ``_reference.score_columns``); this module reads pandas / pyarrow input and builds the output
table, with nulls where a score or level is not defined.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _columns, _reference
from . import model as m
from ._plan import Unsupported, compile_plan

THREADS_ENV = "ASSESS_THREADS"


def _as_arrow(table, questions) -> tuple[pa.Table, str]:
    if isinstance(table, pa.Table):
        return table, "arrow"
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table]), "batch"
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(table, pd.DataFrame):
        return _from_pandas(table, questions), "pandas"
    raise TypeError(f"score() takes a pandas DataFrame or a pyarrow Table/RecordBatch, not {type(table).__name__}")


def _from_pandas(df, questions) -> pa.Table:
    # Only the columns the instrument reads (Arrow names a column str(name)): another one (notes
    # mixing lists and text, complex numbers) may have no Arrow type, and must not stop the scoring.
    read = [name for name in df.columns if str(name) in questions]
    if not read:   # Arrow counts no rows in a table of no column
        return pa.table({"rows": pa.nulls(len(df))}).select([])
    try:
        return pa.Table.from_pandas(df, columns=read, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A column mixing ints and text codes (2 and "0b", as score_one accepts): write every
        # value as its canonical code text, so that Arrow gets one type and nothing changes meaning.
        fixed = df[read].copy()
        for name in read:
            if fixed[name].dtype == object:
                fixed[name] = [_code_text(v) for v in fixed[name]]
        return pa.Table.from_pandas(fixed, preserve_index=False)


def _code_text(value):
    if _reference.is_missing(value) or isinstance(value, (list, tuple)):
        return value if isinstance(value, (list, tuple)) else None
    key = _reference.code_key(value)
    # A value that is no code at all (True, 4.5) must stay not allowed, never become missing.
    return key if key is not None else f"\x00{value!r}"


def output_schema(ins: m.Instrument) -> pa.Schema:
    """The columns :func:`assess.score` returns for an instrument, in order."""
    fields = [pa.field(d.id, pa.int32()) for d in ins.domains]
    fields += [pa.field(s.id, pa.int32()) for s in ins.scores]
    fields += [pa.field("level_initial", pa.int8()), pa.field("level", pa.int8()),
               pa.field("rules", pa.uint32(), nullable=False)]
    fields += [pa.field(f"rule_{r.id}", pa.bool_(), nullable=False) for r in ins.rules]
    fields += [pa.field(c.id, pa.int8()) for c in ins.categories]
    fields += [pa.field("status", pa.dictionary(pa.int8(), pa.string()), nullable=False),
               pa.field("error_field", pa.dictionary(pa.int16(), pa.string()))]
    return pa.schema(fields)


@functools.lru_cache(maxsize=32)
def _kernel_plan(kernel, ins: m.Instrument):
    """The compiled plan, or None for a definition the kernel's layout cannot hold (the reference
    scorer then scores it, with the same answers)."""
    try:
        return kernel.KernelPlan(compile_plan(ins))
    except Unsupported:
        return None


def default_threads() -> int:
    """``ASSESS_THREADS``, or the machine's cores (at most 8) when it is unset or 0."""
    given = os.environ.get(THREADS_ENV, "").strip() or "0"
    if not given.isdecimal():
        raise ValueError(f"{THREADS_ENV}={given!r} is not a number of threads: give a whole number "
                         f"(1 or more), or 0 for the machine's cores")
    return int(given) or min(os.cpu_count() or 1, 8)


def check_threads(threads) -> int | None:
    """The ``threads`` argument of :func:`assess.score` as an int (None or 0: the default)."""
    allowed = "a whole number of threads (1 or more), or None for the default"
    if threads is None:
        return None
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be {allowed}, not {threads!r} ({type(threads).__name__})")
    if threads < 0:
        raise ValueError(f"threads must be {allowed}, not {threads!r}")
    return int(threads)


def score_raw(ins: m.Instrument, arrow: pa.Table, kernel=None, threads: int | None = None) -> dict:
    """A backend's raw arrays for a table (see ``_reference.score_columns``)."""
    kplan = _kernel_plan(kernel, ins) if kernel is not None else None
    if kplan is not None:
        plan = compile_plan(ins)
        parts = [_columns.run(kernel, kplan, plan, b, threads or default_threads()) for b in arrow.to_batches()]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return _reference.score_columns(ins, {}, arrow.num_rows)
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "rule_bits"}
        # packed bits do not join at batch bounds inside a byte: pack them again
        merged["rule_bits"] = np.empty((len(ins.rules), (len(merged["rules"]) + 7) // 8), np.uint8)
        kernel.rule_bits(merged["rules"], merged["rule_bits"], 0, len(merged["rules"]))
        return merged
    present = [q for q in ins._questions if q in arrow.column_names]
    columns = {q: arrow.column(q).to_pylist() for q in present}
    return _reference.score_columns(ins, columns, arrow.num_rows)


def score_table(ins: m.Instrument, table, kernel=None, threads: int | None = None):
    threads = check_threads(threads) or default_threads()   # checked whichever backend scores
    arrow, kind = _as_arrow(table, ins._questions)
    raw = score_raw(ins, arrow, kernel, threads)
    out = to_arrow(ins, raw)
    if kind == "pandas":
        frame = to_pandas(out)
        frame.index = table.index   # row for row with the input, so that it joins on its index
        return frame
    if kind == "batch":
        return pa.record_batch([c.combine_chunks() for c in out.columns], schema=out.schema)
    return out


def _ok_rows_complete(ins: m.Instrument) -> bool:
    """Whether every ok row has every domain and derived score: every item is required, no score
    reads a field (a weighted score may, and an optional field left blank makes it null on an ok
    row), and no score is one that a case list or a table may leave null on an ok row (e.g. MZ/T
    039 overlap_resolution = reject)."""
    fields = {f.id for f in ins.fields}
    return (all(i.required for i in ins.items)
            and not any(s.kind in ("cases", "matrix") or fields.intersection(s.sum) for s in ins.scores))


def never_null_when_ok(ins: m.Instrument) -> frozenset:
    """Output columns that hold a value in every ok row: besides the rule columns and status, the
    scores when :func:`_ok_rows_complete`, and the levels too when the band set in force leaves no
    total unclassified (bands cover every reachable total, checked on load)."""
    names = [f.name for f in output_schema(ins) if not f.nullable]
    if _ok_rows_complete(ins):
        names += [d.id for d in ins.domains] + [s.id for s in ins.scores]
        if not ins.unclassified:
            names += ["level_initial", "level"]
    return frozenset(names)


def to_arrow(ins: m.Instrument, raw: dict) -> pa.Table:
    """Build the output table from a backend's raw arrays.

    Scores and levels are null only where something is missing or not allowed, so when every row
    is ok the columns of :func:`never_null_when_ok` (the common case in a clean file) get no null
    masks.
    """
    schema = output_schema(ins)
    null = _reference.NULL_SCORE
    all_ok = not raw["status"].any()
    filled = never_null_when_ok(ins) if all_ok else frozenset()

    def column(name, v, typ, is_null):
        return pa.array(v, typ) if name in filled else pa.array(v, typ, mask=is_null(v))

    cols = [column(d.id, raw["domains"][:, j], pa.int32(), lambda v: v == null) for j, d in enumerate(ins.domains)]
    cols += [column(s.id, raw["scores"][:, j], pa.int32(), lambda v: v == null) for j, s in enumerate(ins.scores)]
    # A band set may leave ok totals unclassified (level null, status ok): then levels need masks.
    cols += [column(name, raw[name], pa.int8(), lambda v: v < 0) for name in ("level_initial", "level")]
    rules = pa.array(raw["rules"], pa.uint32())
    cols.append(rules)
    zero = pa.scalar(0, pa.uint32())
    n = len(rules)
    for i in range(len(ins.rules)):
        if "rule_bits" in raw:    # packed by the kernel's threads
            cols.append(pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(raw["rule_bits"][i])]))
        else:                     # Arrow's kernels write the bits directly (numpy: a bool per row, then packed)
            cols.append(pc.not_equal(pc.bit_wise_and(rules, pa.scalar(1 << i, pa.uint32())), zero))
    for j in range(len(ins.categories)):
        v = raw["categories"][:, j]
        cols.append(pa.array(v, pa.int8(), mask=v < 0))
    # safe=False: the backends write only valid status numbers (checking them took 0.5 ms a million)
    cols.append(pa.DictionaryArray.from_arrays(pa.array(raw["status"].view(np.int8)),
                                               pa.array(_reference.STATUS_NAMES), safe=False))
    err = raw["error_field"]
    cols.append(pa.DictionaryArray.from_arrays(pa.nulls(len(err), pa.int16()) if all_ok   # ok rows: no field
                                               else pa.array(err, pa.int16(), mask=err < 0),
                                               pa.array(list(ins._questions), pa.string())))
    return pa.Table.from_arrays(cols, schema=schema)


def to_pandas(table: pa.Table):
    import pandas as pd
    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
                pa.uint32(): pd.UInt32Dtype()}
    return table.to_pandas(types_mapper=nullable.get)
