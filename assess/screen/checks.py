"""Row checks for screening files, vectorised over a record batch.

Scoring (codes an item does not allow, missing items, contradictions) is the scorer's job: a row
whose ``status`` is not ``ok`` is re-read to name its problems as the reference scorer names them
(rejects are rare, so this costs nothing on a clean file). Everything else a screening office must catch is
checked here on whole columns: identity numbers (GB 11643), birth date and sex against them, region
codes, age under 60, empty rows and the same person twice in a file.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _reference, icd10, idnumber
from .. import model as m
from ..errors import Code, Problem, problem
from .columns import BIRTH, ID_NUMBER, REGION, SEX

ERROR, WARNING = "error", "warning"
_NUMERIC = re.compile(r"^\s*[+-]?\d+(\.\d*)?\s*$")
_REGION = re.compile(r"[0-9]{6}")
_SEX_CODES = {"男": 1, "1": 1, "M": 1, "MALE": 1, "女": 2, "2": 2, "F": 2, "FEMALE": 2,
              "0": 0, "9": 0, "未知": 0, "未说明": 0}     # GB/T 2261.1: 0 未知的性别, 9 未说明的性别
SEX_ZH = {1: "男", 2: "女"}


@dataclass(frozen=True)
class Options:
    as_of: dt.date
    under_60: str = "warn"        # "warn" (default) or "reject"
    min_age: int = 60


def record(line, column, field, value, code: Code, severity=ERROR, **kw) -> dict:
    where = f"第{int(line)}行"
    return {"line": int(line), "column": column or "", "field": field or "", "value": "" if value is None else str(value),
            "code": code.name, "severity": severity,
            "message": code.format(where=where, column=column or field or "", value=value, **kw)}


class Duplicates:
    """Identity numbers of the rows scored so far (17 body digits as int64) and their lines.

    Compiled: a hash set (kernels/screen.pyx), 12 bytes a slot, at most 75 % full: 12 M people
    fit 2^24 slots (192 MB). Pure Python: sorted arrays, 16 bytes a person, a binary search per row.
    """

    def __init__(self, expected: int = 0):
        self.keys = np.zeros(0, np.int64)
        self.lines = np.zeros(0, np.int64)
        # Sized for the rows expected (at most 2^24 slots, 192 MB, until more are seen), so that a
        # province file is not rehashed again and again as the set grows.
        capacity = min(max(expected, 0) * 4 // 3 + 1, 1 << 24)
        self._set = idnumber._screen.IdSet(max(capacity, 1 << 16)) if idnumber._screen is not None else None

    def first_lines(self, keys: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """For each candidate row (in line order): the line of an earlier row with the same key,
        or 0. Rows with a 0 are registered; the rest are duplicates."""
        first = np.zeros(keys.size, np.int64)
        if self._set is not None:
            self._set.first_lines(np.ascontiguousarray(keys, np.int64), np.ascontiguousarray(lines, np.int64), first)
            return first
        if keys.size == 0:
            return first
        pos = np.searchsorted(self.keys, keys)
        hit = pos < self.keys.size
        hit[hit] = self.keys[pos[hit]] == keys[hit]
        first[hit] = self.lines[pos[hit]]
        # Within the batch: the first occurrence (lowest line) wins.
        order = np.lexsort((lines, keys))
        k, ln = keys[order], lines[order]
        repeat = np.zeros(k.size, bool)
        repeat[1:] = k[1:] == k[:-1]
        if repeat.any():
            start = np.maximum.accumulate(np.where(~repeat, np.arange(k.size), 0))
            inner = np.zeros(k.size, np.int64)
            inner[repeat] = ln[start[repeat]]
            first[order[repeat & (first[order] == 0)]] = inner[repeat & (first[order] == 0)]
        new = first == 0
        if new.any():
            nk, nl = keys[new], lines[new]
            o = np.argsort(nk, kind="stable")
            nk, nl = nk[o], nl[o]
            at = np.searchsorted(self.keys, nk)
            self.keys = np.insert(self.keys, at, nk)
            self.lines = np.insert(self.lines, at, nl)
        return first


def _text(table: pa.Table, cid: str) -> pa.Array:
    return pc.utf8_trim_whitespace(table.column(cid).combine_chunks().cast(pa.string()))


def _parse_dates(arr: pa.Array) -> np.ndarray:
    """YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日 or YYYYMMDD → datetime64[D] (NaT when not a
    real date). The compiled loop decides ASCII cells; Arrow's parser the rest, as it always has."""
    arr = idnumber._as_string(arr)
    if idnumber._screen is None:
        return _parse_dates_arrow(pc.utf8_trim_whitespace(arr))
    n = len(arr)
    days = np.empty(n, np.int32)
    state = np.empty(n, np.uint8)
    slow = idnumber._screen.parse_dates(*idnumber.string_buffers(arr), days, state)
    out = days.astype("datetime64[D]")
    out[state != 0] = np.datetime64("NaT")
    if slow:
        rows = np.flatnonzero(state == 3)
        out[rows] = _parse_dates_arrow(pc.utf8_trim_whitespace(arr.take(pa.array(rows))))
    return out


def _parse_dates_arrow(arr: pa.Array) -> np.ndarray:
    norm = pc.replace_substring_regex(arr, r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$", r"\1-\2-\3")
    norm = pc.replace_substring_regex(norm, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    norm = pc.replace_substring_regex(norm, r"^(\d{4})-(\d)-", r"\1-0\2-")
    norm = pc.replace_substring_regex(norm, r"-(\d)$", r"-0\1")
    ts = pc.strptime(norm, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 02-30 over to 03-02: keep only dates that format back to what was written.
    real = pc.fill_null(pc.equal(pc.strftime(ts, format="%Y-%m-%d"), norm), False)
    ts = pc.if_else(real, ts, pa.scalar(None, ts.type))
    return np.asarray(ts.cast(pa.date32()).to_numpy(zero_copy_only=False), "datetime64[D]")


def _filled(arr) -> np.ndarray:
    """Cells with something other than whitespace."""
    arr = idnumber._as_string(arr)
    if arr.null_count == len(arr):
        return np.zeros(len(arr), bool)
    return np.asarray(pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0), False))


def _lookup(col, fn) -> tuple[np.ndarray, pa.Array]:
    """fn applied once per distinct value (None for null): (per-row results, the distinct values)."""
    enc = pc.dictionary_encode(idnumber._as_string(col))
    values = enc.dictionary.to_pylist()
    table = np.array([fn(v) for v in values] + [fn(None)])
    idx = enc.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    return table[idx], enc


def _region_wrong(col) -> np.ndarray:
    """Cells that are not a 6-digit code (GB/T 2260); a blank is not a code either, a null is no cell."""
    def wrong(v):
        return v is not None and _REGION.fullmatch(v.strip()) is None
    return _compiled_or_lookup(col, "region_codes", wrong).astype(bool)


def _sex_codes(col) -> np.ndarray:
    """1 male, 2 female, 0 unknown or blank cell, -1 not a sex code (GB/T 2261.1)."""
    def code(v):
        return 0 if v is None else _SEX_CODES.get(v.strip().upper(), -1)
    return _compiled_or_lookup(col, "sex_codes", code)


def _compiled_or_lookup(col, name: str, fn) -> np.ndarray:
    """int8 per cell from the compiled loop ``name`` (kernels/screen.pyx), which leaves to ``fn`` the
    cells it marks SLOW; ``fn`` once per distinct value when the loop is not built."""
    arr = idnumber._as_string(col)
    if idnumber._screen is None:
        return _lookup(arr, fn)[0].astype(np.int8)
    out = np.empty(len(arr), np.int8)
    if getattr(idnumber._screen, name)(*idnumber.string_buffers(arr), out):
        rows = np.flatnonzero(out == idnumber.SLOW)
        out[rows] = [fn(v) for v in arr.take(pa.array(rows)).to_pylist()]
    return out


def _ymd(birth: np.ndarray) -> np.ndarray:
    """datetime64[D] → YYYYMMDD as int64 (civil-from-days, H. Hinnant), without calendar types."""
    z = birth.astype(np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + (m <= 2)
    return y * 10000 + m * 100 + d


def _age(birth: np.ndarray, as_of: dt.date) -> np.ndarray:
    """Whole years from birth to as_of: one less before this year's birthday."""
    return (as_of.year * 10000 + as_of.month * 100 + as_of.day - _ymd(birth)) // 10000


def _younger(birth: np.ndarray, as_of: dt.date, years: int) -> np.ndarray:
    """``_age(birth, as_of) < years`` (False where birth is NaT) by one comparison of days: the age
    is below ``years`` exactly for births on or after the first day whose YYYYMMDD exceeds
    as_of's minus ``years`` × 10000 (the day after that birthday; 1 March for a 29 February)."""
    y = as_of.year - years
    if y < 1:
        return ~np.isnat(birth)
    try:
        first = dt.date(y, as_of.month, as_of.day) + dt.timedelta(days=1)
    except ValueError:        # 29 February in a common year
        first = dt.date(y, 3, 1)
    return birth >= np.datetime64(first, "D")


def check_rows(table: pa.Table, lines: np.ndarray, as_number: dict, cols, opts: Options, out: list,
               ids=None, present=None) -> np.ndarray:
    """Identity and shape checks. Appends records to ``out``; returns (rows with an error, empty rows,
    the identity-number check or None). ``ids``: ``idnumber.check_array`` of the id column, if done;
    ``present``: the rows with any cell, if the reader knows them (else: any non-null column)."""
    n = table.num_rows
    bad = np.zeros(n, bool)
    src = cols.source

    # A row with no value in any recognised column is not an assessment.
    if present is None:
        present = np.zeros(n, bool)
        for name in table.column_names:
            col = table.column(name)
            if col.null_count == 0:
                present[:] = True
                break
            present |= col.is_valid().to_numpy()
    for i in np.flatnonzero(~present):
        out.append(record(lines[i], "", "", None, Code.ROW_016))
    bad |= ~present
    live = present

    for cid, mask in as_number.items():
        hit = mask & live
        if hit.any():
            vals = table.column(cid).take(pa.array(np.flatnonzero(hit))).to_pylist()
            for i, v in zip(np.flatnonzero(hit), vals):
                shown = idnumber.mask(v) if cid == ID_NUMBER else v
                out.append(record(lines[i], src(cid), cid, shown, Code.ROW_004))
            bad |= hit

    if ID_NUMBER in table.column_names:
        ids = ids if ids is not None else idnumber.check_array(table.column(ID_NUMBER), opts.as_of)
        wrong = (ids.reason != idnumber.OK) & live & ~as_number.get(ID_NUMBER, np.zeros(n, bool))
        if wrong.any():
            raw = table.column(ID_NUMBER).take(pa.array(np.flatnonzero(wrong))).to_pylist()
            for i, v in zip(np.flatnonzero(wrong), raw):
                c = idnumber.check(v, opts.as_of)
                shown, col = idnumber.mask(v), src(ID_NUMBER)
                if c.reason == idnumber.MISSING:
                    out.append(record(lines[i], col, ID_NUMBER, None, Code.ROW_012))
                elif c.reason == idnumber.LEGACY_15:
                    out.append(record(lines[i], col, ID_NUMBER, shown, Code.ROW_011))
                elif c.reason == idnumber.BAD_CHECK:
                    out.append(record(lines[i], col, ID_NUMBER, shown, Code.ROW_002, expected=c.expected_check))
                elif c.reason in (idnumber.BAD_DATE, idnumber.FUTURE_DATE):
                    out.append(record(lines[i], col, ID_NUMBER, shown, Code.ROW_003,
                                      detail=idnumber.REASON_ZH[c.reason]))
                else:
                    out.append(record(lines[i], col, ID_NUMBER, shown, Code.ROW_001,
                                      detail=idnumber.REASON_ZH[idnumber.MALFORMED]))
            bad |= wrong
    else:
        ids = None
    id_ok = ids.reason == idnumber.OK if ids is not None else np.zeros(n, bool)
    # A number stored as a number (ROW_004) lost its last digits: even when they happen to pass the
    # check, the birth date and sex in it are not the person's, so nothing is compared with them.
    id_ok &= ~as_number.get(ID_NUMBER, np.zeros(n, bool))

    if REGION in table.column_names:
        # A 6-digit code (GB/T 2260), judged once per distinct value; a blank is not a code either.
        wrong = _region_wrong(table.column(REGION)) & live
        wrong &= ~as_number.get(REGION, np.zeros(n, bool))     # a number cell was rejected above
        _emit(out, table, REGION, wrong, lines, src, Code.ROW_010)
        bad |= wrong

    birth = np.where(id_ok, ids.birth, np.datetime64("NaT", "D")) if ids is not None \
        else np.full(n, np.datetime64("NaT"), "datetime64[D]")
    if BIRTH in table.column_names:
        col = table.column(BIRTH).combine_chunks()
        given = _parse_dates(col)
        malformed = np.isnat(given) & live
        if malformed.any():
            malformed &= _filled(col)
        _emit(out, table, BIRTH, malformed, lines, src, Code.ROW_013)
        differ = id_ok & ~np.isnat(given) & (given != ids.birth if ids is not None else False) & live
        if differ.any():
            for i in np.flatnonzero(differ):
                out.append(record(lines[i], src(BIRTH), BIRTH, str(given[i]), Code.ROW_005,
                                  expected=str(ids.birth[i])))
        bad |= malformed | differ
        birth = np.where(np.isnat(birth), given, birth)

    if SEX in table.column_names:
        sex = _sex_codes(table.column(SEX))
        malformed = (sex < 0) & live
        _emit(out, table, SEX, malformed, lines, src, Code.ROW_014)
        differ = id_ok & (sex > 0) & (ids.sex != sex if ids is not None else False) & live
        if differ.any():
            vals = table.column(SEX).take(pa.array(np.flatnonzero(differ))).to_pylist()
            for i, v in zip(np.flatnonzero(differ), vals):
                out.append(record(lines[i], src(SEX), SEX, v, Code.ROW_006, expected=SEX_ZH[int(ids.sex[i])]))
        bad |= malformed | differ

    known = ~np.isnat(birth) & live
    if known.any():
        young = known & _younger(birth, opts.as_of, opts.min_age) & ~bad
        severity = ERROR if opts.under_60 == "reject" else WARNING
        col = ID_NUMBER if ID_NUMBER in table.column_names else BIRTH
        rows = np.flatnonzero(young)
        for i, age in zip(rows, _age(birth[rows], opts.as_of)):
            out.append(record(lines[i], src(col), col, idnumber.mask(table.column(col)[i].as_py())
                              if col == ID_NUMBER else table.column(col)[i].as_py(),
                              Code.ROW_007, severity, as_of=opts.as_of.isoformat(), age=int(age)))
        if severity == ERROR:
            bad |= young
    return bad, ~present, ids


def _emit(out, table, cid, mask, lines, src, code):
    if mask.any():
        vals = table.column(cid).take(pa.array(np.flatnonzero(mask))).to_pylist()
        for i, v in zip(np.flatnonzero(mask), vals):
            out.append(record(lines[i], src(cid), cid, v, code))


def score_problems(ins: m.Instrument, chunk, rows: np.ndarray, lines: np.ndarray, cols, out: list) -> None:
    """Name the problems of rows the scorer did not pass, from the answers as read (text), as the
    reference scorer names them: column by column (:class:`ProblemNamer`) when the instrument's
    constraints read answers alone (:func:`_answers_only`), else row by row by the reference."""
    if rows.size == 0:
        return
    columns = chunk.columns(rows, cols.questions)
    at = lines[rows]
    if _answers_only(ins):
        named = ProblemNamer(ins).name(columns, at)
    else:
        named = [_reference.evaluate(ins, {q: v[k] for q, v in columns.items()}, row=int(line)).problems
                 for k, line in enumerate(at)]
    for k, (line, problems) in enumerate(zip(at, named)):
        for p in problems:
            value = columns[p.item][k] if p.item in columns else None
            out.append(_answer_record(ins, p, value, int(line), cols))
        if not problems:   # the scorer and the reference disagree: still never drop the row
            out.append(record(line, "", "", None, Code.RESP_004, detail="评分状态异常"))


def answer_problems(ins: m.Instrument, answers: dict, row: int, order: dict | None = None) -> list:
    """``_reference.evaluate(ins, answers, row).problems`` without the scoring: the answers read,
    then the constraints that hold, then every missing answer that no skip or condition excuses,
    in the reference's order and words. Only for instruments whose constraints read answers alone
    (:func:`_answers_only`); a province file has rows like this by the thousand, and the scores,
    levels and trace the reference also works out were a little over half of their cost."""
    given, problems, missing = _reference.read_answers(ins, answers, row)
    return _after_reading(ins, given, problems, missing, answers.get, row, order)


def _after_reading(ins, given: dict, problems: list, missing: list, raw, row: int, order: dict | None,
                   where: str | None = None) -> list:
    """The rest of :func:`answer_problems` once the answers are read; ``raw(qid)``: the cell as given;
    ``where``: instead of the row's own (ProblemNamer's placeholder)."""
    if missing:
        skipped = {i.id for i in ins.items if i.skip_when is not None and _reference.holds(i.skip_when, given)}
        missing = [q for q in missing if q not in skipped]
    missing += [f.id for f in _unless_fields(ins) if _reference.is_missing(raw(f.id))
                and not _reference.holds(f.required_unless, given)]
    order = order or {qid: k for k, qid in enumerate(ins._questions)}
    missing.sort(key=order.__getitem__)
    where = where if where is not None else _reference._where(ins, row)
    for c in ins.constraints:
        if _reference.holds(c.when, given):
            problems.append(problem(Code.RESP_004, where=where, item=_reference._first_field(c.when),
                                    detail=c.message.zh))
    for qid in missing:
        q = ins.question(qid)
        problems.append(problem(Code.RESP_003, where=where, item=qid, label=q.label.zh,
                                allowed=q.allowed_text if q.options else icd10.EXPECTED))
    return problems


@functools.lru_cache(maxsize=64)
def _unless_fields(ins: m.Instrument) -> tuple:
    return tuple(f for f in ins.fields if f.required_unless is not None)


_WHERE = "\x00where\x00"     # ProblemNamer's placeholder for a row's place in its messages


class ProblemNamer:
    """:func:`answer_problems` for many rows at once, column by column.

    A question's cells are read once per distinct text (a memo of what reading gives when it finds
    nothing wrong), so a row's answers are not all read again: per row, only the cells where
    reading finds something wrong are read with the row's number (their problems name it), and
    the conditions (skips, required-unless, constraints) see the answers of the fields they read.
    Rows with the same dirty cells and the same values for the conditions are named once and
    placed at each row's line. Naming rejected rows one at a time was the largest piece of Python
    in a province run.
    """

    _DIRTY, _ABSENT = object(), object()
    _MEMO_TYPES = (str, int)    # cells equal only to cells read alike (a bool is not an int here: 1 == True)
    _DISTINCT_TYPES = frozenset((*_MEMO_TYPES, type(None)))   # columns of these alone: _by_distinct

    def __init__(self, ins: m.Instrument):
        self.ins = ins
        self.questions = (*ins.items, *ins.fields)
        conditions = [q.skip_when for q in ins.items if q.skip_when is not None]
        conditions += [q.required_unless for q in self.questions if q.required_unless is not None]
        conditions += [c.when for c in ins.constraints]
        self.read_by_conditions = frozenset(f for c in conditions for f in _fields_read(c))
        self.order = {qid: k for k, qid in enumerate(ins._questions)}

    def name(self, columns: dict, lines) -> list[list]:
        """The problems of each row; ``columns``: question id → the rows' cells, as given."""
        n = len(lines)
        dirty: list[list] = [[] for _ in range(n)]
        given: list[dict] = [{} for _ in range(n)]
        for q in self.questions:
            cells = columns.get(q.id)
            cells = cells if cells is not None else [None] * n
            keep = q.id in self.read_by_conditions
            if set(map(type, cells)) <= self._DISTINCT_TYPES:
                self._by_distinct(q, cells, keep, dirty, given)
                continue
            memo: dict = {}
            for r, raw in enumerate(cells):
                if type(raw) in self._MEMO_TYPES:
                    value = memo.get(raw, memo)
                    if value is memo:
                        value = memo[raw] = self._clean(q, raw)
                else:
                    value = self._clean(q, raw)
                if value is self._DIRTY:
                    dirty[r].append(q)
                elif keep and value is not self._ABSENT:
                    given[r][q.id] = value
        # Rows alike name alike problems: a row's problems depend on its dirty cells, on the values
        # the conditions read and on which unless-fields are blank, and on its line only through
        # ``where``. Each such row is named once with a placeholder for ``where``.
        named = []
        memo: dict = {}
        unless = _unless_fields(self.ins)
        for r, line in enumerate(lines):
            def raw(qid, r=r):
                return columns[qid][r] if qid in columns else None
            key = self._row_key(dirty[r], given[r], raw, unless)
            try:
                template = memo.get(key)
            except TypeError:       # a cell or value that cannot be a key (a list from an API caller)
                key = template = None
            if template is None:
                problems: list = []
                missing: list = []
                for q in dirty[r]:
                    _reference.read_answer(self.ins, q, raw(q.id), _WHERE, given[r], problems, missing)
                template = _after_reading(self.ins, given[r], problems, missing, raw, int(line), self.order,
                                          where=_WHERE)
                if key is not None:
                    memo[key] = template
            where = _reference._where(self.ins, int(line))
            named.append([Problem(p.code, p.message.replace(_WHERE, where), p.where.replace(_WHERE, where),
                                  p.item, p.line) for p in template])
        return named

    @staticmethod
    def _row_key(dirty: list, given: dict, raw, unless: tuple) -> tuple:
        """What a row's problems depend on besides its line (unhashable when a cell or value is a
        list). A cell's type is part of it: 1, 1.0 and True are equal keys but not read alike."""
        cells = [raw(q.id) for q in dirty]
        return (tuple(zip([q.id for q in dirty], map(type, cells), cells)),
                tuple((qid, v.key if type(v) is m.Option else v) for qid, v in given.items()),  # an option by its key:
                tuple(_reference.is_missing(raw(f.id)) for f in unless))                       # hashing it is slow

    def _by_distinct(self, q, cells: list, keep: bool, dirty: list, given: list) -> None:
        """The loop of :meth:`name` for a column of text, integers and blanks: each distinct cell is
        read once; rows are looked at again, by a plain pass over the column, only to mark the dirty
        ones (when there are any) and to keep values for the conditions that read the field."""
        values = {raw: self._clean(q, raw) for raw in set(cells)}
        bad = {raw for raw, v in values.items() if v is self._DIRTY}
        if bad:
            for r in [r for r, raw in enumerate(cells) if raw in bad]:
                dirty[r].append(q)
        if keep:
            for r, raw in enumerate(cells):
                value = values[raw]
                if value is not self._DIRTY and value is not self._ABSENT:
                    given[r][q.id] = value

    def _clean(self, q, raw):
        """What reading ``raw`` gives when it finds nothing wrong: the value, or _ABSENT (an optional
        answer left blank); _DIRTY when it names a problem or a missing answer."""
        out: dict = {}
        problems: list = []
        missing: list = []
        _reference.read_answer(self.ins, q, raw, "", out, problems, missing)
        if problems or missing:
            return self._DIRTY
        return out.get(q.id, self._ABSENT)


def _fields_read(cond) -> set:
    """The questions a condition reads."""
    from ..instrument import iter_conditions
    fields: set = set()
    for c in iter_conditions(cond):
        fields.update(getattr(c, "fields", ()) or ())
        if getattr(c, "field", None):
            fields.add(c.field)
    return fields


def _answers_only(ins: m.Instrument) -> bool:
    """Whether no constraint of ``ins`` reads a score (which only the whole evaluation works out)."""
    def reads_score(cond) -> bool:
        if isinstance(cond, m.ScoreBetween):
            return True
        return any(reads_score(c) for c in getattr(cond, "conditions", ()))
    return not any(reads_score(c.when) for c in ins.constraints)


def _answer_record(ins, p, value, line, cols) -> dict:
    item = p.item
    q = ins.question(item) if item else None
    value = value if item else None
    where = f"第{line}行"
    column = cols.source(item) if item else ""
    label = q.label.zh if q else ""
    allowed = q.allowed_text if q is not None and q.options else ""
    if p.code is Code.RESP_002 and isinstance(value, str) and not _NUMERIC.match(value):
        return record(line, column, item, value, Code.ROW_009, item=item, label=label, allowed=allowed)
    if p.code is Code.RESP_002:
        msg = f"{where}，{column}（{item} {label}）：代码 {value!r} 不是允许的答案。允许：{allowed}。"
    elif p.code is Code.RESP_003:
        msg = f"{where}，{column}（{item} {label}）：必答项没有答案。请填写 {allowed or 'ICD-10 编码'} 之一。"
    elif p.code is Code.RESP_005:
        msg = f"{where}，{column}（{item} {label}）：{value!r} 不是 ICD-10 编码（如 F03、F00.1，多个以 ; 分隔）。"
    elif p.code is Code.RESP_004:
        msg = f"{where}：{p.message.split(': ', 1)[-1]}"
    else:
        msg = f"{where}：{p.message}"
    return {"line": line, "column": column, "field": item or "", "value": "" if value is None else str(value),
            "code": p.code.name, "severity": ERROR, "message": msg}
