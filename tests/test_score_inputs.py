"""What :func:`assess.score` accepts (issue #3): every column type a file reader or pandas may give,
negative option codes, columns it does not read, the input's index, and bad arguments.

Differential tests: the kernel's raw arrays must equal the reference scorer's row by row, as in
tests/test_kernel_parity.py; the reference is passed in-process as ``kernel=None``.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import assess
from assess import _reference, batch
from assess.instrument import build

kernel = pytest.importorskip("assess._kernel", reason="compiled kernel not built")

PHQ_REST = [f"q{i}" for i in range(2, 10)]   # answered beside a q1 column under test


def assert_same(ins, table: pa.Table) -> dict:
    ref = batch.score_raw(ins, table, None)
    ker = batch.score_raw(ins, table, kernel, threads=2)
    for key in ref:
        rows = np.nonzero((ref[key] != ker[key]).reshape(table.num_rows, -1).any(axis=1))[0]
        assert not len(rows), (f"{key} differs in {len(rows)} rows; first row {rows[0]}: reference "
                               f"{ref[key][rows[0]]!r}, kernel {ker[key][rows[0]]!r}")
    return ref


def _with_options(data: dict, item_id: str, codes_points: list[tuple[int, int]]) -> None:
    item = next(i for i in data["items"] if i["id"] == item_id)
    item["options"] = [{"code": c, "points": p, "label": {"zh": str(c)}} for c, p in codes_points]


@pytest.fixture(scope="module")
def negative():
    """The self-care form with negative codes: PH05 takes -3 … 10 worth their own value (the
    kernel's identity path), PH04 -2, 0, 1, 5, 10 (its table path)."""
    data = copy.deepcopy(dict(assess.load_instrument("phs-selfcare-2017").raw))
    _with_options(data, "PH05", [(c, c) for c in range(-3, 11)])
    _with_options(data, "PH04", [(-2, -2), (0, 0), (1, 1), (5, 5), (10, 10)])
    data["levels"]["bands"][0]["min"] = -5
    return build(data, "negative.yaml")


INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64()]
UINT_TYPES = [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]


def _code_table(ins, typ: pa.DataType, n: int, rng, nulls: bool) -> pa.Table:
    signed = not pa.types.is_unsigned_integer(typ)
    cols = {}
    for item in ins.items:
        pool = [c for c in item.codes if signed or c >= 0] + ([-4, 11, -128, 127] if signed else [11, 255])
        values = [pool[k] for k in rng.integers(0, len(pool), n)]
        mask = rng.random(n) < 0.05 if nulls else None
        cols[item.id] = pa.array(values, typ, mask=mask)
    return pa.table(cols)


@pytest.mark.parametrize("nulls", [False, True], ids=["no-nulls", "nulls"])
@pytest.mark.parametrize("typ", INT_TYPES + UINT_TYPES, ids=str)
def test_negative_codes_in_every_numeric_type(negative, typ, nulls, seed):
    """int64 used to lose the sign of a code in the identity path (-1 counted as 32767)."""
    table = _code_table(negative, typ, 3000, np.random.default_rng([seed, 11]), nulls)
    ref = assert_same(negative, table)
    assert (ref["status"] == _reference.OK).any()


def test_negative_code_gives_the_reference_total(negative):
    df = pd.DataFrame({"PH01": [3, 3], "PH02": [3, 3], "PH03": [3, 3], "PH04": [1, -2], "PH05": [-1, -3]})
    out = assess.score(negative, df)
    assert out["total"].tolist() == [9, 4] and out["level"].tolist() == [2, 1]
    assert out["total"].tolist() == [assess.score_one(negative, row).total for row in df.to_dict("records")]
    assert_same(negative, pa.Table.from_pandas(df))
    assert_same(negative, pa.Table.from_pandas(df).cast(pa.schema([(c, pa.int64()) for c in df.columns])))


# Arrow types holding the same values in another layout: the kernel reads them as the reference does.
OTHER_LAYOUTS = {
    "float16": lambda v: pa.array(np.array([np.nan if x is None else x for x in v], np.float16)),
    "string_view": lambda v: pa.array([None if x is None else str(x) for x in v], pa.string_view()),
    "run_end_encoded": lambda v: pc.run_end_encode(pa.array(v, pa.int8())),
    "dictionary_of_string_view": lambda v: _dictionary(OTHER_LAYOUTS["string_view"](v)),
    "dictionary_of_float16": lambda v: _dictionary(OTHER_LAYOUTS["float16"](v)),
}


def _dictionary(arr: pa.Array) -> pa.DictionaryArray:
    """Arrow's dictionary_encode takes neither type: index each distinct value by hand."""
    values = arr.to_pylist()
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    indices = pa.array([None if v is None else distinct.index(v) for v in values], pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(distinct, arr.type))


@pytest.mark.parametrize("layout", sorted(OTHER_LAYOUTS))
def test_other_arrow_layouts_are_read_by_value(layout):
    values = [1, 2, 2, None, 7, 0, 3, 3]   # 7: not allowed; None: missing (a half-float NaN too)
    cells = OTHER_LAYOUTS[layout](values)
    ins = assess.load_instrument("phq9")
    rest = {q: pa.array([1, 2, 0, 3, 1, 2, 0, 3], pa.int8()) for q in PHQ_REST}
    ref = assert_same(ins, pa.table({"q1": cells, **rest}))
    assert [_reference.STATUS_NAMES[s] for s in ref["status"]] == (
        ["ok"] * 3 + ["incomplete", "not_allowed"] + ["ok"] * 3)


def test_half_floats_from_pandas_equal_the_reference():
    ins = assess.load_instrument("phq9")
    df = pd.DataFrame({f"q{i}": np.array([1, 2, np.nan, 1.5], np.float16) for i in range(1, 10)})
    ker = batch.score_table(ins, df, kernel)
    assert ker["status"].tolist() == ["ok", "ok", "incomplete", "not_allowed"]
    pd.testing.assert_frame_equal(ker, batch.score_table(ins, df, None))


@pytest.mark.parametrize("dictionary", [False, True], ids=["plain", "dictionary"])
def test_uint64_beyond_int64_rejects_only_its_cell(dictionary):
    cells = pa.array([1, 2**64 - 1, None, 2**63, 3], pa.uint64())
    if dictionary:
        cells = cells.dictionary_encode()
    ins = assess.load_instrument("phq9")
    rest = {q: pa.array([1, 2, 0, 3, 1], pa.int8()) for q in PHQ_REST}
    ref = assert_same(ins, pa.table({"q1": cells, **rest}))
    assert [_reference.STATUS_NAMES[s] for s in ref["status"]] == [
        "ok", "not_allowed", "incomplete", "not_allowed", "ok"]


@pytest.mark.parametrize("backend", [kernel, None], ids=["kernel", "reference"])
def test_pandas_output_keeps_the_input_index(backend):
    ins = assess.load_instrument("phq9")
    df = pd.DataFrame({f"q{i}": [1, 2, 3] for i in range(1, 10)}, index=[101, 205, 307])
    out = batch.score_table(ins, df, backend)
    assert out.index.tolist() == [101, 205, 307]
    joined = pd.concat([df, out], axis=1)
    assert len(joined) == 3 and joined["total"].tolist() == [9, 18, 27]


@pytest.mark.parametrize("backend", [kernel, None], ids=["kernel", "reference"])
@pytest.mark.parametrize("extra", [[["a", "b"], "c", None], np.array([1 + 2j, 3j, 0j])],
                         ids=["lists-and-text", "complex"])
def test_columns_the_instrument_does_not_read_are_ignored(backend, extra):
    ins = assess.load_instrument("phq9")
    df = pd.DataFrame({f"q{i}": [1, 2, 7] for i in range(1, 10)})
    expected = batch.score_table(ins, df, backend)
    out = batch.score_table(ins, df.assign(notes=extra), backend)
    pd.testing.assert_frame_equal(out, expected)


@pytest.mark.parametrize("backend", [kernel, None], ids=["kernel", "reference"])
def test_frame_without_any_instrument_column_keeps_its_rows(backend):
    ins = assess.load_instrument("phq9")
    out = batch.score_table(ins, pd.DataFrame({"Q1": [1, 2], "notes": [["x"], "y"]}, index=[4, 9]), backend)
    assert out.index.tolist() == [4, 9] and out["status"].tolist() == ["incomplete"] * 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"threads": "2"}, TypeError, r"threads must be a whole number .* not '2' \(str\)"),
    ({"threads": 1.5}, TypeError, r"threads must be a whole number .* not 1.5 \(float\)"),
    ({"threads": True}, TypeError, r"threads must be a whole number"),
    ({"threads": -1}, ValueError, r"threads must be a whole number .* not -1"),
    ({"settings": "x"}, TypeError, r"settings must be a mapping .* not 'x' \(str\)"),
    ({"settings": ["coding"]}, TypeError, r"settings must be a mapping"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    df = pd.DataFrame({f"q{i}": [1, 2] for i in range(1, 10)})
    with pytest.raises(error, match=match):
        assess.score("phq9", df, **kwargs)


def test_whole_number_threads_of_any_integer_type_are_taken():
    df = pd.DataFrame({f"q{i}": [1, 2] for i in range(1, 10)})
    for threads in (1, np.int64(2), 0, None):
        assert assess.score("phq9", df, threads=threads)["status"].tolist() == ["ok", "ok"]


@pytest.mark.parametrize("value", ["abc", "1.5", "-2"])
def test_bad_threads_variable_is_named(monkeypatch, value):
    monkeypatch.setenv(batch.THREADS_ENV, value)
    df = pd.DataFrame({f"q{i}": [1, 2] for i in range(1, 10)})
    with pytest.raises(ValueError, match=rf"{batch.THREADS_ENV}='{value}' is not a number of threads"):
        assess.score("phq9", df)


def test_settings_given_to_score_one_must_be_a_mapping():
    with pytest.raises(TypeError, match="settings must be a mapping"):
        assess.score_one("phq9", {f"q{i}": 1 for i in range(1, 10)}, settings="x")


def _wide(gbt, code: int = 1000, points: int = 4):
    """GB/T 42195 with one option of B.1.1 coded beyond the kernel's code table, or worth more
    points than its packed domain sums hold."""
    data = dict(gbt.raw)
    items = [dict(i) for i in data["items"]]
    items[0] = {**items[0], "options": [{"code": code, "points": points, "label": {"zh": "x"}},
                                        *[o for o in items[0]["options"] if o["code"] != 4]]}
    data["items"] = items
    return build(data, "wide.yaml")


def test_definition_beyond_the_kernel_layout_is_scored_by_the_reference(gbt):
    wide = _wide(gbt)
    table = pa.table({i.id: pa.array([str(i.codes[-1])] * 3) for i in wide.items}
                     | {"B.1.1": pa.array([1000, 4, 3], pa.int64())})
    out = batch.score_table(wide, table, kernel)
    assert out.equals(batch.score_table(wide, table, None))
    assert out.column("status").to_pylist()[:2] == ["incomplete", "not_allowed"]   # fields left blank


def test_domain_beyond_the_kernel_sums_is_scored_by_the_reference():
    data = copy.deepcopy(dict(assess.load_instrument("phs-selfcare-2017").raw))
    _with_options(data, "PH05", [(0, 0), (1, 1), (10, 40_000)])   # sums beyond 15 bits
    data["levels"]["bands"][-1]["max"] = 40_027
    heavy = build(data, "heavy.yaml")
    table = pa.table({"PH01": [3, 3], "PH02": [3, 3], "PH03": [3, 3], "PH04": [1, 1], "PH05": [10, 1]})
    out = batch.score_table(heavy, table, kernel)
    assert out.equals(batch.score_table(heavy, table, None))
    assert out.column("total").to_pylist() == [40_010, 11]
