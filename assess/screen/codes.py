"""Answer cells read as text, handed to the scorer as small integers.

A screening file's answers arrive as text (CSV, .xlsx, most Parquet exports). For a question
whose option codes are all plain integers 0–127 (every GB/T 42195 item except B.3.9), a cell
written as such an integer (spaces around allowed) becomes that int8 code; a blank cell becomes
null (missing). Anything else gets ``SENTINEL``, which is no option's code, so the scorer marks the
row not allowed and the reference scorer then names the problem from the original text. This
reads every cell exactly as ``_reference.code_key`` reads its text: "4" and " 4" are 4; "04",
"4.0", "四" are not allowed codes; "" and "  " are missing.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import idnumber
from .. import model as m

C_INT, C_MISSING, C_OTHER = 0, 1, 2       # kernels/screen.pyx mirrors these numbers
SENTINEL = -128


def int_coded(ins: m.Instrument) -> frozenset:
    """Ids of the questions whose every option key is a plain integer 0–127."""
    def plain(key: str) -> bool:
        return key.isascii() and key.isdigit() and key == str(int(key)) and int(key) <= 127
    return frozenset(q.id for q in (*ins.items, *ins.fields)
                     if q.options and getattr(q, "type", "code") == "code" and all(plain(o.key) for o in q.options))


def is_text(col) -> bool:
    t = col.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def classify(text) -> tuple[int, int]:
    """(state, value) of one cell, by the reference's own rule (``is_missing``, ``code_key``)."""
    key = text.strip() if text is not None else ""
    if not key:
        return C_MISSING, SENTINEL
    if key.isascii() and key.isdigit() and key == str(int(key)) and int(key) <= 127:
        return C_INT, int(key)
    return C_OTHER, SENTINEL


def to_codes(col) -> pa.Array:
    """A text column → int8 codes (null where blank, SENTINEL where not a plain integer)."""
    arr = idnumber._as_string(col)
    n = len(arr)
    if idnumber._screen is None:
        value, state = _parse_python(arr)
    else:
        value = np.empty(n, np.int8)
        state = np.empty(n, np.uint8)
        bitmap = np.empty((n + 7) // 8, np.uint8)
        other = idnumber._screen.parse_codes(*idnumber.string_buffers(arr), value, state, bitmap, SENTINEL)
        if other:   # cells with bytes the loop leaves to Python (a non-ASCII space …), or not codes
            rows = np.flatnonzero(state == C_OTHER)
            for i, v in zip(rows, arr.take(pa.array(rows)).to_pylist()):
                state[i], value[i] = classify(v)
        else:
            missing = int(n - np.count_nonzero(state != C_MISSING))
            return pa.Array.from_buffers(pa.int8(), n, [pa.py_buffer(bitmap) if missing else None,
                                                        pa.py_buffer(value)], missing)
    missing = state == C_MISSING
    return pa.array(value, pa.int8(), mask=missing if missing.any() else None)


def _parse_python(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The pure-Python twin of ``_screen.parse_codes``: each distinct text classified once."""
    enc = pc.dictionary_encode(arr)
    table = [classify(v) for v in enc.dictionary.to_pylist()] + [(C_MISSING, SENTINEL)]
    idx = enc.indices.fill_null(len(table) - 1).to_numpy(zero_copy_only=False)
    states = np.array([t[0] for t in table], np.uint8)
    values = np.array([t[1] for t in table], np.int8)
    return values[idx], states[idx]
