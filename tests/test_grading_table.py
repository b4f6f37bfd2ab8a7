"""Office-supplied grading tables (LTC 2021, shared/reference/ltc-2021.md §5).

The table used here is SYNTHETIC and test-only (tests/fixtures/ltc-grading-synthetic.yaml): its
numbers come from no office or standard. Without a table ltc-2021 reports the three indicator
totals and no level, saying why (§5.1); a table is refused with a message naming its first
failure (§5.3); a graded result records the table's id and version (§5.1).
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pyarrow as pa
import pytest
import yaml

import assess
from assess import batch
from assess.errors import Code

from _support import REPO

TABLE_FILE = REPO / "tests" / "fixtures" / "ltc-grading-synthetic.yaml"
TABLE = yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ltc():
    return assess.load_instrument("ltc-2021")


def _best(ins) -> dict:
    return {i.id: i.max_points for i in ins.items}


def test_without_a_table_totals_and_no_level(ltc):
    """§4, §5.1: the three indicator totals are always computed; no level without a table."""
    r = assess.score_one(ltc, {**_best(ltc), "ADL07": 5, "COG04": 2, "PSC03": 3})
    assert r.domains == {"ADL": 90, "COG": 14, "PSC": 11}
    assert (r.status, r.level_initial, r.level) == ("ok", None, None)
    assert "no_grading_table" in r.level_reason
    assert r.settings["ltc-2021.grading_table"] is None


def test_with_the_table_graded_and_recorded(ltc):
    ins = ltc.with_settings(grading_table=str(TABLE_FILE))
    r = assess.score_one(ins, {**_best(ins), "ADL07": 5, "ADL08": 5, "ADL09": 0, "ADL04": 0, "PSC01": 0})
    # ADL 100 − 10 − 10 − 10 − 10 = 60 → synthetic grade 1; PSC 8 → synthetic grade 1 (merged: the worse)
    assert r.domains == {"ADL": 60, "COG": 16, "PSC": 8}
    assert r.scores == {"ADL_grade": 1, "COG_grade": 0, "PSC_grade": 1, "COG_PSC_grade": 1, "grade": 3}
    assert (r.level, r.level_label, r.level_reason) == (3, "重度失能Ⅰ级", None)
    assert r.settings["ltc-2021.grading_table"] == "synthetic-test-only@0"
    assert any("synthetic-test-only@0" in step["zh"] for step in r.trace)


def test_table_given_as_data_or_file_is_the_same(ltc):
    by_file = assess.load_instrument("ltc-2021", settings={"ltc-2021.grading_table": str(TABLE_FILE)})
    by_data = ltc.with_settings(grading_table=TABLE)
    assert by_file.definition_hash == by_data.definition_hash != ltc.definition_hash
    kept = by_data.with_settings(adl06_b_points="5")   # changing another setting keeps the table
    assert kept.setting_values["grading_table"] == "synthetic-test-only@0" and kept.level_score == "grade"


def test_three_way_table(ltc):
    table = copy.deepcopy(TABLE)
    table["combination"] = {"shape": "three_way",
                            "matrix": [[[0, 1], [1, 2]], [[2, 3], [3, 4]], [[4, 5], [5, 5]]]}
    ins = ltc.with_settings(grading_table=table)
    r = assess.score_one(ins, {**_best(ins), "COG01": 0, "COG02": 3, "PSC01": 0})   # ADL g1, COG 11 h2, PSC 8 h2
    assert (r.scores["COG_grade"], r.scores["PSC_grade"], r.scores["grade"], r.level) == (1, 1, 2, 2)
    assert "COG_PSC_grade" not in r.scores


@pytest.mark.parametrize("table", [TABLE, None], ids=["table", "no-table"])
def test_kernel_equals_reference(ltc, table):
    kernel = pytest.importorskip("assess._kernel")
    ins = ltc.with_settings(grading_table=table) if table else ltc
    rng = np.random.default_rng(3)
    cols = {i.id: rng.choice([int(c) for c in i.codes], 2000).tolist() for i in ins.items}
    cols["ADL01"] = [None if k % 97 == 0 else v for k, v in enumerate(cols["ADL01"])]   # some incomplete rows
    data = pa.table(cols)
    ref, ker = batch.score_raw(ins, data, None), batch.score_raw(ins, data, kernel, threads=2)
    for key in ref:
        assert np.array_equal(ref[key], ker[key]), key
    out = assess.score(ins, data)
    ok = out.column("status").to_pylist().count("ok")
    assert 0 < ok < 2000
    levels = out.column("level").to_pylist()
    assert (levels.count(None) == 2000) == (table is None)


def _broken(path: str, value):
    table = copy.deepcopy(TABLE)
    *keys, last = path.split(".")
    node = table
    for k in keys:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return table


BROKEN = {
    "gap": (_broken("grades.ADL.1.min", 51), "gap"),
    "overlap": (_broken("grades.COG.0.min", 11), "overlap"),
    "beyond-the-maximum": (_broken("grades.ADL.0.max", 105), "overlap"),
    "does-not-reach-0": (_broken("grades.PSC.1.min", 1), "end at 1"),
    "one-grade": (_broken("grades.PSC", [{"code": "x", "name": "全部", "min": 0, "max": 12}]), "at least two"),
    "duplicate-codes": (_broken("grades.ADL.1.code", "g1"), "unique"),
    "merged-lists-differ": (_broken("grades.PSC.0.name", "别名"), "same grades"),
    "unknown-merge-rule": (_broken("combination.merge", "average"), "merge rule"),
    "wrong-shape": (_broken("combination.matrix", [[0, 1], [2, 3]]), "3 entries"),
    "cell-not-a-level": (_broken("combination.matrix.2", [4, 6]), "[2, 1] is 6"),
    "cell-not-an-integer": (_broken("combination.matrix.0", [0, "1"]), "[0, 1] is '1'"),
    "no-provenance-office": (_broken("provenance.office", KeyError), "provenance.office"),
    "region-not-6-digits": (_broken("provenance.region", 3301), "6-digit"),
    "unknown-shape": (_broken("combination.shape", "two_way"), "merged or three_way"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_incomplete_table_refused_naming_the_failure(ltc, name):
    table, detail = BROKEN[name]
    with pytest.raises(assess.SettingError) as info:
        ltc.with_settings(grading_table=table)
    (p,) = info.value.problems
    assert p.code is Code.SET_004 and detail in p.message, p.message


def test_table_file_that_cannot_be_read(ltc, tmp_path):
    with pytest.raises(assess.SettingError) as info:
        ltc.with_settings(grading_table=str(tmp_path / "absent.yaml"))
    assert info.value.problems[0].code is Code.SET_004
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(assess.SettingError, match="does not hold a mapping"):
        ltc.with_settings(grading_table=str(bad))


def test_table_maxima_follow_the_point_settings(ltc):
    """§5.3: ranges must cover 0 … the indicator maximum under the active point settings (ADL 100)."""
    table = _broken("grades.ADL.0.max", 99)
    with pytest.raises(assess.SettingError, match="expected a grade ending at 100"):
        ltc.with_settings(grading_table=table)
