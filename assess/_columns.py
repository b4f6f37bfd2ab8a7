"""Arrow columns → kernel inputs, without copying integer columns.

Integer and float columns are handed to the kernel as they are (data pointer, dtype, Arrow
validity bitmap); other layouts of the same values (half floats, string views, run-end encoding,
uint64) are first converted to one it reads (``_plain``). Only text columns are mapped here, to
int16 option indexes: option codes written as text ("4", "0b"), by the kernel's ``text_codes``
where a cell is printable ASCII and by pyarrow compute otherwise, and ICD-10 diagnosis cells, which become a state column (answered /
missing / malformed) plus one flag column per ``icd10_in`` condition. The mapping reproduces
``_reference.read_answers`` exactly; ICD-10 cells are read by the kernel's own scanner
(``icd10_cells``), which implements the grammar of ``assess.icd10`` by hand.
"""
from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import icd10
from ._plan import Plan
from .idnumber import string_buffers

K_ABSENT, K_INT8, K_INT16, K_INT32, K_INT64, K_UINT8, K_UINT16, K_UINT32, K_FLOAT64, K_INDEX, K_FLOAT32 = range(11)
_KINDS = {pa.int8(): K_INT8, pa.int16(): K_INT16, pa.int32(): K_INT32, pa.int64(): K_INT64,
          pa.uint8(): K_UINT8, pa.uint16(): K_UINT16, pa.uint32(): K_UINT32,
          pa.float64(): K_FLOAT64, pa.float32(): K_FLOAT32}
MISSING, BAD, SLOW_TEXT = -1, -2, -3   # SLOW_TEXT: kernels/score.pyx text_codes


class Inputs:
    """Pointers and kinds for every plan question; holds the arrays so the pointers stay valid."""

    def __init__(self, kernel, plan: Plan, batch: pa.RecordBatch, threads: int = 1):
        n_q = len(plan.questions)
        self.kernel = kernel
        self.keep: list = []
        self.col_ptr = np.zeros(n_q, np.uint64)
        self.col_kind = np.zeros(n_q, np.int8)
        self.valid_ptr = np.zeros(n_q, np.uint64)
        self.valid_off = np.zeros(n_q, np.int64)
        # One 0/1 array per plan flag; a flag whose column is absent stays all false.
        self.flags = [np.zeros(batch.num_rows, np.uint8) for _ in plan.flags]
        names = set(batch.schema.names)
        for q, qid in enumerate(plan.questions):
            if qid not in names or q in plan.text:   # text fields are stored by the caller, never scored
                continue
            col = _plain(batch.column(qid))
            if q in plan.icd10:
                mine = [k for k, (fq, _) in enumerate(plan.flags) if fq == q]
                state, col_flags = _icd10(kernel, col, bool(plan.required[q]), [plan.flags[k][1] for k in mine],
                                          threads)
                self._index(q, state)
                for k, f in zip(mine, col_flags):
                    self.flags[k] = f
            else:
                self._code_column(plan, q, col)
        self.flag_ptr = np.asarray([f.ctypes.data for f in self.flags] or [0], np.uint64)

    def _index(self, q: int, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, np.int16)
        self.keep.append(arr)
        self.col_ptr[q] = arr.ctypes.data
        self.col_kind[q] = K_INDEX

    def _code_column(self, plan: Plan, q: int, col: pa.Array) -> None:
        if pa.types.is_dictionary(col.type) and not (pa.types.is_string(col.type.value_type)
                                                     or pa.types.is_large_string(col.type.value_type)):
            col = col.cast(col.type.value_type)
        if pa.types.is_dictionary(col.type):
            # Map the few distinct values once, then look every cell up by its dictionary index.
            mapped = _map_other(plan, q, col.dictionary, self.kernel)
            indices = col.indices.fill_null(0).to_numpy(zero_copy_only=False)
            out = mapped[indices] if len(mapped) else np.full(len(col), MISSING, np.int16)
            if col.null_count:
                out[col.is_null().to_numpy(zero_copy_only=False)] = MISSING
            self._index(q, out)
            return
        if pa.types.is_uint64(col.type):
            col = _uint64_as_int64(col)
        kind = _KINDS.get(col.type)
        if kind is None:
            self._index(q, _map_other(plan, q, col, self.kernel))
            return
        validity, data = col.buffers()[:2]
        width = col.type.bit_width // 8
        self.keep.append(col)
        self.col_ptr[q] = data.address + col.offset * width
        self.col_kind[q] = kind
        if validity is not None and col.null_count:
            self.valid_ptr[q] = validity.address
            self.valid_off[q] = col.offset


def _plain(col: pa.Array) -> pa.Array:
    """The column in a layout the kernel reads: run-end encoded cells decoded, half floats as
    float32, string views as strings. Each holds the same values as before (the reference reads
    them by value), so a valid answer is never refused for how the file stored it."""
    if pa.types.is_run_end_encoded(col.type):
        col = pc.run_end_decode(col)
    if pa.types.is_dictionary(col.type):
        values = _plain(col.dictionary)
        return col if values.type == col.type.value_type else pa.DictionaryArray.from_arrays(col.indices, values)
    if pa.types.is_float16(col.type):
        return col.cast(pa.float32())
    if pa.types.is_string_view(col.type):
        return col.cast(pa.string())
    return col


def _uint64_as_int64(col: pa.Array) -> pa.Array:
    """A uint64 column as int64, values above int64's range clipped to its largest value: no option
    has either code, so such a cell alone is not allowed (a failed cast would refuse the column)."""
    top = pa.scalar(np.iinfo(np.int64).max, pa.uint64())
    return pc.min_element_wise(col, top, skip_nulls=False).cast(pa.int64())


def _map_other(plan: Plan, q: int, col: pa.Array, kernel=None) -> np.ndarray:
    """Option indexes of a text (or other non-numeric) column, as ``_reference.code_key`` reads it."""
    n = len(col)
    out = np.full(n, BAD, np.int16)
    if pa.types.is_null(col.type):
        return np.full(n, MISSING, np.int16)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
        if kernel is not None and hasattr(kernel, "text_codes") and len(col):   # (an older build has none)
            # The compiled loop reads the cells of printable ASCII; pyarrow's functions the rest.
            out = _text_codes(kernel, plan.keys[q], col)
            slow = np.flatnonzero(out == SLOW_TEXT)
            if slow.size:
                out[slow] = _map_other(plan, q, col.take(slow))
            return out
        text = pc.utf8_trim_whitespace(col)
        idx = pc.index_in(text, value_set=pa.array(plan.keys[q], pa.string()))
        out = idx.fill_null(BAD).to_numpy(zero_copy_only=False).astype(np.int16)
        missing = pc.or_kleene(pc.is_null(text), pc.equal(text, "")).fill_null(True)
        out[missing.to_numpy(zero_copy_only=False)] = MISSING
        return out
    # Booleans and anything else: every value is malformed, nulls are missing.
    out[col.is_null().to_numpy(zero_copy_only=False)] = MISSING
    return out


def _text_codes(kernel, keys, col: pa.Array) -> np.ndarray:
    blob = [k.encode("utf-8") for k in keys]
    out = np.empty(len(col), np.int16)
    kernel.text_codes(*string_buffers(col),
                      np.frombuffer(b"".join(blob), np.uint8) if any(blob) else np.zeros(0, np.uint8),
                      np.cumsum([0] + [len(k) for k in blob], dtype=np.int32), out)
    return out


@functools.lru_cache(maxsize=64)
def _category_table(ranges: tuple) -> np.ndarray:
    names = [f"{chr(65 + k // 100)}{k % 100:02d}" for k in range(2600)]
    return np.asarray([icd10.in_ranges(c, ranges) is not None for c in names], np.uint8)


def _categories(ranges_per_flag: list) -> np.ndarray:
    """One 0/1 table per flag over the 2,600 categories A00 … Z99 (letter index * 100 + number)."""
    table = np.zeros((len(ranges_per_flag), 2600), np.uint8)
    for f, ranges in enumerate(ranges_per_flag):
        table[f] = _category_table(tuple(tuple(r) for r in ranges))
    return table


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    # In a forked child: the parent's threads do not exist there, and the lock may have been held.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers(threads: int) -> ThreadPoolExecutor:
    """One pool of threads for the process, kept between calls: starting and joining threads on
    every call cost about a millisecond a batch, most of what two threads lost against one."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < threads:
            _pool = ThreadPoolExecutor(max(threads, 2), thread_name_prefix="assess-kernel")
        return _pool


def _join_all(parts: list) -> None:
    """Wait until every part has ended, even when a signal (Ctrl-C, a time limit) interrupts the
    wait, and raise that signal's exception afterwards: the parts read buffers by address that
    the caller frees as it unwinds."""
    interrupted = None
    while True:
        try:
            wait(parts)
            break
        except BaseException as stop:   # noqa: B902 - re-raised below, once the parts have ended
            interrupted = interrupted or stop
    if interrupted is not None:
        raise interrupted


def _split(work, n: int, threads: int) -> None:
    """Run work(start, stop) over n rows, on several threads when the batch is large enough."""
    threads = max(1, min(threads, n // 65536 or 1))
    if threads == 1:
        work(0, n)
        return
    # Parts start at multiples of 8 rows, so that bit-packed outputs split at whole bytes.
    bounds = np.linspace(0, n, threads + 1).astype(int) // 8 * 8
    bounds[-1] = n
    # The calling thread takes the first part itself, the pool the rest.
    rest: list = []
    try:
        pool = _workers(threads - 1)
        for k in range(1, threads):
            rest.append(pool.submit(work, bounds[k], bounds[k + 1]))
        work(bounds[0], bounds[1])
    finally:
        _join_all(rest)
    for done in rest:
        done.result()     # a part's error


def _icd10(kernel, col: pa.Array, required: bool, ranges_per_flag: list,
           threads: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
    """State (0 read, MISSING, BAD) and one 0/1 flag array per condition of an ICD-10 column."""
    n = len(col)
    state = np.zeros(n, np.int16)
    flags = np.zeros((len(ranges_per_flag), n), np.uint8)
    if pa.types.is_dictionary(col.type) or pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    if pa.types.is_null(col.type):
        state[:] = MISSING if required else 0
    elif pa.types.is_string(col.type):
        args = (*string_buffers(col), n, required, _categories(ranges_per_flag), state, flags)
        _split(lambda a, b: kernel.icd10_cells(*args, a, b), n, threads)
    else:
        # Lists of codes (or anything else): rare in files, read exactly as the reference does.
        from ._reference import holds, _read_icd10
        from .model import Field, Icd10In, Text
        field = Field("icd10", Text("ICD-10"), (), required, type="icd10_list")
        conds = [Icd10In("icd10", tuple(r)) for r in ranges_per_flag]
        for row, raw in enumerate(col.to_pylist()):
            problems: list = []
            codes = _read_icd10(field, raw, "", problems)
            state[row] = BAD if problems else MISSING if codes is None else 0
            for f, cond in enumerate(conds):
                flags[f, row] = bool(codes) and not problems and holds(cond, {"icd10": codes}) is not None
    return state, list(flags)


def run(kernel, kplan, plan: Plan, batch: pa.RecordBatch, threads: int) -> dict:
    """Score one record batch with the kernel, splitting the rows across threads."""
    n = batch.num_rows
    inputs = Inputs(kernel, plan, batch, threads)
    # Per-column outputs are written column-major and handed out as (n, columns) views, so that
    # each output column is contiguous (Arrow takes it without a copy).
    columns = {"domains": np.empty((plan.n_domains, n), np.int32), "scores": np.empty((plan.n_scores, n), np.int32),
               "categories": np.empty((len(plan.cat_otherwise), n), np.int8)}
    out = {
        "domains": columns["domains"].T,
        "scores": columns["scores"].T,
        "level_initial": np.empty(n, np.int8),
        "level": np.empty(n, np.int8),
        "rules": np.empty(n, np.uint32),
        "status": np.empty(n, np.uint8),
        "error_field": np.empty(n, np.int16),
        "categories": columns["categories"].T,
    }
    args = (kplan, inputs.col_ptr, inputs.col_kind, inputs.valid_ptr, inputs.valid_off, inputs.flag_ptr,
            columns["domains"], columns["scores"], out["level_initial"], out["level"], out["rules"], out["status"],
            out["error_field"], columns["categories"])
    # Each rule's flag as Arrow's packed booleans, made by the threads that scored the rows
    # (batch.to_arrow takes them as they are).
    out["rule_bits"] = np.empty((plan.n_rules, (n + 7) // 8), np.uint8)

    def work(a, b):
        kernel.score_rows(*args, a, b)
        kernel.rule_bits(out["rules"], out["rule_bits"], a, b)

    _split(work, n, threads)
    return out

