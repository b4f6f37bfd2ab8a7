"""Plain CSV chunks read straight into columns by the compiled loop ``parse_csv``
(kernels/screen.pyx): answer cells become int8 codes as :func:`codes.to_codes` reads them, identity
and other text cells stay text, as pyarrow's reader gives them (the bytes between the commas,
null when empty). Screening exports are nearly always this plain, and one pass over the bytes costs
a fraction of a general CSV parse followed by a second pass over every answer.

A chunk the loop does not take (a quote, a carriage return, a line with another number of cells, or
bytes that are not UTF-8) returns None and goes to pyarrow's reader exactly as before, so results
never depend on which path read a chunk (tests/screen/test_screen_plaincsv.py compares them).
"""
from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa

from .. import idnumber
from .codes import C_MISSING, SENTINEL, classify

SKIP, CODE, TEXT = 0, 1, 2       # kernels/screen.pyx parse_csv: what to do with each input column
MISSING = SENTINEL + 1           # parse_csv's code of a missing cell, under the validity bit (never a code)


def available() -> bool:
    return getattr(idnumber._screen, "parse_csv", None) is not None


class Plan:
    """What to do with each input column: ``names`` are the ids of the columns read, in header order
    (the order pyarrow's reader returns them in)."""

    def __init__(self, header: list, by_source: dict, coded: frozenset):
        self.ncols = len(header)
        self.kind = np.zeros(self.ncols, np.int8)
        self.index = np.zeros(self.ncols, np.int32)
        self.codes, self.texts, self.names, self.position = [], [], [], {}
        self.scratch: dict = {}       # array name -> Scratch, for parse()
        self.lines_per_byte = 0.0     # of the last chunk parsed
        for j, name in enumerate(header):
            cid = by_source.get(name)
            if cid is None:
                continue
            group = self.codes if cid in coded else self.texts
            self.kind[j] = CODE if cid in coded else TEXT
            self.index[j] = len(group)
            group.append(cid)
            self.names.append(cid)
            self.position[cid] = j


class Scratch:
    """Numpy buffers for one kind of array, each used again once nothing refers to it any more (the
    tables of the chunks in flight hold views of them). A fresh buffer costs the kernel a zeroed
    page for every page first written: with a chunk's read buffer and parsed columns, a tenth of
    the reader's time on a province file. ``keep`` covers the chunks in flight (two prefetch
    stages, the main loop and the writer's queue) with room to spare."""

    def __init__(self, keep: int = 12):
        self.keep, self.pool = keep, []

    def array(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        for buf in self.pool:
            if buf.size >= nbytes and sys.getrefcount(buf) == 3:   # the pool, ``buf`` and the call's argument
                break
        else:
            buf = np.empty(nbytes + nbytes // 16 + 64, np.uint8)     # room for a slightly longer chunk
            if len(self.pool) < self.keep:
                self.pool.append(buf)
        return buf[:nbytes].view(dtype).reshape(shape)


class RawRows:
    """The chunk's bytes and line starts: the text of a few rows, for naming their problems."""

    def __init__(self, data, starts: np.ndarray, plan: Plan):
        self.data, self.starts, self.plan = data, starts, plan

    def cells(self, r: int) -> list:
        line = bytes(self.data[self.starts[r]:self.starts[r + 1] - 1]).decode("utf-8")
        return [c if c else None for c in line.split(",")]

    def columns(self, rows, ids) -> dict:
        """Each of ``ids``'s cells in ``rows``, as :meth:`cells` reads them: one decode for all the
        rows, and columns taken by transposing, not cell by cell."""
        if not len(rows):
            return {cid: [] for cid in ids}
        data, starts = self.data, self.starts
        text = b"\n".join([bytes(data[starts[r]:starts[r + 1] - 1]) for r in rows.tolist()]).decode("utf-8")
        by_column = list(zip(*[line.split(",") for line in text.split("\n")]))
        return {cid: [c if c else None for c in by_column[self.plan.position[cid]]] for cid in ids}


def parse(data, plan: Plan):
    """(table of the columns read: answers int8, the rest text; present: bool per row; RawRows), or
    None when the chunk is not plain."""
    buf = np.frombuffer(data, np.uint8)
    n = buf.size
    if n == 0 or not is_utf8(data):
        return None
    nc, nt = len(plan.codes), len(plan.texts)

    def scratch(name, shape, dtype):
        return plan.scratch.setdefault(name, Scratch()).array(shape, dtype)
    # Room for a quarter more lines than the last chunk had for its size, or for every line feed
    # (counted only when the guess falls short).
    cap = int(n * plan.lines_per_byte * 1.25) + 64 if plan.lines_per_byte else idnumber._screen.count_byte(buf, 10) + 1
    while True:
        value = scratch("value", (nc, cap), np.int8)
        offsets = scratch("offsets", (nt, cap + 1), np.int32)
        text = scratch("text", (nt, n), np.uint8)     # untouched pages cost no memory
        starts = scratch("starts", (cap + 1,), np.int64)
        present = np.empty(cap, np.uint8)
        counts = np.empty(nc, np.int64)
        nulls = np.empty(nc + nt, np.int64)
        rows = idnumber._screen.parse_csv(buf, plan.kind, plan.index, SENTINEL, MISSING, value, offsets, text,
                                          starts, present, counts, nulls)
        if rows != -2:
            break
        cap = idnumber._screen.count_byte(buf, 10) + 1
    if rows < 0:
        return None
    plan.lines_per_byte = rows / n
    raw = RawRows(buf, starts[:rows + 1], plan)
    columns = {}
    for k, cid in enumerate(plan.codes):
        columns[cid] = _codes(value[k, :rows], rows, int(counts[k]), int(nulls[k]), raw, plan.position[cid])
    for k, cid in enumerate(plan.texts):
        columns[cid] = _text(offsets[k, :rows + 1], text[k], rows, int(nulls[nc + k]))
    table = pa.table({cid: columns[cid] for cid in plan.names})
    return table, present[:rows].view(bool), raw


def _codes(value, rows, other, missing, raw: RawRows, j: int) -> pa.Array:
    if other:   # cells with bytes the loop leaves to Python (a non-ASCII space …), or not codes
        for i in np.flatnonzero(value == SENTINEL):
            state, code = classify(raw.cells(int(i))[j])
            value[i] = MISSING if state == C_MISSING else code
            missing += state == C_MISSING
    valid = None
    if missing:
        absent = value == MISSING
        valid = pa.py_buffer(np.packbits(~absent, bitorder="little"))
        value[absent] = SENTINEL      # under a null, as codes.to_codes leaves it
    return pa.Array.from_buffers(pa.int8(), rows, [valid, pa.py_buffer(value)], missing)


def _text(offsets, data, rows, nulls) -> pa.Array:
    used = int(offsets[rows])
    valid = pa.py_buffer(np.packbits(offsets[1:] != offsets[:-1], bitorder="little")) if nulls else None
    return pa.Array.from_buffers(pa.string(), rows, [valid, pa.py_buffer(offsets), pa.py_buffer(data[:used])], nulls)


def is_utf8(data) -> bool:
    """Whether the chunk is valid UTF-8, as pyarrow's reader requires of every text cell."""
    whole = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(np.array([0, len(data)], np.int32)),
                                                   pa.py_buffer(data)])
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True
