"""公民身份号码 (citizen identity numbers), GB 11643-1999: check, normalise, mask.

An identity number is a string identifier, never a number (shared/reference/data-hygiene.md §1):
18 characters, 17 digits (6 address code, 8 birth date YYYYMMDD, 3 sequence: odd = male,
even = female) and an ISO 7064 MOD 11-2 check character. A lowercase ``x`` is accepted and stored
as ``X``. Legacy 15-digit numbers (GB 11643-1989) are rejected, never "upgraded" by guessing the
century. Never print a full number: :func:`mask` keeps the first 6 and the last character.

:func:`check` checks one number; :func:`check_array` checks a pyarrow string array at once (the
screening path) and agrees with :func:`check` row for row.

>>> check("11010519491231002X").reason
0
>>> mask("11010519491231002X")
'110105***********X'
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _compiled as _compiled_module

# ISO 7064 MOD 11-2: weight of position i (0-based) is 2^(17 - i) mod 11; S mod 11 indexes CHECK_CHARS.
WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], np.int64)
CHECK_CHARS = "10X98765432"

# Reasons, in the order they are tested. 0 means well-formed.
OK, MISSING, LEGACY_15, MALFORMED, BAD_DATE, FUTURE_DATE, BAD_CHECK = range(7)
REASON_ZH = {
    MISSING: "为空",
    LEGACY_15: "15位旧号码",
    MALFORMED: "应为18位：前17位为数字，末位为数字或X",
    BAD_DATE: "第7–14位不是真实的日期",
    FUTURE_DATE: "出生日期晚于评估日期",
    BAD_CHECK: "校验码不符",
}
MIN_YEAR = 1800   # GB 11643's own appendix example is born in 1880
SLOW = 127        # compiled checks: a cell only Python may judge (non-ASCII bytes)


def _compiled():
    """``assess._screen`` (kernels/screen.pyx), or None when ASSESS_PUREPYTHON=1 or not built: the
    screening checks then run on their numpy / pyarrow twins, with the same results."""
    return _compiled_module.load("_screen", _compiled_module.SCREEN_ABI)


_screen = _compiled()


@dataclass(frozen=True)
class IdCheck:
    reason: int                    # OK or one of the reasons above
    number: str | None = None      # normalised (upper-case X) when reason is OK
    birth: dt.date | None = None
    sex: int | None = None         # 1 male (odd sequence), 2 female (even), as GB/T 2261.1
    expected_check: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason == OK


def check_char(body17: str) -> str:
    """The MOD 11-2 check character of the first 17 digits."""
    return CHECK_CHARS[sum(int(c) * int(w) for c, w in zip(body17, WEIGHTS)) % 11]


def check(value, as_of: dt.date | None = None) -> IdCheck:
    """Check one identity number (a str; anything else is malformed) against GB 11643."""
    as_of = as_of or dt.date.today()
    if value is None or (isinstance(value, str) and not value.strip()):
        return IdCheck(MISSING)
    if not isinstance(value, str):
        return IdCheck(MALFORMED)
    s = value.strip()
    if len(s) == 15 and s.isascii() and s.isdigit():
        return IdCheck(LEGACY_15)
    if len(s) != 18 or not s.isascii() or not s[:17].isdigit() or s[17] not in "0123456789xX":
        return IdCheck(MALFORMED)
    s = s.upper()
    try:
        birth = dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return IdCheck(BAD_DATE)
    if birth.year < MIN_YEAR:
        return IdCheck(BAD_DATE)
    if birth > as_of:
        return IdCheck(FUTURE_DATE)
    expected = check_char(s[:17])
    if s[17] != expected:
        return IdCheck(BAD_CHECK, expected_check=expected)
    return IdCheck(OK, s, birth, 1 if int(s[16]) % 2 else 2)


def mask(value) -> str:
    """Show an identity number without exposing it: first 6 and last 1 characters kept."""
    s = "" if value is None else str(value).strip()
    if len(s) < 8:
        return "*" * len(s)
    return s[:6] + "*" * (len(s) - 7) + s[-1]


# Runs of 15 to 18 identity characters (digits, a last X) standing alone in a text.
_NUMBER_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])[0-9]{14,17}[0-9Xx](?![0-9A-Za-z])")


def mask_in_text(text: str) -> str:
    """``text`` (a whole input line, say) with every identity number in it masked as :func:`mask` does."""
    return _NUMBER_IN_TEXT.sub(lambda m: mask(m.group()), text)


def is_valid(value, as_of: dt.date | None = None) -> bool:
    return check(value, as_of).ok


def _days_in_month(y, m):
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    dim = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)[np.clip(m, 0, 12)]
    return dim + ((m == 2) & leap)


@dataclass
class IdArrays:
    """Per-row results of :func:`check_array`."""

    reason: np.ndarray      # int8
    number: pa.Array        # normalised text (upper-case X), null where not OK
    birth: np.ndarray       # datetime64[D], NaT where not OK
    sex: np.ndarray         # int8: 1 male, 2 female, 0 where not OK
    key: np.ndarray         # int64: the 17 body digits as a number (-1 where not OK); for duplicates only


def string_buffers(arr: pa.Array):
    """(data bytes, int32 offsets of the n + 1 cell bounds, validity bitmap or empty, bit offset) of
    a pyarrow string array, as numpy views for the compiled checks."""
    validity, offsets, data = arr.buffers()
    offs = np.frombuffer(offsets, np.int32, count=arr.offset + len(arr) + 1)[arr.offset:]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    valid = np.frombuffer(validity, np.uint8) if validity is not None and arr.null_count else np.zeros(0, np.uint8)
    return data, offs, valid, arr.offset


def _as_string(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def check_array(arr, as_of: dt.date | None = None) -> IdArrays:
    """Check a column of identity numbers (pyarrow string array) without a Python loop."""
    as_of = as_of or dt.date.today()
    arr = _as_string(arr)
    if _screen is None:
        return _check_array_numpy(arr, as_of)
    n = len(arr)
    reason = np.empty(n, np.int8)
    days = np.empty(n, np.int32)
    sex = np.empty(n, np.int8)
    key = np.empty(n, np.int64)
    as_of_days = (np.datetime64(as_of, "D") - np.datetime64("1970-01-01", "D")).astype(np.int64)
    renorm = _screen.check_ids(*string_buffers(arr), int(as_of_days), reason, days, sex, key)
    birth = days.astype("datetime64[D]")
    slow = np.flatnonzero(reason == SLOW)
    for i, v in zip(slow, arr.take(pa.array(slow)).to_pylist() if slow.size else ()):
        c = check(v, as_of)
        reason[i], sex[i] = c.reason, c.sex or 0
        if c.ok:
            birth[i], key[i] = np.datetime64(c.birth, "D"), int(c.number[:17])
    ok = reason == OK
    birth[~ok] = np.datetime64("NaT")
    if renorm or slow.size and ok[slow].any():
        # Some numbers are written otherwise than normalised (spaces, a lowercase x): every OK
        # number is written again from its checked digits, without a pass over the strings.
        number = _from_digits(key, reason, ok) if n <= FIXED_TEXT_ROWS else _normalised(arr, ok, slow, as_of)
    elif ok.all():
        number = arr
    else:
        number = _nulls_where_not(arr, ok)
    return IdArrays(reason, number, birth, sex, key)


FIXED_TEXT_ROWS = (2 ** 31 - 1) // 18     # 18 bytes a number under 32-bit string offsets


def _from_digits(key: np.ndarray, reason: np.ndarray, ok: np.ndarray) -> pa.Array:
    """The normalised numbers of OK rows (body digits, then the check character), null elsewhere."""
    n = len(key)
    text = np.empty((n, 18), np.uint8)
    _screen.id_texts(key, reason, text)
    offsets = np.arange(0, 18 * n + 1, 18, dtype=np.int32)
    return _nulls_where_not(pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                                    pa.py_buffer(text)]), ok)


def _normalised(arr: pa.Array, ok: np.ndarray, slow: np.ndarray, as_of) -> pa.Array:
    """The same by strings (for columns beyond 32-bit offsets): Python's strip() for the cells it
    decided, Arrow's trim and upper for the rest."""
    fixed = {int(i): check(v, as_of).number for i, v in zip(slow, arr.take(pa.array(slow)).to_pylist())}
    number = pa.array([fixed[i] if i in fixed else v if o else None
                       for i, (v, o) in enumerate(zip(arr.to_pylist(), ok))], pa.string())
    return pc.if_else(pa.array(ok), pc.utf8_upper(pc.utf8_trim_whitespace(number)), pa.scalar(None, pa.string()))


def _nulls_where_not(arr: pa.Array, keep: np.ndarray) -> pa.Array:
    """``arr`` (a string array) with a null wherever ``keep`` is false: the same offsets and bytes
    under a new validity bitmap. (pyarrow's if_else copies every string, which on a province file
    cost three times the identity checks themselves.)"""
    valid = keep if not arr.null_count else keep & np.asarray(arr.is_valid())
    bits = np.packbits(np.concatenate([np.zeros(arr.offset, bool), valid]), bitorder="little")
    _, offsets, data = arr.buffers()
    return pa.Array.from_buffers(pa.string(), len(arr), [pa.py_buffer(bits), offsets, data],
                                 int(len(arr) - np.count_nonzero(valid)), arr.offset)


def _check_array_numpy(arr: pa.Array, as_of: dt.date) -> IdArrays:
    """The pure-Python twin of the compiled check (numpy over the fixed-width bytes)."""
    arr = pc.utf8_trim_whitespace(arr)
    arr = pc.utf8_upper(arr)                                  # x → X; digits unchanged
    n = len(arr)
    reason = np.full(n, MALFORMED, np.int8)
    birth = np.full(n, np.datetime64("NaT"), "datetime64[D]")
    sex = np.zeros(n, np.int8)
    key = np.full(n, -1, np.int64)
    valid = np.asarray(arr.is_valid())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    reason[~valid | (lengths == 0)] = MISSING

    def chars(rows, width):
        return data[offsets[:-1][rows][:, None] + np.arange(width)]

    r15 = np.flatnonzero(valid & (lengths == 15))
    if r15.size:
        c = chars(r15, 15)
        reason[r15[((c >= 48) & (c <= 57)).all(1)]] = LEGACY_15

    rows = np.flatnonzero(valid & (lengths == 18))
    if rows.size:
        c = chars(rows, 18)
        d = c[:, :17].astype(np.int64) - 48
        last = c[:, 17]
        well = ((d >= 0) & (d <= 9)).all(1) & (((last >= 48) & (last <= 57)) | (last == ord("X")))
        rows, d, last = rows[well], d[well], last[well]
        y = d[:, 6] * 1000 + d[:, 7] * 100 + d[:, 8] * 10 + d[:, 9]
        m = d[:, 10] * 10 + d[:, 11]
        day = d[:, 12] * 10 + d[:, 13]
        real = (y >= MIN_YEAR) & (m >= 1) & (m <= 12) & (day >= 1) & (day <= _days_in_month(y, m))
        born = np.full(rows.size, np.datetime64("NaT"), "datetime64[D]")
        months = ((y - 1970) * 12 + m - 1)[real]
        born[real] = months.astype("datetime64[M]").astype("datetime64[D]") + (day[real] - 1)
        future = real & (born > np.datetime64(as_of, "D"))
        expected = np.frombuffer(CHECK_CHARS.encode(), np.uint8)[(d * WEIGHTS).sum(1) % 11]
        good_check = expected == last
        r = np.full(rows.size, OK, np.int8)
        r[~good_check] = BAD_CHECK
        r[future] = FUTURE_DATE
        r[~real] = BAD_DATE
        reason[rows] = r
        ok = r == OK
        birth[rows[ok]] = born[ok]
        sex[rows[ok]] = np.where(d[ok, 16] % 2 == 1, 1, 2)
        key[rows[ok]] = d[ok] @ (10 ** np.arange(16, -1, -1, dtype=np.int64))
    number = pc.if_else(pa.array(reason == OK), arr, pa.scalar(None, pa.string()))
    return IdArrays(reason, number, birth, sex, key)
