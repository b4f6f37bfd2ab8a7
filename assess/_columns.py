"""Arrow columns → kernel inputs, without copying integer columns.

Integer and float columns are handed to the kernel as they are (data pointer, dtype, Arrow
validity bitmap). Only text columns are mapped here, with pyarrow compute, to int16 option
indexes: option codes written as text ("4", "0b"), and ICD-10 diagnosis cells, which become a
state column (answered / missing / malformed) plus one flag column per ``icd10_in`` condition.
The mapping reproduces ``_reference.read_answers`` exactly.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import icd10
from ._plan import Plan

K_ABSENT, K_INT8, K_INT16, K_INT32, K_INT64, K_UINT8, K_UINT16, K_UINT32, K_FLOAT64, K_INDEX, K_FLOAT32 = range(11)
_KINDS = {pa.int8(): K_INT8, pa.int16(): K_INT16, pa.int32(): K_INT32, pa.int64(): K_INT64,
          pa.uint8(): K_UINT8, pa.uint16(): K_UINT16, pa.uint32(): K_UINT32,
          pa.float64(): K_FLOAT64, pa.float32(): K_FLOAT32}
MISSING, BAD = -1, -2
# ICD-10 codes as _reference/icd10 read them, upper-cased: category, sub-code, mark.
_ICD10_PATTERN = icd10._CODE.pattern
_SEPARATORS = icd10._SEPARATORS.pattern


class Inputs:
    """Pointers and kinds for every plan question; holds the arrays so the pointers stay valid."""

    def __init__(self, plan: Plan, batch: pa.RecordBatch):
        n_q = len(plan.questions)
        self.keep: list = []
        self.col_ptr = np.zeros(n_q, np.uint64)
        self.col_kind = np.zeros(n_q, np.int8)
        self.valid_ptr = np.zeros(n_q, np.uint64)
        self.valid_off = np.zeros(n_q, np.int64)
        flags: list[np.ndarray] = []
        names = set(batch.schema.names)
        for q, qid in enumerate(plan.questions):
            if qid not in names:
                continue
            col = batch.column(qid)
            if q in plan.icd10:
                state, col_flags = _icd10(col, bool(plan.required[q]), [r for fq, r in plan.flags if fq == q])
                self._index(q, state)
                flags.extend(col_flags)
            else:
                self._code_column(plan, q, col)
        # Flags are listed in plan order; a flag whose column is absent is all false.
        self.flags = self._flags_in_plan_order(plan, batch, flags)
        self.flag_ptr = np.asarray([f.ctypes.data for f in self.flags] or [0], np.uint64)

    def _flags_in_plan_order(self, plan, batch, computed):
        out, it = [], iter(computed)
        names = set(batch.schema.names)
        for fq, _ in plan.flags:
            out.append(next(it) if plan.questions[fq] in names else np.zeros(batch.num_rows, np.uint8))
        return out

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
            mapped = _map_other(plan, q, col.dictionary)
            indices = col.indices.fill_null(0).to_numpy(zero_copy_only=False)
            out = mapped[indices] if len(mapped) else np.full(len(col), MISSING, np.int16)
            if col.null_count:
                out[col.is_null().to_numpy(zero_copy_only=False)] = MISSING
            self._index(q, out)
            return
        if pa.types.is_uint64(col.type):
            try:
                col = col.cast(pa.int64())
            except pa.ArrowInvalid:   # beyond int64: no option has such a code; _map_other marks it bad
                pass
        kind = _KINDS.get(col.type)
        if kind is None:
            self._index(q, _map_other(plan, q, col))
            return
        validity, data = col.buffers()[:2]
        width = col.type.bit_width // 8
        self.keep.append(col)
        self.col_ptr[q] = data.address + col.offset * width
        self.col_kind[q] = kind
        if validity is not None and col.null_count:
            self.valid_ptr[q] = validity.address
            self.valid_off[q] = col.offset


def _map_other(plan: Plan, q: int, col: pa.Array) -> np.ndarray:
    """Option indexes of a text (or other non-numeric) column, as ``_reference.code_key`` reads it."""
    n = len(col)
    out = np.full(n, BAD, np.int16)
    if pa.types.is_null(col.type):
        return np.full(n, MISSING, np.int16)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = pc.utf8_trim_whitespace(col.cast(pa.string()))
        idx = pc.index_in(text, value_set=pa.array(plan.keys[q], pa.string()))
        out = idx.fill_null(BAD).to_numpy(zero_copy_only=False).astype(np.int16)
        missing = pc.or_kleene(pc.is_null(text), pc.equal(text, "")).fill_null(True)
        out[missing.to_numpy(zero_copy_only=False)] = MISSING
        return out
    # Booleans and anything else: every value is malformed, nulls are missing.
    out[col.is_null().to_numpy(zero_copy_only=False)] = MISSING
    return out


def _icd10(col: pa.Array, required: bool, ranges_per_flag: list) -> tuple[np.ndarray, list[np.ndarray]]:
    """State (0 answered, MISSING, BAD) and one 0/1 flag array per condition of an ICD-10 column."""
    n = len(col)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_null(col.type):
        col = pa.nulls(n, pa.string())
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        lists, blank, from_text = col, pc.is_null(col), False
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        trimmed = pc.utf8_trim_whitespace(col.cast(pa.string()))
        blank = pc.or_kleene(pc.is_null(trimmed), pc.equal(trimmed, "")).fill_null(True)
        lists = pc.split_pattern_regex(pc.fill_null(trimmed, ""), _SEPARATORS)
        from_text = True
    else:  # numbers are not ICD-10 codes
        state = np.where(col.is_null().to_numpy(zero_copy_only=False), MISSING if required else 0, BAD)
        return state.astype(np.int16), [np.zeros(n, np.uint8) for _ in ranges_per_flag]
    blank = blank.to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    if not (pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type)):
        bad_code = np.ones(len(flat), bool)
        cat = pa.nulls(len(flat), pa.string())
    else:
        # Splitting text leaves empty pieces at leading/trailing separators; a list holds what it holds.
        keep = (pc.not_equal(flat, "").fill_null(False).to_numpy(zero_copy_only=False) if from_text
                else np.ones(len(flat), bool))
        codes = pc.utf8_upper(pc.utf8_trim_whitespace(flat))
        ok = pc.match_substring_regex(codes, _ICD10_PATTERN).fill_null(False).to_numpy(zero_copy_only=False)
        bad_code = keep & ~ok
        cat = pc.utf8_slice_codeunits(codes, 0, 3)
    bad_row = np.zeros(n, bool)
    np.logical_or.at(bad_row, parent[bad_code], True)
    state = np.zeros(n, np.int16)
    state[bad_row] = BAD
    state[blank & ~bad_row] = MISSING if required else 0
    flags = []
    for ranges in ranges_per_flag:
        hit = np.zeros(len(flat), bool)
        for low, high in ranges:
            inside = pc.and_(pc.greater_equal(cat, low), pc.less_equal(cat, high)).fill_null(False)
            hit |= inside.to_numpy(zero_copy_only=False)
        hit &= ~bad_code
        row_hit = np.zeros(n, bool)
        np.logical_or.at(row_hit, parent[hit], True)
        # A row with a malformed code has no valid diagnosis list (reference: answers[q] = []).
        flags.append((row_hit & ~bad_row & ~blank).astype(np.uint8))
    return state, flags


def run(kernel, kplan, plan: Plan, batch: pa.RecordBatch, threads: int) -> dict:
    """Score one record batch with the kernel, splitting the rows across threads."""
    n = batch.num_rows
    inputs = Inputs(plan, batch)
    out = {
        "domains": np.empty((n, plan.n_domains), np.int32),
        "scores": np.empty((n, plan.n_scores), np.int32),
        "level_initial": np.empty(n, np.int8),
        "level": np.empty(n, np.int8),
        "rules": np.empty(n, np.uint32),
        "status": np.empty(n, np.uint8),
        "error_field": np.empty(n, np.int16),
    }
    args = (kplan, inputs.col_ptr, inputs.col_kind, inputs.valid_ptr, inputs.valid_off, inputs.flag_ptr,
            out["domains"], out["scores"], out["level_initial"], out["level"], out["rules"], out["status"],
            out["error_field"])
    threads = max(1, min(threads, n // 65536 or 1))
    if threads == 1:
        kernel.score_rows(*args, 0, n)
        return out
    bounds = np.linspace(0, n, threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: kernel.score_rows(*args, bounds[k], bounds[k + 1]), range(threads)))
    return out

