"""The compiled screening checks (kernels/screen.pyx) agree with their pure-Python twins cell by cell,
on random cells that include every odd case: spaces (ASCII and not), lowercase x, non-ASCII bytes,
impossible dates, leading zeros. Without the compiled module (ASSESS_PUREPYTHON=1) the twins are
compared with themselves, so the file runs on both backends."""
import datetime as dt
import random

import numpy as np
import pyarrow as pa
import pytest

from assess import _reference, idnumber
from assess.screen import checks, codes, run

AS_OF = dt.date(2026, 1, 15)


@pytest.fixture
def pure(monkeypatch):
    """Run a block on the twins: returns a function that calls fn with the compiled module hidden."""
    def run(fn, *args):
        with monkeypatch.context() as m:
            m.setattr(idnumber, "_screen", None)
            return fn(*args)
    return run


def _cells(rng, alphabet, n, width=(0, 4)):
    out = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append(None)
        else:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(*width))))
    return out


def test_answer_codes_match_the_reference_reading(pure, seed=11):
    rng = random.Random(seed)
    cells = _cells(rng, ["0", "1", "4", "7", "9", " ", "\t", "\u3000", "四", "a", ".", "-", "\x1c"], 4000)
    cells += ["0", "00", "04", "127", "128", "999", " 3 ", "\u30003", "", "  ", "3.0", "-0", "+1"]
    arr = pa.array(cells, pa.string())
    got = codes.to_codes(arr).to_pylist()
    assert got == pure(codes.to_codes, arr).to_pylist()
    for cell, value in zip(cells, got):
        key = None if _reference.is_missing(cell) else _reference.code_key(cell)
        if key is None:
            assert value is None, cell
        elif key.isascii() and key.isdigit() and key == str(int(key)) and int(key) <= 127:
            assert value == int(key), cell
        else:
            assert value == codes.SENTINEL, cell


def test_answer_codes_sliced_and_chunked():
    arr = pa.chunked_array([pa.array(["1", "2", None]), pa.array(["x", "3"])])
    assert codes.to_codes(arr).to_pylist() == [1, 2, None, codes.SENTINEL, 3]
    assert codes.to_codes(pa.array(["9", "1", "2", None])[1:]).to_pylist() == [1, 2, None]


def _id_cells(rng, n):
    out = []
    for _ in range(n):
        body = rng.choice(["110105", "440524", "310104"]) + \
            f"{rng.randint(1790, 2030)}{rng.randint(0, 13):02d}{rng.randint(0, 32):02d}{rng.randint(0, 999):03d}"
        s = list(body + idnumber.check_char(body))
        op = rng.random()
        if op < 0.1:
            s[rng.randrange(18)] = rng.choice("0123456789Xx a中")
        elif op < 0.15:
            s = s[:15]
        elif op < 0.2:
            s[-1] = s[-1].lower()
        elif op < 0.25:
            s = [rng.choice([" ", "\u3000", "\t", "\x1d"])] + s + [rng.choice([" ", "\u3000", ""])]
        out.append(None if op > 0.98 else "".join(s))
    return out


def test_id_numbers_match_the_scalar_check(pure, seed=5):
    values = _id_cells(random.Random(seed), 5000)
    arr = pa.array(values, pa.string())
    fast, twin = idnumber.check_array(arr, AS_OF), pure(idnumber.check_array, arr, AS_OF)
    for i, v in enumerate(values):
        c = idnumber.check(v, AS_OF)
        assert fast.reason[i] == c.reason, repr(v)
        assert twin.reason[i] == c.reason or not v.isascii(), repr(v)   # the twin trims as Arrow does
        if c.ok:
            assert fast.number[i].as_py() == c.number and fast.key[i] == int(c.number[:17])
            assert fast.birth[i] == np.datetime64(c.birth) and fast.sex[i] == c.sex
        else:
            assert not fast.number[i].is_valid and np.isnat(fast.birth[i])


@pytest.mark.parametrize("fixed_rows", [idnumber.FIXED_TEXT_ROWS, 0], ids=["from digits", "by strings"])
def test_id_numbers_written_with_spaces_or_lowercase_x_come_back_normalised(pure, monkeypatch, fixed_rows, seed=6):
    """Cells only the ASCII loop reads (no cell left to Python), some with spaces around or a
    lowercase x: the normalised numbers are written from the checked digits (screen.pyx id_texts),
    in a slice of a longer array, as the scalar check normalises them; beyond 32-bit offsets,
    by string functions."""
    values = [v for v in _id_cells(random.Random(seed), 3000) if v is None or v.isascii() and "\t" not in v
              and "\x1d" not in v]
    arr = pa.array(["pad"] * 3 + values, pa.string()).slice(3)
    monkeypatch.setattr(idnumber, "FIXED_TEXT_ROWS", fixed_rows)
    fast = idnumber.check_array(arr, AS_OF)
    want = [idnumber.check(v, AS_OF).number for v in values]
    assert fast.number.to_pylist() == want
    assert any(v is not None and v.strip() != v for v in values) and any(w and w[-1] == "X" for w in want)
    assert pure(idnumber.check_array, arr, AS_OF).number.to_pylist() == want
    fast.number.validate(full=True)


def test_dates_match_the_arrow_parser(pure, seed=3):
    rng = random.Random(seed)
    cells = []
    for _ in range(3000):
        y, m, d = rng.randint(990, 2030), rng.randint(0, 13), rng.randint(0, 32)
        sep = rng.choice(["-", "/", ".", "", "年"])
        form = rng.random()
        if sep == "":
            cells.append(f"{y:04d}{m:02d}{d:02d}")
        elif sep == "年":
            cells.append(f"{y}年{m}月{d}日")
        else:
            cells.append(f"{y:04d}{sep}{m if form < 0.3 else f'{m:02d}'}{rng.choice(['-', '/', '.'])}"
                         f"{d if form < 0.5 else f'{d:02d}'}")
    cells += [None, "", " ", " 1950-01-02 ", "1950-1-2", "19500102", "1950-02-29", "2000-02-29", "0000-01-01",
              "1950--1-2", "1950-001-02", "abc", "1950\u300001-02"]
    arr = pa.array(cells, pa.string())
    got = checks._parse_dates(arr)
    want = checks._parse_dates_arrow(checks.pc.utf8_trim_whitespace(arr))
    assert [str(x) for x in got] == [str(x) for x in want]
    assert [str(x) for x in pure(checks._parse_dates, arr)] == [str(x) for x in want]


def test_duplicate_sets_agree(pure, seed=2):
    rng = np.random.default_rng(seed)
    fast, twin = checks.Duplicates(), pure(checks.Duplicates)
    line = 2
    for size in (0, 1, 500, 70_000, 3):
        keys = rng.integers(0, 3000, size).astype(np.int64) * 10 ** 12 + 11010519491231
        lines = np.arange(line, line + size, dtype=np.int64)
        line += size
        assert (fast.first_lines(keys, lines) == twin.first_lines(keys, lines)).all()
    assert twin._set is None     # made without the compiled module, the twin stays pure
    assert (fast._set is None) == (idnumber._screen is None)


@pytest.mark.skipif(idnumber._screen is None, reason="needs the compiled assess._screen")
def test_duplicate_set_is_made_for_the_rows_expected():
    # Made whole for the rows expected (its memory mapped in at once), and kept by the look-ups.
    dups = checks.Duplicates(1_000_000)
    made = dups._set
    assert made.size == 1 << 21     # 1 M people x 4/3 slots, rounded up to a power of two
    keys = np.arange(5, dtype=np.int64) * 10 ** 12 + 11010519491231
    assert (dups.first_lines(keys, np.arange(2, 7, dtype=np.int64)) == 0).all()
    assert dups._set is made and made.count == 5
    assert (dups.first_lines(keys[:1], np.array([9], np.int64)) == [2]).all()


def test_duplicate_set_grows_without_losing_a_key(pure, seed=3):
    # Many distinct people: the compiled set doubles twice from its smallest size and still
    # answers every repeat with the line first seen.
    rng = np.random.default_rng(seed)
    fast, twin = checks.Duplicates(), pure(checks.Duplicates)
    keys = rng.permutation(200_000).astype(np.int64) * 7919 + 11010519491231
    lines = np.arange(2, 2 + keys.size, dtype=np.int64)
    assert (fast.first_lines(keys, lines) == 0).all()
    assert fast._set is None or fast._set.size > 1 << 18
    again = rng.choice(keys, 5_000)
    order = np.argsort(keys)
    seen_at = lines[order[np.searchsorted(keys[order], again)]]
    later = np.arange(10 ** 6, 10 ** 6 + again.size, dtype=np.int64)
    assert (fast.first_lines(again, later) == seen_at).all()
    twin.first_lines(keys, lines)
    assert (twin.first_lines(again, later) == seen_at).all()


def test_age_is_whole_years():
    births = np.array(["1966-01-15", "1966-01-16", "1964-02-29", "1800-01-01"], "datetime64[D]")
    assert checks._age(births, AS_OF).tolist() == [60, 59, 61, 226]


@pytest.mark.parametrize("as_of", [AS_OF, dt.date(2028, 2, 29), dt.date(2027, 2, 28), dt.date(2026, 3, 1),
                                   dt.date(2026, 12, 31)])
def test_younger_is_age_below(as_of, seed=13):
    rng = np.random.default_rng(seed)
    births = np.datetime64(as_of, "D") - rng.integers(0, 120 * 366, 5000)
    births = np.concatenate([births, np.array(["NaT", "1968-02-29", "1967-03-01", "1966-02-28"], "datetime64[D]")])
    for years in (60, 65, 1):
        known = ~np.isnat(births)
        want = np.zeros(births.size, bool)
        want[known] = checks._age(births[known], as_of) < years
        assert (checks._younger(births, as_of, years) == want).all()


def test_sex_and_region_cells_match_their_python_reading(pure, seed=17):
    rng = random.Random(seed)
    sexes = _cells(rng, ["男", "女", "1", "2", "0", "9", "m", "F", "ale", "MALE", "female", " ", "\u3000", "\x1c", "未知",
                         "x", "3"], 3000, (0, 3))
    sexes += ["男", " 女 ", "male", "Female", "FEMALE", "未说明", "\u3000男", "", "  ", "M", "f", "9", "男男"]
    arr = pa.array(sexes, pa.string())
    got = checks._sex_codes(arr)
    assert got.tolist() == pure(checks._sex_codes, arr).tolist()
    assert got.tolist() == [0 if v is None else checks._SEX_CODES.get(v.strip().upper(), -1) for v in sexes]
    regions = _cells(rng, ["1", "0", "5", " ", "\t", "\u3000", "a", "１", "\x1d"], 3000, (0, 8))
    regions += ["110105", " 110105 ", "11010", "1101050", "１１０１０５", "", "\u3000110105"]
    arr = pa.array(regions, pa.string())
    got = checks._region_wrong(arr)
    assert got.tolist() == pure(checks._region_wrong, arr).tolist()
    assert got.tolist() == [v is not None and checks._REGION.fullmatch(v.strip()) is None for v in regions]


@pytest.mark.parametrize("share", [0.0, 0.01, 0.5, 1.0])
def test_kept_rows_equal_arrows_filter(share, seed):
    # OUT's rows are kept run by run by the compiled loop: every column type of OUT, with nulls,
    # empty text and arrays that start inside their buffers, against Arrow's own filter.
    rng = np.random.default_rng(seed)
    n = 1_000
    texts = [None if r < 0.1 else "" if r < 0.2 else "身份" * int(r * 5) for r in rng.random(n + 7)]
    table = pa.table({
        "text": pa.array(texts, pa.string()).slice(7),
        "code": pa.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 5, n)).tolist(), pa.int8()),
        "line": pa.array(np.arange(n, dtype=np.int64)),
        "score": pa.array(rng.integers(0, 100, n + 3).astype(np.int32)).slice(3),
        "flag": pa.array(rng.random(n) < 0.5),
        "status": pa.array(rng.choice(["ok", "incomplete"], n)).dictionary_encode(),
        "none": pa.array([None] * n, pa.string()).dictionary_encode(),
    })
    keep = rng.random(n) >= share
    keep[:3] = [False, True, False]
    want = table.filter(pa.array(keep))
    assert run.keep_rows(table, keep).equals(want)


def test_score_counts_equal_counts_of_clipped_scores(seed=4):
    from assess.screen.stats import _clipped_counts
    rng = np.random.default_rng(seed)
    for dtype in (np.int8, np.int32, np.int64):
        v = rng.integers(-3, 40, 5000).astype(dtype)
        for size in (1, 10, 60):
            want = np.bincount(np.clip(v.astype(np.int64), 0, size - 1), minlength=size)
            assert np.array_equal(_clipped_counts(v, size), want)
            assert np.array_equal(_clipped_counts(np.abs(v), size),
                                  np.bincount(np.clip(np.abs(v).astype(np.int64), 0, size - 1), minlength=size))
    assert np.array_equal(_clipped_counts(np.zeros(0, np.int32), 3), [0, 0, 0])
    strided = rng.integers(-3, 40, 5000).astype(np.int32)[::3]     # a view the compiled count does not take
    assert np.array_equal(_clipped_counts(strided, 10), np.bincount(np.clip(strided, 0, 9), minlength=10))
