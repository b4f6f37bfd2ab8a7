"""The screening run: read in record batches, check, score, write OUT and REJECTS, count."""
from __future__ import annotations

import datetime as dt
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import idnumber
from ..score import resolve, score
from .checks import Duplicates, Options, check_rows, record, score_problems
from .codes import int_coded, is_text, to_codes
from .columns import ID_NUMBER, IDENTITY, REGION
from .reader import DEFAULT_BATCH_ROWS, open_source, prefetch
from .stats import Stats
from .writer import RejectsWriter, TableWriter, check_distinct, check_out_path, check_report_path


@dataclass
class Summary:
    stats: Stats
    out: Path
    rejects: Path
    report: Path | None
    seconds: float
    source_kind: str
    encoding: str | None
    ignored: tuple = ()
    extra: dict = field(default_factory=dict)
    notes: tuple = ()              # what the run could not check, in Chinese, for the summary (printed and --json)

    @property
    def ok(self) -> bool:
        s = self.stats
        return s.rows_read == s.scored + s.rejected


def default_rejects(out) -> Path:
    out = Path(out)
    return out.with_name(out.name.rsplit(".", 1)[0] + ".rejects.csv")


def screen(input_path, instrument, out, *, rejects=None, report=None, mapping: dict | None = None,
           settings=None, as_of: dt.date | None = None, under_60: str = "warn",
           batch_rows: int = DEFAULT_BATCH_ROWS, encoding: str | None = None, threads: bool = True,
           progress=None) -> Summary:
    """Screen one file. Every input row ends in OUT (scored) or in REJECTS (with its problems);
    the returned summary's counts satisfy rows_read = scored + rejected.

    ``progress(done, total)`` is called after each batch when given.
    """
    started = time.perf_counter()
    ins = resolve(instrument, settings)
    opts = Options(as_of or dt.date.today(), under_60)
    out = check_out_path(out)
    rejects = check_out_path(rejects or default_rejects(out), "REJECTS")
    if report is not None:
        report = check_report_path(report)
    check_distinct(input_path, out=out, rejects=rejects, report=report)
    source = open_source(input_path, ins, mapping, batch_rows=batch_rows, encoding=encoding, threads=threads)
    cols = source.columns
    coded = int_coded(ins)
    out_w, rej_w = TableWriter(out, not_null=_never_null(ins, coded)), RejectsWriter(rejects)
    stats = Stats(ins)
    # The run makes many short-lived objects and no reference cycles; the cyclic collector would
    # only walk the whole heap again and again (a few % of the time on a province file).
    collecting = gc.isenabled()
    gc.disable()
    try:
        # Two stages ahead of this loop, each on its own thread: reading (the compiled CSV pass or
        # pyarrow) with the checks that read a chunk alone, then scoring. Both mostly run without
        # the GIL, so on two cores neither waits for the other, and at most two chunks wait after
        # each stage: room to absorb a slow chunk without stalling the next stage, in bounded memory.
        chunks = prefetch(_identified(source.batches(), cols, coded, opts), depth=2, name="assess-screen-reader")
        stages = prefetch(_checked(chunks, ins, cols, source.rows_hint), depth=2, name="assess-screen-checker")
        try:
            for chunk, checked in stages:
                records = checked.records
                stats.rows_read += len(chunk.problems) + checked.rows
                stats.rejected += len(chunk.problems) + checked.rejected
                if checked.result is not None:
                    # Named here rather than on the checker's thread, which has more to do.
                    score_problems(ins, chunk, checked.unpassed, chunk.lines, cols, records)
                    out_w.write(checked.result)
                    stats.add_scored(checked.result)
                stats.add_problems(records)
                rej_w.write(records)
                if progress is not None:
                    progress(chunk.progress, source.total)
        finally:
            # Stop both stages now, whatever ended the loop (an exception's traceback would
            # otherwise keep them waiting on full queues until it is collected).
            stages.close()
            chunks.close()
        out_w.finish_empty(_out_schema(ins, cols, coded, source))
        if stats.rows_read != stats.scored + stats.rejected:   # pragma: no cover - an engine bug
            raise AssertionError(f"rows read {stats.rows_read} != scored {stats.scored} + rejected {stats.rejected}")
        out_w.commit()
        rej_w.commit()
    except BaseException:
        out_w.abort()
        rej_w.abort()
        raise
    finally:
        if collecting:
            gc.enable()
    summary = Summary(stats, out, rejects, report, time.perf_counter() - started, source.kind,
                      getattr(source, "encoding", None), tuple(cols.ignored), notes=_unchecked(cols))
    if report is not None:
        from .report import write_report
        write_report(summary, report)
    return summary


def _unchecked(cols) -> tuple:
    """Checks the file's columns leave out, said aloud: without an id column, a run that passes
    every row may simply have checked no one's identity."""
    if ID_NUMBER not in cols.identity:
        return ("没有公民身份号码列：未检查身份号码、出生日期和性别的一致性、年龄，也未查找同一人重复。",)
    return ()


def _answers(table: pa.Table, cols, coded) -> dict:
    """Question columns for the scorer and OUT: text answers of integer-coded questions as int8
    (see codes.py); everything else as read."""
    return {q: to_codes(table.column(q)) if q in coded and is_text(table.column(q)) else table.column(q)
            for q in cols.questions}


@dataclass
class _Checked:
    """What the reader's and the checker's threads decide about a batch (see :func:`_identified`
    and :func:`_checked`)."""

    records: list                  # problems of this batch, in the order REJECTS lists them per line
    rows: int = 0                  # rows of the batch's table
    rejected: int = 0              # of which rejected
    result: pa.Table | None = None    # the rows for OUT
    unpassed: np.ndarray | None = None   # rows with cells that the scorer did not pass, to be named
    answers: dict | None = None    # question columns for the scorer
    bad: np.ndarray | None = None   # rows with an identity or shape error
    empty: np.ndarray | None = None     # rows with no cell
    ids: object = None             # idnumber.check_array of the id column, or None


def _identified(chunks, cols, coded, opts):
    """The checks that read one chunk alone, on the reader's thread right after the chunk is read
    (reading is the lightest stage): the answers for the scorer, identity numbers, birth date,
    sex, region and age. Yields (chunk, _Checked) with their problems, after the reader's own."""
    for chunk in chunks:
        pre = _Checked([record(line, col, "", value, code, **kw) for line, col, value, code, kw in chunk.problems])
        table = chunk.table
        if table is not None and table.num_rows:
            pre.answers = chunk.answers if chunk.answers is not None else _answers(table, cols, coded)
            ids = idnumber.check_array(table.column(ID_NUMBER), opts.as_of) if ID_NUMBER in table.column_names else None
            pre.bad, pre.empty, pre.ids = check_rows(table, chunk.lines, chunk.as_number, cols, opts, pre.records,
                                                     ids=ids, present=chunk.present)
        yield chunk, pre


def _checked(chunks, ins, cols, expected_rows: int):
    """Scoring, the same person twice (batches come in order, so the identity set sees every
    earlier row first) and the table for OUT, on its own thread between the reader's and the main
    loop (prefetch). The compiled loops and pyarrow release the GIL, so this overlaps reading the
    next chunk, the main thread's naming of problems and counts, and the writer's Parquet encoding."""
    # The duplicate set is made here, while the reader's thread reads the first chunk: mapping in
    # the memory of a province file's set takes about 0.1 s (kernels/screen.pyx IdSet).
    dups = Duplicates(expected_rows)
    for chunk, checked in chunks:
        table = chunk.table
        if table is not None and table.num_rows:
            scored = score(ins, pa.table(checked.answers))
            status = scored.column("status").combine_chunks()
            names = status.dictionary.to_pylist()
            ok = np.asarray(status.indices) == names.index("ok") if "ok" in names else np.zeros(table.num_rows, bool)
            checked.unpassed = np.flatnonzero(~ok & ~checked.empty)
            _batch(chunk, checked, cols, dups, scored, checked.answers, checked.ids, ok & ~checked.bad)
        yield chunk, checked


def _batch(chunk, checked, cols, dups, scored, answers, ids, accepted) -> None:
    """Rows accepted so far that repeat a person of an earlier row are rejected; the rest make the
    batch's table for OUT. (A repeated row has no other error, so REJECTS lists its lines in the
    same order whichever thread names the scorer's problems.)"""
    table, lines, records = chunk.table, chunk.lines, checked.records
    n = table.num_rows
    if ids is not None:
        cand = np.flatnonzero(accepted & (ids.reason == idnumber.OK))
        first = dups.first_lines(ids.key[cand], lines[cand])
        for i, f in zip(cand[first > 0], first[first > 0]):
            records.append(record(lines[i], cols.source(ID_NUMBER), ID_NUMBER, idnumber.mask(ids.number[i].as_py()),
                                  _dup_code(), first_line=int(f)))
        accepted[cand[first > 0]] = False
    checked.rows, checked.rejected = n, int(n - accepted.sum())

    parts = {}
    for cid in IDENTITY:
        if cid in table.column_names:
            parts[cid] = ids.number if cid == ID_NUMBER else _trimmed(table.column(cid)) if cid == REGION \
                else table.column(cid)
    parts["source_line"] = pa.array(lines, pa.int64())
    parts.update(answers)
    for name, col in zip(scored.column_names, scored.columns):
        parts[name] = col
    result = pa.table(parts)
    checked.result = result if accepted.all() else keep_rows(result, accepted)


def _trimmed(region):
    """Region codes as the check read them, spaces around removed (" 110101" passed as 110101, and
    must be counted and written as such, not as a region of its own). Only the cells of another
    length than six bytes (a few in a batch: spaced, or wrong and rejected) are read in Python."""
    if isinstance(region, pa.ChunkedArray):
        region = region.chunk(0) if region.num_chunks == 1 else region.combine_chunks()
    odd = pc.fill_null(pc.not_equal(pc.binary_length(region), 6), False)
    rows = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
    if not rows.size:
        return region
    values = region.take(pa.array(rows)).to_pylist()
    stripped = [v.strip() for v in values]
    if stripped == values:          # wrong codes only (rejected, ROW_010), nothing to trim
        return region
    return pc.replace_with_mask(region, odd, pa.array(stripped, region.type))


def keep_rows(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """``table.filter(keep)``. A batch keeps nearly all its rows, so numbers and text are copied
    run by run of kept rows by the compiled loop (validity bits and text offsets by numpy); other
    columns (booleans, several chunks) go through Arrow's filter."""
    if idnumber._screen is None:
        return table.filter(pa.array(keep))
    edges = np.diff(keep.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    runs = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    mask = None
    columns = []
    for col in table.columns:
        arr = col.chunk(0) if col.num_chunks == 1 else None
        if arr is not None and pa.types.is_dictionary(arr.type) and _runs_apply(arr.indices):
            columns.append(pa.DictionaryArray.from_arrays(_copy_runs(arr.indices, keep, runs), arr.dictionary))
        elif arr is not None and _runs_apply(arr):
            columns.append(_copy_runs(arr, keep, runs))
        else:
            mask = mask if mask is not None else pa.array(keep)
            columns.append(col.filter(mask))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _runs_apply(arr: pa.Array) -> bool:
    t = arr.type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)


def _copy_runs(arr: pa.Array, keep: np.ndarray, runs) -> pa.Array:
    starts, ends = runs
    m = int(ends.sum() - starts.sum())
    n, o = len(arr), arr.offset
    valid, nulls = None, 0
    if arr.null_count:
        bits = np.unpackbits(np.frombuffer(arr.buffers()[0], np.uint8), count=o + n, bitorder="little")[o:][keep]
        nulls = m - int(np.count_nonzero(bits))
        valid = pa.py_buffer(np.packbits(bits, bitorder="little")) if nulls else None
    if pa.types.is_string(arr.type):
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[o:o + n + 1]
        data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
        out, out_view = _buffer(int((offsets[ends].astype(np.int64) - offsets[starts]).sum()))
        kept, kept_view = _buffer((m + 1) * 4)
        idnumber._screen.copy_text_runs(data, offsets, out_view, kept_view.view(np.int32), starts, ends)
        return pa.Array.from_buffers(arr.type, m, [valid, kept, out], nulls)
    width = arr.type.bit_width // 8
    src = np.frombuffer(arr.buffers()[1], np.uint8)[o * width:(o + n) * width]
    out, out_view = _buffer(m * width)
    idnumber._screen.copy_runs(src, out_view, width, starts, ends)
    return pa.Array.from_buffers(arr.type, m, [valid, out], nulls)


def _buffer(nbytes: int):
    """A buffer from Arrow's memory pool, which keeps freed memory for the next batch (a fresh
    numpy array costs a zeroed page for every page first written), and a numpy view to fill it."""
    buf = pa.allocate_buffer(nbytes)
    return buf, np.frombuffer(buf, np.uint8)


def _dup_code():
    from ..errors import Code
    return Code.ROW_008


def _never_null(ins, coded) -> frozenset:
    """OUT columns that no scored row leaves empty: the line, the integer-coded questions that are
    required without condition (a scored row answered them), and the scorer's columns that every
    ok row fills (batch.never_null_when_ok)."""
    from ..batch import never_null_when_ok
    answered = [q.id for q in (*ins.items, *ins.fields) if q.id in coded and q.required
                and q.required_unless is None and getattr(q, "skip_when", None) is None]
    return frozenset(["source_line", *never_null_when_ok(ins), *answered])


def _out_schema(ins, cols, coded, source) -> pa.Schema:
    from ..batch import output_schema
    fields = [pa.field(c, pa.string()) for c in IDENTITY if c in cols.identity]
    fields.append(pa.field("source_line", pa.int64()))
    for q in cols.questions:
        t = source.schema.field(q).type
        fields.append(pa.field(q, pa.int8() if q in coded and is_text(pa.nulls(0, t)) else t))
    return pa.schema(fields + list(output_schema(ins)))
