"""The compiled kernel gives exactly the reference scorer's answers (STYLE §13).

Random batches are generated from each instrument's own definition: every option code, codes the
item does not allow, missing cells, text codes, ICD-10 cells inside and outside the rule ranges and
malformed ones, under every combination of settings and for every column type a file reader can
produce. The raw arrays (scores, levels, rule bits, status, error field) must be equal row by row.

The kernel under test is the one ``assess.score`` uses: on an x86-64 processor with AVX2 the
build for it (``assess._kernel_avx2``); ``test_both_builds_give_the_same_answers`` compares it
with the baseline build.
"""
from __future__ import annotations

import importlib
import itertools

import numpy as np
import pyarrow as pa
import pytest

import assess
from assess import _reference, batch
from assess import model as m

baseline = pytest.importorskip("assess._kernel", reason="compiled kernel not built")
kernel = importlib.import_module("assess.score")._kernel or baseline   # assess.score is the function

INSTRUMENTS = [ref.id for ref in assess.list_instruments()]
TEXT_POOL = ["", "  ", "3", "非常困难", "somewhat difficult", "0", "99", None]
ICD_POOL = ["", "I10", "F03", "f00.1", "F03.x00", "F99", "F04", "G30", "E11", "F00.0*", "XX", "12", "F0",
            "I10;F20", "E11, F32", ";F99;", "I63；F01", None]


ALL_COMBINATIONS_UP_TO = 24


def _setting_combinations(ins: m.Instrument):
    """Every combination of setting values when there are few (up to 24); otherwise the defaults
    and each single setting changed in turn (MZ/T 039 has 192 combinations)."""
    names = [n for n, s in ins.settings.items() if s.kind != "table"]   # tables: tests/test_grading_table.py
    combos = list(itertools.product(*(list(ins.settings[n].values) for n in names)))
    if len(combos) <= ALL_COMBINATIONS_UP_TO:
        yield from (dict(zip(names, values)) for values in combos)
        return
    base = {n: ins.settings[n].default or next(iter(ins.settings[n].values)) for n in names}
    yield dict(base)
    for n in names:
        for value in ins.settings[n].values:
            if value != base[n]:
                yield {**base, n: value}


def random_columns(ins: m.Instrument, n: int, rng: np.random.Generator, bad_share: float = 0.02,
                   missing_share: float = 0.02) -> dict:
    """Python lists of raw answers, one per question, mostly valid."""
    cols = {}
    for q in (*ins.items, *ins.fields):
        if isinstance(q, m.Field) and q.type == "icd10_list":
            cols[q.id] = [ICD_POOL[k] for k in rng.integers(0, len(ICD_POOL), n)]
            continue
        if isinstance(q, m.Field) and q.type == "text":   # stored, never read: any text, or blank
            cols[q.id] = [TEXT_POOL[k] for k in rng.integers(0, len(TEXT_POOL), n)]
            continue
        codes = q.codes
        # Items: uniform over their options. Rule-input fields: the first option (none, 0 events)
        # most often, so that every combination of rules occurs in a few thousand rows.
        weights = np.ones(len(codes)) if isinstance(q, m.Item) else 0.25 ** np.arange(len(codes))
        values = [codes[k] for k in rng.choice(len(codes), n, p=weights / weights.sum())]
        roll = rng.random(n)
        ints = [c for c in codes if isinstance(c, int)]
        # Not allowed: far off, and just outside the allowed codes (an off-by-one at either end)
        bad = [-1, 7, 99, 200] + ([min(ints) - 1, max(ints) + 1] if ints else [])
        for r in np.nonzero(roll < bad_share)[0]:
            values[r] = int(rng.choice(bad))
        for r in np.nonzero((roll >= bad_share) & (roll < bad_share + missing_share))[0]:
            values[r] = None
        cols[q.id] = values
    _blank_most_skipped(ins, cols, n, rng)
    return cols


def _blank_most_skipped(ins: m.Instrument, cols: dict, n: int, rng: np.random.Generator) -> None:
    """Where an item's skip holds (e.g. MZ/T B.3.2–B.3.4 after B.3.1 = 3 昏迷), leave it blank in
    nine rows of ten, as a form would; the rest keep an answer, which is an inconsistency."""
    from assess.instrument import iter_conditions
    for item in ins.items:
        if item.skip_when is None:
            continue
        reads = {c.field for c in iter_conditions(item.skip_when) if hasattr(c, "field")}
        for r in range(n):
            answers = {}
            for qid in reads:
                v = cols[qid][r]
                opt = ins.question(qid).option(_reference.code_key(v)) if v is not None else None
                if opt is not None:
                    answers[qid] = opt
            if _reference.holds(item.skip_when, answers) and rng.random() < 0.9:
                cols[item.id][r] = None


def _as_arrow(cols: dict, style: str) -> pa.Table:
    """One table, its columns typed as a reader might give them."""
    arrays = {}
    for qid, values in cols.items():
        ints = all(v is None or isinstance(v, int) for v in values)
        if not ints or style == "text":
            arrays[qid] = pa.array([None if v is None else str(v) for v in values], pa.string())
            if style == "dictionary":
                arrays[qid] = arrays[qid].dictionary_encode()
        elif style == "float":
            arrays[qid] = pa.array([np.nan if v is None else float(v) for v in values], pa.float64(),
                                   from_pandas=True)
        elif style == "dictionary":
            arrays[qid] = pa.array([None if v is None else str(v) for v in values]).dictionary_encode()
        else:
            arrays[qid] = pa.array(values, {"int8": pa.int8(), "uint8": pa.uint8(), "int32": pa.int32(),
                                            "int64": pa.int64()}[style])
    return pa.table(arrays)


def assert_same(ins, table, threads=2):
    ref = batch.score_raw(ins, table, None)
    ker = batch.score_raw(ins, table, kernel, threads=threads)
    for key in ref:
        if not np.array_equal(ref[key], ker[key]):
            rows = np.nonzero((ref[key] != ker[key]).reshape(table.num_rows, -1).any(axis=1))[0]
            r = int(rows[0])
            answers = {c: table.column(c)[r].as_py() for c in table.column_names}
            pytest.fail(f"{ins.id}: {key} differs in {len(rows)} rows; first row {r}: reference "
                        f"{ref[key][r]!r}, kernel {ker[key][r]!r}; answers {answers}")


@pytest.mark.parametrize("instrument_id", INSTRUMENTS)
@pytest.mark.parametrize("style", ["int8", "uint8", "int32", "int64", "float", "text", "dictionary"])
def test_kernel_equals_reference_for_every_column_type(instrument_id, style, seed):
    ins = assess.load_instrument(instrument_id)
    rng = np.random.default_rng([seed, hash(style) % 1000])
    assert_same(ins, _as_arrow(_fitting(random_columns(ins, 3000, rng), style), style))


def _fitting(cols: dict, style: str) -> dict:
    """Narrow integer columns cannot hold every code (200, -1) or text codes: keep what fits, blank
    the rest."""
    if style not in ("int8", "uint8", "int32"):
        return cols
    lo, hi = (0, 255) if style == "uint8" else (-128, 127)
    return {q: [v if v is None or (isinstance(v, int) and lo <= v <= hi) else None for v in vals]
            if all(v is None or isinstance(v, int) for v in vals) else vals for q, vals in cols.items()}


SKIPPING = [pytest.param(ins_id, settings, id=f"{ins_id}-{'-'.join(settings.values())}")
            for ins_id in INSTRUMENTS for settings in _setting_combinations(assess.load_instrument(ins_id))
            if any(i.skip_when is not None for i in assess.load_instrument(ins_id).with_settings(settings).items)]


@pytest.mark.parametrize("instrument_id, settings", SKIPPING)
@pytest.mark.parametrize("style", ["int8", "int64", "float", "text", "dictionary"])
def test_kernel_equals_reference_with_skips_for_every_column_type(instrument_id, settings, style, seed):
    """Items skipped by rule (e.g. Lawton C–E for men under traditional): missing, answered and
    not-allowed cells of skipped items, in every column type."""
    ins = assess.load_instrument(instrument_id).with_settings(settings)
    rng = np.random.default_rng([seed, hash(style) % 1000, 7])
    cols = random_columns(ins, 3000, rng, bad_share=0.03)
    for item in ins.items:   # many blank cells where a skip decides whether blank is allowed
        if item.skip_when is not None:
            cols[item.id] = [None if roll < 0.2 else v for v, roll in zip(cols[item.id], rng.random(3000))]
    if style == "int8":
        cols = {q: [v if v is None or (isinstance(v, int) and -128 <= v <= 127) else None for v in vals]
                if all(v is None or isinstance(v, int) for v in vals) else vals for q, vals in cols.items()}
    table = _as_arrow(cols, style)
    assert_same(ins, table)
    raw = batch.score_raw(ins, table, kernel)
    assert {_reference.OK, _reference.INCONSISTENT, _reference.INCOMPLETE} <= set(raw["status"].tolist())


# Rule combinations no assessment can produce: GB/T 26341's two flags belong to different kinds of
# disability (needs_assessor_decision to 精神残疾, iq_ab_differ to 智力残疾).
IMPOSSIBLE_RULE_BITS = {"gbt26341-2010": {0b11}}


@pytest.mark.parametrize("instrument_id", INSTRUMENTS)
def test_kernel_equals_reference_under_every_setting(instrument_id, seed):
    base = assess.load_instrument(instrument_id)
    rng = np.random.default_rng(seed)
    # Rule inputs that fire often, so every rule combination occurs in the batch.
    cols = random_columns(base, 4000, rng, bad_share=0.01, missing_share=0.01)
    table = _as_arrow(cols, "int64")
    combos = list(_setting_combinations(base))
    assert combos, "every instrument has at least its default settings"
    for settings in combos:
        ins = base.with_settings(settings)
        assert_same(ins, table)
    # every combination of rule bits occurs among valid rows at least once under the defaults
    raw = batch.score_raw(base, table, kernel)
    ok = raw["status"] == _reference.OK
    seen = set(raw["rules"][ok].tolist()) | IMPOSSIBLE_RULE_BITS.get(instrument_id, set())
    assert len(seen) == 2 ** len(base.rules), f"rule combinations seen: {sorted(seen)}"
    # every case of every category (e.g. each Katz letter grade) occurs among valid rows
    for j, cat in enumerate(base.categories):
        values = set(raw["categories"][ok, j].tolist())
        possible = {v for v, _, cond in cat.cases if not isinstance(cond, m.Never)}   # cases off under these settings
        assert possible <= values, f"{cat.id}: values seen {sorted(values)}"


@pytest.mark.parametrize("instrument_id", INSTRUMENTS)
def test_result_does_not_depend_on_batch_size_or_threads(instrument_id, seed):
    ins = assess.load_instrument(instrument_id)
    table = _as_arrow(random_columns(ins, 5000, np.random.default_rng(seed)), "int64")
    whole = batch.score_raw(ins, table, kernel, threads=1)
    for threads in (2, 3):
        split = batch.score_raw(ins, table, kernel, threads=threads)
        for key in whole:
            assert np.array_equal(whole[key], split[key]), (threads, key)
    rebatched = pa.Table.from_batches(table.to_batches(max_chunksize=777))
    assert rebatched.column(0).num_chunks > 1
    parts = batch.score_raw(ins, rebatched, kernel, threads=2)
    for key in whole:
        assert np.array_equal(whole[key], parts[key]), key


def test_nulls_and_offsets_in_arrow_buffers(gbt, seed):
    """Validity bitmaps and sliced arrays (non-zero offsets) are read where they are."""
    cols = random_columns(gbt, 2000, np.random.default_rng(seed), bad_share=0.0, missing_share=0.1)
    table = _as_arrow(cols, "int64")
    for start in (0, 1, 7, 8, 9, 1001):
        assert_same(gbt, table.slice(start, 600))


def test_large_multi_chunk_batch_crosses_kernel_chunks(gbt, seed):
    cols = random_columns(gbt, 70_000, np.random.default_rng(seed), bad_share=0.001, missing_share=0.001)
    table = _as_arrow(cols, "int64")
    raw_ref = batch.score_raw(gbt, table.slice(65_000), None)
    raw_ker = batch.score_raw(gbt, table, kernel, threads=2)
    for key in raw_ref:
        assert np.array_equal(raw_ref[key], raw_ker[key][65_000:]), key


def test_text_codes_with_odd_white_space_and_offsets(gbt, seed):
    """Text codes as files write them: spaces, tabs and Unicode white space around a code, full-width
    and upper-case look-alikes, nulls, in sliced arrays. The compiled loop reads printable ASCII
    and leaves the rest to pyarrow's trim; the reference reads every cell itself."""
    assert hasattr(kernel, "text_codes"), "a stale build: rebuild the kernel"
    pool = [" 1a ", "1a", "0b", "\t1", "１", "2 ", None, "", "  ", "x", "1\u3000", "\u00a01b", "0 b", "1A", "01",
            "1b\r", "  0a", "0", "中", "9"]
    rng = np.random.default_rng(seed)
    cols = random_columns(gbt, 3000, rng, bad_share=0.0, missing_share=0.0)
    table = _as_arrow(cols, "int64")
    cells = pa.array([pool[k] for k in rng.integers(0, len(pool), table.num_rows)], pa.string())
    table = table.set_column(table.schema.get_field_index("B.3.9"), "B.3.9", cells)
    for start in (0, 3, 8, 1001):
        assert_same(gbt, table.slice(start, 1500))


def test_dictionary_of_integers(gbt, seed):
    cols = random_columns(gbt, 500, np.random.default_rng(seed))
    table = _as_arrow(cols, "int64")
    table = pa.table({c: table.column(c).combine_chunks().dictionary_encode() for c in table.column_names})
    assert_same(gbt, table)


def test_absent_columns_are_missing(gbt):
    table = pa.table({"B.1.1": pa.array([4, 3], pa.int8())})
    ker = batch.score_raw(gbt, table, kernel)
    assert list(ker["status"]) == [_reference.INCOMPLETE] * 2
    assert_same(gbt, table)


def test_empty_table(gbt):
    table = pa.table({"B.1.1": pa.array([], pa.int8())})
    out = assess.score(gbt, table)
    assert out.num_rows == 0
    assert_same(gbt, table)


def test_plan_rejects_integer_codes_outside_the_table(gbt):
    from assess import _plan
    data = dict(gbt.raw)
    items = [dict(i) for i in data["items"]]
    items[0] = {**items[0], "options": [{"code": 500, "points": 4, "label": {"zh": "x"}},
                                        *[o for o in items[0]["options"] if o["code"] != 4]]}
    data["items"] = items
    from assess.instrument import build
    wide = build(data, "wide.yaml")
    with pytest.raises(ValueError, match="outside"):
        _plan.compile_plan(wide)


def test_backend_is_kernel_unless_forced(monkeypatch):
    score_module = importlib.import_module("assess.score")   # the module; assess.score is the function
    monkeypatch.setenv("ASSESS_PUREPYTHON", "1")
    assert score_module._load_backend() == (None, "reference", None)
    monkeypatch.setenv("ASSESS_PUREPYTHON", "0")
    module, name, build = score_module._load_backend()
    assert name == "kernel" and build in ("avx2", "baseline")
    assert module.__name__ == {"avx2": "assess._kernel_avx2", "baseline": "assess._kernel"}[build]
    monkeypatch.setenv("ASSESS_KERNEL_BUILD", "baseline")
    assert score_module._load_backend()[0] is baseline
    monkeypatch.setenv("ASSESS_KERNEL_BUILD", "fastest")
    with pytest.raises(ValueError, match="ASSESS_KERNEL_BUILD='fastest' is not a kernel build: give one of auto, baseline"):
        score_module._load_backend()


def test_the_avx2_build_is_used_where_the_processor_runs_it(monkeypatch):
    monkeypatch.delenv("ASSESS_KERNEL_BUILD", raising=False)
    monkeypatch.delenv("ASSESS_PUREPYTHON", raising=False)
    avx2 = importlib.util.find_spec("assess._kernel_avx2") is not None
    module, _, build = importlib.import_module("assess.score")._load_backend()
    assert build == ("avx2" if avx2 and baseline.cpu_has_avx2() else "baseline")
    assert isinstance(baseline.cpu_has_avx2(), bool)


@pytest.mark.parametrize("instrument_id", INSTRUMENTS)
@pytest.mark.parametrize("style", ["int8", "uint8", "int64", "text"])
def test_both_builds_give_the_same_answers(instrument_id, style, seed):
    """The AVX2 build against the baseline build, raw array by raw array (the same source,
    compiled for other instructions: a difference would be a compiler's or a CPU check's)."""
    if importlib.util.find_spec("assess._kernel_avx2") is None or not baseline.cpu_has_avx2():
        pytest.skip("no AVX2 build of the kernel, or a processor without AVX2")
    avx2 = importlib.import_module("assess._kernel_avx2")
    ins = assess.load_instrument(instrument_id)
    table = _as_arrow(_fitting(random_columns(ins, 3000, np.random.default_rng(seed)), style), style)
    one = batch.score_raw(ins, table, baseline, threads=1)
    other = batch.score_raw(ins, table, avx2, threads=2)
    for key in one:
        np.testing.assert_array_equal(one[key], other[key], err_msg=f"{instrument_id}: {key}")


def test_active_backend_follows_the_environment():
    import os
    forced = os.environ.get("ASSESS_PUREPYTHON", "") not in ("", "0")
    assert assess.backend == ("reference" if forced else "kernel")


ICD_ALPHABET = list("FfIiEeGg0123456789.;,*+ x") + ["†", "；", "，", "、", "\u3000", "\u00a0", "\t", "\n",
                                                    "\u2003", "\x1c", "ı", "Ｆ", "\u0085"]


def test_icd10_scanner_matches_the_reference_grammar(gbt, seed):
    """Fuzzed diagnosis cells: the hand-written scanner reads them as assess.icd10 does."""
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(4000):
        size = int(rng.integers(0, 14))
        cell = "".join(ICD_ALPHABET[k] for k in rng.integers(0, len(ICD_ALPHABET), size))
        if rng.random() < 0.5:   # well-formed codes joined by separators, with noise now and then
            codes = [f"{rng.choice(list('FIEGfz'))}{int(rng.integers(0, 100)):02d}" for _ in range(int(rng.integers(1, 4)))]
            cell = rng.choice([";", "；", ", ", "、", " "]).join(codes) + (cell if rng.random() < 0.2 else "")
        cells.append(cell if rng.random() > 0.05 else None)
    cols = random_columns(gbt, len(cells), rng, bad_share=0.0, missing_share=0.0)
    cols["A.4.1"] = cells
    table = _as_arrow(cols, "int64")
    assert_same(gbt, table)
    assert_same(gbt, table.slice(3, 2000))


def test_icd10_repeated_cells_read_as_the_first_time(gbt, seed):
    """The scanner remembers cells of up to 16 bytes by their bytes (a table of 4,096 slots): with
    9,000 distinct cells repeated over 30,000 rows, slots are reused and overwritten, cells differ
    only in case, spacing or past the 8th byte, and the last cells lie too near the end of the
    buffer to be remembered. Every row must still read as the reference reads it."""
    rng = np.random.default_rng(seed)
    pool = ["", " ", "F03", "f03", "F03 ", "F03;I10", "F03;I1O", "I10;F03", "G30.1;E11.9;I63.5",
            "E11.9;I10;F03.11", "E11.9;I10;F03.1*", "E11.9;I10;F0.311", "I63;F01.1", "F32†", "Ｆ32"]
    # Families of equal length that differ only in the first or only past the 8th byte, with
    # different flags: enough of them to share slots, so a key compare that skips a half shows.
    pool += [f"{letter}{k:02d}" for letter in "FGx" for k in range(100)]
    pool += [f"E11.9;I10;{letter}{k:02d}" for letter in "FGx" for k in range(100)]
    while len(pool) < 9000:
        size = int(rng.integers(1, 20))
        pool.append("".join(ICD_ALPHABET[k] for k in rng.integers(0, len(ICD_ALPHABET), size))
                    if rng.random() < 0.4 else
                    ";".join(f"{rng.choice(list('FIEGf'))}{int(rng.integers(0, 100)):02d}"
                             + (f".{int(rng.integers(0, 100))}" if rng.random() < 0.5 else "")
                             for _ in range(int(rng.integers(1, 4)))))
    cells = [pool[k] for k in rng.integers(0, len(pool), 30_000)] + ["F03", "I10", "F0"]
    cols = random_columns(gbt, len(cells), rng, bad_share=0.0, missing_share=0.0)
    cols["A.4.1"] = cells
    table = _as_arrow(cols, "int64")
    assert_same(gbt, table, threads=1)
    assert_same(gbt, table.slice(7, 20_000))


def test_icd10_list_columns(gbt, seed):
    cols = random_columns(gbt, 300, np.random.default_rng(seed), bad_share=0.0, missing_share=0.0)
    pool = [[], ["F03"], ["I10", "f20.1"], ["F03;I10"], [" F03"], None, ["G30", "E11"]]
    cols["A.4.1"] = [pool[k % len(pool)] for k in range(300)]
    table = _as_arrow({k: v for k, v in cols.items() if k != "A.4.1"}, "int64")
    table = table.append_column("A.4.1", pa.array(cols["A.4.1"], pa.list_(pa.string())))
    assert_same(gbt, table)


@pytest.mark.parametrize("coma_inputs", ["either", "a511_only"])
@pytest.mark.parametrize("style", ["int64", "text", "dictionary"])
def test_field_required_unless_a_condition_holds(gbt, coma_inputs, style, seed):
    """GB/T A.5.11 is required only when B.3.9 cannot decide coma (reference §5): blank A.5.11
    beside every B.3.9 code, blank and not-allowed B.3.9 included."""
    ins = gbt.with_settings({"coma_inputs": coma_inputs})
    rng = np.random.default_rng([seed, 11])
    cols = random_columns(ins, 3000, rng, bad_share=0.0, missing_share=0.0)
    cols["A.5.11"] = [None if u < 0.5 else v for u, v in zip(rng.random(3000), cols["A.5.11"])]
    cols["B.3.9"] = [[2, 1, "1a", "1b", 0, "0a", "0b", None, "9z"][k] for k in rng.integers(0, 9, 3000)]
    table = _as_arrow(cols, style)
    assert_same(ins, table)
    raw = batch.score_raw(ins, table, kernel)
    a511 = list(ins._questions).index("A.5.11")
    blank = np.asarray([v is None for v in cols["A.5.11"]])
    valid_b39 = np.asarray([v not in (None, "9z") for v in cols["B.3.9"]])
    need = np.asarray([v == 0 for v in cols["B.3.9"]]) if coma_inputs == "either" else valid_b39
    # rows with a valid B.3.9 and nothing not allowed or contradictory: incomplete exactly when
    # A.5.11 is blank and needed, and then A.5.11 is the field named
    rows = valid_b39 & np.isin(raw["status"], [_reference.OK, _reference.INCOMPLETE])
    incomplete = raw["status"] == _reference.INCOMPLETE
    assert np.array_equal(incomplete[rows], (blank & need)[rows])
    assert (raw["error_field"][rows & incomplete] == a511).all()
    if coma_inputs == "either":   # and some rows do without it
        assert (rows & blank & ~need & (raw["status"] == _reference.OK)).any()


@pytest.mark.parametrize("copies, combination", [(2, "sum"), (2, "max"), (5, "sum"), (5, "max")])
def test_rule_effects_with_many_rules_and_either_combination(gbt, copies, combination, seed):
    """The kernel looks a row's level change up by its set of rules that hold when there are up to
    12 rules, and walks them when there are more: both against the reference, with rules that set
    a level or raise it, the raises summed or the largest taken. GB/T's three conditions, each copied
    with other effects (no packaged instrument has more than 3 rules, nor sums them)."""
    import dataclasses
    # Copy 1 of the first rule sets level 3 (rules earlier in the list come first); the others raise
    # by 1, and copies of a rule hold together: their sum is the number of copies, their largest 1.
    rules = tuple(dataclasses.replace(r, id=f"{r.id}x{k}", raise_by=1,
                                      set_level=3 if (j, k) == (0, 1) else None)
                  for k in range(copies) for j, r in enumerate(gbt.rules))
    variant = dataclasses.replace(gbt, rules=rules, raise_combination=combination)
    assert (len(variant.rules) > 12) == (copies == 5)
    table = _as_arrow(random_columns(variant, 4000, np.random.default_rng(seed), bad_share=0.0,
                                     missing_share=0.0), "int64")
    assert_same(variant, table)
    raw = batch.score_raw(variant, table, kernel)
    raised = raw["level"] - raw["level_initial"]
    assert len(set(raised[raw["status"] == 0].tolist())) >= 3   # no change, raised, lowered (set to 3)
