"""Derived scores beyond sums (assess/derived.py): bands, max/min, matrices, cases, count conditions.

MZ/T 039 uses most of them; its combination table is checked against the counts shared/reference
derives by enumerating all 256 grade combinations (mzt039-2013.md §4 [DERIVED]). Broken variants of
its file must be refused with a located, coded problem.
"""
from __future__ import annotations

import collections

import pytest

import assess
from assess import model as m
from assess.errors import Code

from _support import INSTRUMENTS_DIR

MZT_FILE = INSTRUMENTS_DIR / "mzt039-2013" / "2013.yaml"


@pytest.fixture(scope="module")
def mzt():
    return assess.load_instrument("mzt039-2013")


def _score(ins, sid) -> m.Score:
    return next(s for s in ins.scores if s.id == sid)


def test_combination_table_matches_the_enumeration_in_the_reference(mzt):
    """reference §4: 187 combinations match one rule, 60 two (overlaps), 9 none (gaps); under the
    defaults level 0 holds 2 combinations, 1 holds 88, 2 holds 64, 3 holds 102, split by A as listed."""
    table = _score(mzt, "initial")
    assert table.axes == ((0, 3),) * 4 and len(table.cells) == 256
    how = collections.Counter("gap" if "空缺" in t.zh else "overlap" if "同时符合" in t.zh else "one"
                              for t in table.cell_traces.values())
    assert how == {"one": 187, "overlap": 60, "gap": 9}
    assert collections.Counter(table.cells) == {0: 2, 1: 88, 2: 64, 3: 102}
    by_a = collections.Counter((index // 64, level) for index, level in enumerate(table.cells))
    assert by_a == {(0, 0): 2, (0, 1): 62, (1, 1): 26, (1, 2): 38, (2, 2): 26, (2, 3): 38, (3, 3): 64}


def test_gap_cells_are_exactly_the_nine_listed(mzt):
    table = _score(mzt, "initial")
    gaps = {"".join(map(str, _combo(i))) for i, t in table.cell_traces.items() if "空缺" in t.zh}
    assert gaps == {"0003", "2000", "2111", "2112", "2121", "2122", "2211", "2212", "2221"}


def _combo(index: int) -> tuple:
    return tuple((index >> shift) & 3 for shift in (6, 4, 2, 0))


def test_overlap_reject_leaves_the_sixty_cells_undecided(mzt):
    table = _score(mzt.with_settings(overlap_resolution="reject"), "initial")
    assert table.cells.count(None) == 60
    assert all("overlap=reject" in table.cell_reasons[i].en for i, c in enumerate(table.cells) if c is None)


def test_least_severe_takes_the_lower_level(mzt):
    table = _score(mzt.with_settings(overlap_resolution="least_severe"), "initial")
    assert table.cells[table.cell_index((1, 0, 3, 0))] == 1
    assert table.cells[table.cell_index((2, 1, 0, 3))] == 2


def test_perception_rule_covers_every_input_once(mzt):
    """reference §3: the six ordered steps give S = 0 in 4 of the 400 input combinations, 1 in 14,
    2 in 78, 3 in 304."""
    s = _score(mzt, "S")
    counts = collections.Counter()
    from assess._reference import holds
    for c in range(4):
        for v in range(5):
            for h in range(5):
                for mm in range(4):
                    given = {q: mzt.question(q).option(str(x)) for q, x in
                             (("B.3.1", c), ("B.3.2", v), ("B.3.3", h), ("B.3.4", mm))}
                    counts[next(val for val, cond in s.cases if holds(cond, given, {}))] += 1
    assert counts == {0: 4, 1: 14, 2: 78, 3: 304}


def test_kernel_and_reference_agree_on_every_combination_cell(mzt):
    """One row per (A, M, S, P) combination reachable from answers: both scorers give the table's cell."""
    kernel = pytest.importorskip("assess._kernel")
    from assess import batch
    import pyarrow as pa
    b1 = {0: 100, 1: 95, 2: 60, 3: 40}   # B.1 totals inside each A grade
    rows = []
    for a in range(4):
        for mm, b2 in ((0, (0, 0, 0)), (1, (0, 1, 0)), (2, (0, 1, 1)), (3, (0, 2, 2))):
            for s, b3 in ((0, (0, 0, 0, 0)), (1, (0, 2, 0, 0)), (2, (0, 3, 0, 0)), (3, (0, 4, 0, 0))):
                for p, b4 in ((0, (0, 0, 0, 0, 0)), (1, (3, 0, 0, 0, 0)), (2, (4, 4, 0, 0, 0)), (3, (4, 4, 4, 2, 0))):
                    row = {f"B.1.{k}": v for k, v in enumerate(_adl(b1[a]), 1)}
                    row.update({f"B.2.{k}": v for k, v in enumerate(b2, 1)})
                    row.update({f"B.3.{k}": v for k, v in enumerate(b3, 1)})
                    row.update({f"B.4.{k}": v for k, v in enumerate(b4, 1)})
                    row.update({"A.2.13.1": 0, "A.2.13.2": 0, "A.2.14.1": 0, "A.2.14.2": 0, "A.2.14.3": 0,
                                "A.2.14.4": 0})
                    rows.append(((a, mm, s, p), row))
    table = pa.Table.from_pylist([r for _, r in rows])
    table_score = _score(mzt, "initial")
    want = [table_score.cells[table_score.cell_index(c)] for c, _ in rows]
    for backend in (None, kernel):
        raw = batch.score_raw(mzt, table, backend)
        assert (raw["status"] == 0).all()
        assert raw["level_initial"].tolist() == want


def _adl(total: int) -> list:
    """B.1.1–B.1.10 answers adding up to ``total`` (100, 95, 60 or 40)."""
    top = [10, 5, 5, 10, 10, 10, 10, 15, 15, 10]
    cut = {100: {}, 95: {9: 5}, 60: {7: 0, 8: 0, 9: 0}, 40: {7: 0, 8: 0, 9: 0, 0: 0, 3: 0}}[total]
    out = [cut.get(k, v) for k, v in enumerate(top)]
    assert sum(out) == total
    return out


def test_count_condition_in_the_kernel_matches_the_reference(mzt):
    """"one or two of M, S, P in {1, 2}" (a count condition) as a rule on answers, in both scorers."""
    kernel = pytest.importorskip("assess._kernel")
    from assess import batch
    import pyarrow as pa
    import numpy as np
    rng = np.random.default_rng(5)
    cols = {q.id: rng.choice([int(c) for c in q.codes], 600).tolist() for q in (*mzt.items, *mzt.fields)
            if q.codes}
    for q in ("B.3.2", "B.3.3", "B.3.4"):   # leave the coma skip out of it
        cols[q] = [None if c == 3 else v for c, v in zip(cols["B.3.1"], cols[q])]
    table = pa.table(cols)
    ref, ker = batch.score_raw(mzt, table, None), batch.score_raw(mzt, table, kernel)
    for key in ref:
        assert np.array_equal(ref[key], ker[key]), key


# --------------------------------------------------------------------------- broken definitions

DEFECTS = {
    "bands-miss-a-reachable-value": (
        "        - {min: 65, max: 95, value: 1, label: {zh: 轻度受损}}",
        "        - {min: 70, max: 95, value: 1, label: {zh: 轻度受损}}",
        Code.INSTR_004, "65"),
    "bands-overlap": (
        "        - {min: 2, max: 3, value: 2, label: {zh: 中度受损}}",
        "        - {min: 1, max: 3, value: 2, label: {zh: 中度受损}}",
        Code.INSTR_004, "all hold"),
    "bands-range-unreachable": (
        "        - {min: 14, max: 20, value: 3, label: {zh: 重度受损}}",
        "        - {min: 14, max: 20, value: 3, label: {zh: 重度受损}}\n        - {min: 21, max: 30, value: 4}",
        Code.INSTR_008, "cannot be reached"),
    "undeclared-gap": (
        "        - when: {score: A, at_least: 2, at_most: 2}\n          value: {setting: gap_level_a2}\n",
        "",
        Code.INSTR_004, "matches no rule and no declared gap"),
    "unknown-part": (
        "      of: [A, M, S, P]", "      of: [A, M, S, Q]", Code.INSTR_003, "Q"),
    "rule-reads-outside-the-matrix": (
        "              - {score: P, at_most: 1}\n        - value: 1",
        "              - {score: B.4, at_most: 1}\n        - value: 1",
        Code.INSTR_001, "only the matrix's parts"),
}


@pytest.mark.parametrize("name", DEFECTS)
def test_broken_derived_score_is_refused(tmp_path, name):
    old, new, code, detail = DEFECTS[name]
    text = MZT_FILE.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    folder = tmp_path / "mzt039-2013"
    folder.mkdir()
    path = folder / "2013.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    assert any(p.code is code and detail in p.message for p in info.value.problems), \
        [(p.code.name, p.message) for p in info.value.problems]


def test_matrix_cells_must_have_the_shape_of_the_axes(tmp_path):
    text = MZT_FILE.read_text(encoding="utf-8")
    start = text.index("    matrix:\n      of: [A, M, S, P]")
    end = text.index("\nlevels:")
    table = "    matrix:\n      of: [A, M]\n      cells: [[0, 1, 2, 3], [1, 2, 3, 3], [2, 3, 3, 3]]\n"
    folder = tmp_path / "mzt039-2013"
    folder.mkdir()
    (folder / "2013.yaml").write_text(text[:start] + table + text[end:], encoding="utf-8")
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(folder / "2013.yaml")
    assert any("shape [4, 4]" in p.message for p in info.value.problems)
    (folder / "2013.yaml").write_text(
        text[:start] + table.replace("[2, 3, 3, 3]]", "[2, 3, 3, 3], [3, 3, 3, 3]]") + text[end:], encoding="utf-8")
    ins = assess.load_path(folder / "2013.yaml")
    result = assess.score_one(ins, {**_intact(), "B.1.10": 5, "B.2.2": 1})   # A = 1, M = 1
    assert (result.scores["initial"], result.level_initial) == (2, 2)


def _intact() -> dict:
    answers = {f"B.1.{k}": v for k, v in enumerate([10, 5, 5, 10, 10, 10, 10, 15, 15, 10], 1)}
    answers.update({q: 0 for q in ("B.2.1", "B.2.2", "B.2.3", "B.3.1", "B.3.2", "B.3.3", "B.3.4", "B.4.1",
                                   "B.4.2", "B.4.3", "B.4.4", "B.4.5", "A.2.13.1", "A.2.13.2", "A.2.14.1",
                                   "A.2.14.2", "A.2.14.3", "A.2.14.4")})
    return answers


# --------------------------------------------------------------------------- integer fields (GB/T 26341 age, IQ, DQ)

GBT26341_FILE = INSTRUMENTS_DIR / "gbt26341-2010" / "2010.yaml"


def test_integer_field_takes_every_whole_number_in_range():
    ins = assess.load_instrument("gbt26341-2010")
    age = ins.question("age_years")
    assert (age.type, age.codes[0], age.codes[-1], len(age.codes)) == ("integer", 0, 130, 131)
    base = {"disability_type": 2, "ab": 2, "iq": 40}
    assert assess.score_one(ins, {**base, "age_years": "30"}).level == 1          # text "30" is 30
    assert assess.score_one(ins, {**base, "age_years": 30.0}).level == 1          # 30.0 is 30
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one(ins, {**base, "age_years": 30.5})
    assert info.value.problems[0].item == "age_years"


@pytest.mark.parametrize("old, new, detail", [
    ("{id: age_years, type: integer, min: 0, max: 130,", "{id: age_years, type: integer, min: 0,",
     "min and max are given for an integer field"),
    ("{id: age_years, type: integer, min: 0, max: 130,", "{id: age_years, type: integer, min: 131, max: 130,",
     "min > max"),
    ("{field: age_years, at_most: 17}, {field: ab, in: [3]}]}}",
     "{field: age_years, in: [17]}, {field: ab, in: [3]}]}}", "read it with at_least / at_most"),
])
def test_broken_integer_field_is_refused(tmp_path, old, new, detail):
    text = GBT26341_FILE.read_text(encoding="utf-8")
    assert old in text
    folder = tmp_path / "gbt26341-2010"
    folder.mkdir()
    (folder / "2010.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(folder / "2010.yaml")
    assert any(detail in p.message for p in info.value.problems), [p.message for p in info.value.problems]


# --------------------------------------------------------------------------- an office's 判定卡 (MZ/T 039 combination_table)

def _card(level_of) -> dict:
    return {"id": "synthetic-card-test-only", "version": "0",
            "provenance": {"office": "测试用合成判定卡（非真实）", "document": "none — synthetic test fixture",
                           "region": "000000", "effective_date": "2000-01-01"},
            "cells": [[[[level_of(a, mm, s, p) for p in range(4)] for s in range(4)] for mm in range(4)]
                      for a in range(4)]}


def test_office_card_replaces_the_combination_rules(mzt):
    """reference §4 settings: a supplied 256-cell table replaces the rules and the gap/overlap settings."""
    card = _card(lambda a, mm, s, p: max(a, mm, s, p))   # synthetic: the worst grade
    ins = mzt.with_settings(combination_table=card)
    table = _score(ins, "initial")
    assert table.cells[table.cell_index((1, 0, 3, 0))] == 3 and table.cells[table.cell_index((0, 0, 0, 3))] == 3
    r = assess.score_one(ins, {**_intact(), "B.1.10": 5, "B.3.2": 4})   # 1030
    assert (r.level_initial, r.settings["mzt039-2013.combination_table"]) == (3, "synthetic-card-test-only@0")
    assert any("判定卡 synthetic-card-test-only@0" in step["zh"] for step in r.trace)
    assert assess.score_one(mzt, {**_intact(), "B.1.10": 5, "B.3.2": 4}).level_initial == 2   # rules without it


@pytest.mark.parametrize("broken, detail", [
    (lambda c: c["cells"].pop(), "must list 4 entries"),
    (lambda c: c["cells"][3][3][3].__setitem__(3, 4), "[3, 3, 3, 3] is 4"),
    (lambda c: c["provenance"].pop("document"), "provenance.document"),
])
def test_incomplete_card_refused(mzt, broken, detail):
    card = _card(lambda a, mm, s, p: a)
    broken(card)
    with pytest.raises(assess.SettingError) as info:
        mzt.with_settings(combination_table=card)
    assert info.value.problems[0].code is Code.SET_004 and detail in info.value.problems[0].message
