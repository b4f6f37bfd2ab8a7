"""The one-assessment API: instruments, settings, Result, and answers that cannot be scored."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import assess
from assess import icd10
from assess.errors import Code, format_allowed

from _support import GBT, GBT_FILE, max_answers


@pytest.fixture
def full(gbt):
    """All 26 items at maximum, no rule input set (reference §10: total 90, level 0)."""
    return max_answers(gbt)


# --------------------------------------------------------------------------- instruments

def test_list_instruments():
    refs = assess.list_instruments()
    assert all(isinstance(r, assess.InstrumentRef) for r in refs)
    assert refs == sorted(refs, key=lambda r: (r.id, r.version))
    (gbt,) = [r for r in refs if r.id == GBT]
    assert gbt.version == "2022"
    assert gbt.title == "老年人能力评估规范"
    assert gbt.effective_date is None          # reference §7: dates [UNVERIFIED]
    assert gbt.path.endswith("2022.yaml")


def test_load_instrument(gbt):
    assert gbt.id == GBT and gbt.version == "2022"
    assert assess.load_instrument(GBT, version="2022") is gbt       # cached, same settings
    assert isinstance(gbt, assess.Instrument)


@pytest.mark.parametrize("args", [("no-such-instrument",), (GBT, "1999")], ids=["id", "version"])
def test_unknown_instrument(args):
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_instrument(*args)
    assert info.value.code is Code.INSTR_006
    assert f"{GBT}@2022" in str(info.value)       # lists what is installed
    assert args[-1] in str(info.value)


def test_unknown_instrument_in_score_one(full):
    with pytest.raises(assess.InstrumentError) as info:
        assess.score_one("gbt42195", full)
    assert info.value.code is Code.INSTR_006


def test_search_path_newest_version_and_old_still_loadable(tmp_path, monkeypatch, fresh_index):
    folder = tmp_path / GBT
    folder.mkdir()
    text = GBT_FILE.read_text(encoding="utf-8").replace('version: "2022"', 'version: "2099"')
    (folder / "2099.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("ASSESS_INSTRUMENTS_PATH", str(tmp_path))
    assess.instrument._index.cache_clear()
    assert [r.version for r in assess.list_instruments() if r.id == GBT] == ["2022", "2099"]
    assert assess.load_instrument(GBT).version == "2099"
    assert assess.load_instrument(GBT, version="2022").version == "2022"


# --------------------------------------------------------------------------- settings

@pytest.mark.parametrize("name", ["raise_stacking", f"{GBT}.raise_stacking"], ids=["short", "long"])
def test_settings_by_short_and_long_name(name, gbt):
    ins = assess.load_instrument(GBT, settings={name: "additive"})
    assert ins.setting_values["raise_stacking"] == "additive"
    assert ins.raise_combination == "sum"
    assert gbt.setting_values["raise_stacking"] == "single"          # the default is untouched
    assert gbt.raise_combination == "max"
    via = gbt.with_settings({name: "additive"})
    assert via.setting_values == ins.setting_values
    assert gbt.with_settings(raise_stacking="additive").setting_values == ins.setting_values
    assert gbt.setting_values["raise_stacking"] == "single"


def test_settings_change_the_result(gbt, full):
    """reference §10: total 70, R2 and R3 → 2 under single, 3 under additive."""
    answers = {**full, **{f"B.1.{k}": 0 for k in range(1, 6)}, "A.4.1": ["F03"], "A.2.14.1": 2}
    assert assess.score_one(gbt, answers).level == 2
    for how in ({"settings": {"raise_stacking": "additive"}},
                {"settings": {f"{GBT}.raise_stacking": "additive"}}):
        assert assess.score_one(gbt, answers, **how).level == 3
        assert assess.score_one(GBT, answers, **how).level == 3
    result = assess.score_one(gbt.with_settings(raise_stacking="additive"), answers)
    assert result.level == 3
    assert result.settings[f"{GBT}.raise_stacking"] == "additive"
    assert set(result.settings) == {f"{GBT}.{n}" for n in gbt.settings}


def test_coma_final_level_accepts_int(gbt):
    assert assess.load_instrument(GBT, settings={"coma_final_level": 3}).setting_values["coma_final_level"] == "3"


@pytest.mark.parametrize("settings, code", [
    ({"no_such_setting": "x"}, Code.SET_001),
    ({f"{GBT}.no_such_setting": "x"}, Code.SET_001),
    ({"other-instrument.raise_stacking": "single"}, Code.SET_001),
    ({"raise_stacking": "both"}, Code.SET_002),
    ({f"{GBT}.event_count_scope": "per_row"}, Code.SET_002),
    ({"coma_final_level": "2"}, Code.SET_002),
    ({"coma_inputs": None}, Code.SET_002),
], ids=["unknown-short", "unknown-long", "other-instrument", "value", "value-long", "level-2", "none"])
def test_setting_errors(settings, code, gbt, full):
    name = next(iter(settings)).rpartition(".")[2]
    for call in (lambda: assess.load_instrument(GBT, settings=settings),
                 lambda: gbt.with_settings(settings),
                 lambda: assess.score_one(gbt, full, settings=settings)):
        with pytest.raises(assess.SettingError) as info:
            call()
        assert [p.code for p in info.value.problems] == [code]
        message = str(info.value)
        if code is Code.SET_001:
            assert all(f"{GBT}.{n}" in message for n in gbt.settings)         # lists the settings
        else:
            assert format_allowed(gbt.settings[name].values) in message       # lists the values
    assert issubclass(assess.SettingError, ValueError)


def test_several_setting_errors_listed(gbt):
    with pytest.raises(assess.SettingError) as info:
        gbt.with_settings({"raise_stacking": "both", "nope": 1})
    assert sorted(p.code.name for p in info.value.problems) == ["SET_001", "SET_002"]


# --------------------------------------------------------------------------- Result

def test_result_fields(gbt, full):
    answers = {**full, "B.1.1": 3, "A.4.1": ["F03"]}
    r = assess.score_one(gbt, answers)
    assert isinstance(r, assess.Result)
    assert (r.instrument, r.version, r.status) == (GBT, "2022", "ok")
    assert r.domains == {"B.1": 31, "B.2": 15, "B.3": 28, "B.4": 15}
    assert r.total == 89 and r.scores == {"total": 89}
    assert r.level_initial == 1 and r.level == 2                    # reference §3 and R2
    assert r.level_label == gbt.band(2).label.zh
    assert [x.id for x in r.rules] == ["R2"]
    assert "F03" in r.rules[0].reason and r.rules[0].clause == gbt.rules[1].clause
    assert r.items["B.1.1"] == 3 and len(r.items) == 26
    assert r.definition_hash == gbt.definition_hash
    assert r.problems == ()


def test_trace_follows_the_report_clauses(gbt, full):
    r = assess.score_one(gbt, {**full, "A.2.14.1": 2})
    clauses = [s["clause"] for s in r.trace]
    assert all(set(s) == {"clause", "zh", "en"} and s["zh"] for s in r.trace)
    # C.1 domains → C.2 total → C.3 initial level → C.4 rules → C.5 final level, in that order
    order = ["B.1", "B.2", "B.3", "B.4", "附录C C.2", "附录C C.3"] + [x.clause for x in gbt.rules] + ["final"]
    assert clauses == order
    assert any("R3" in s["zh"] and "成立" in s["zh"] for s in r.trace)
    assert "90" in r.trace[4]["zh"]


def test_to_dict_is_json(gbt, full):
    r = assess.score_one(gbt, {**full, "A.5.11": 1, "B.3.9": "0b"})
    d = r.to_dict()
    back = json.loads(json.dumps(d, ensure_ascii=False, allow_nan=False))
    assert back == d
    assert d["engine_version"] == assess.__version__
    assert (d["total"], d["level_initial"], d["level"]) == (88, 1, 4)
    assert d["domains"] == r.domains and d["items"] == r.items
    assert [x["id"] for x in d["rules"]] == ["R1"]
    assert d["settings"] == r.settings and len(d["trace"]) == len(r.trace)
    assert "总分 88" in r.summary_zh() and "最终等级 4" in r.summary_zh()


def test_to_dict_incomplete_is_json(gbt, full):
    answers = dict(full)
    del answers["B.2.1"]
    d = assess.score_one(gbt, answers, allow_incomplete=True).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert [p["code"] for p in d["problems"]] == ["RESP_003"] and d["problems"][0]["item"] == "B.2.1"


# --------------------------------------------------------------------------- answers that cannot be scored

def _bad(full, **changes):
    out = dict(full)
    for k, v in changes.items():
        k = k.replace("_", ".")
        if v is _DROP:
            out.pop(k)
        else:
            out[k] = v
    return out


_DROP = object()

INVALID = [
    # (id, changes, code, item, whether the message must list the item's allowed codes)
    ("unknown-item", {"B.9.9": 4}, Code.RESP_001, "B.9.9", False),
    ("code-not-allowed", {"B.1.1": 5}, Code.RESP_002, "B.1.1", True),
    ("stairs-max-3", {"B.2.4": 4}, Code.RESP_002, "B.2.4", True),
    ("negative", {"B.3.1": -1}, Code.RESP_002, "B.3.1", True),
    ("fraction", {"B.1.2": 2.5}, Code.RESP_002, "B.1.2", True),
    ("bool", {"B.3.7": True}, Code.RESP_002, "B.3.7", True),
    ("string-4.0", {"B.1.1": "4.0"}, Code.RESP_002, "B.1.1", True),
    ("unknown-subcode", {"B.3.9": "0c"}, Code.RESP_002, "B.3.9", True),
    ("event-count-4", {"A.2.14.1": 4}, Code.RESP_002, "A.2.14.1", True),
    ("coma-2", {"A.5.11": 2}, Code.RESP_002, "A.5.11", True),
    ("missing-item", {"B.1.1": _DROP}, Code.RESP_003, "B.1.1", True),
    ("blank-item", {"B.4.5": "  "}, Code.RESP_003, "B.4.5", True),
    ("none-item", {"B.4.5": None}, Code.RESP_003, "B.4.5", True),
    ("nan-item", {"B.2.2": float("nan")}, Code.RESP_003, "B.2.2", True),
    ("pd-na-item", {"B.2.2": pd.NA}, Code.RESP_003, "B.2.2", True),
    # A.5.11 is needed only when B.3.9 cannot decide coma (plain 0 under coma_inputs=either; reference §5)
    ("missing-coma-field", {"A.5.11": _DROP, "B.3.9": 0}, Code.RESP_003, "A.5.11", True),
    ("missing-event-row", {"A.2.14.3": _DROP}, Code.RESP_003, "A.2.14.3", True),
    ("coma-but-awake", {"A.5.11": 1, "B.3.9": 2}, Code.RESP_004, "A.5.11", False),
    ("coma-but-drowsy", {"A.5.11": 1, "B.3.9": "1a"}, Code.RESP_004, "A.5.11", False),
    ("comatose-but-no-coma", {"A.5.11": 0, "B.3.9": "0b"}, Code.RESP_004, "A.5.11", False),
    ("icd10-malformed", {"A.4.1": ["F3"]}, Code.RESP_005, "A.4.1", False),
    ("icd10-word", {"A.4.1": "dementia"}, Code.RESP_005, "A.4.1", False),
    ("icd10-range-literal", {"A.4.1": ["F00-F03"]}, Code.RESP_005, "A.4.1", False),
    ("icd10-not-text", {"A.4.1": [3]}, Code.RESP_005, "A.4.1", False),
    ("icd10-number", {"A.4.1": 5}, Code.RESP_005, "A.4.1", False),
]


@pytest.mark.parametrize("changes, code, item, lists_allowed", [x[1:] for x in INVALID],
                         ids=[x[0] for x in INVALID])
def test_invalid_answers(gbt, full, changes, code, item, lists_allowed):
    answers = {**{k: v for k, v in full.items() if changes.get(k, 0) is not _DROP},
               **{k: v for k, v in changes.items() if v is not _DROP}}
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one(gbt, answers)
    problems = info.value.problems
    assert [p.code for p in problems] == [code]
    (p,) = problems
    assert p.item == item and item in p.message
    if lists_allowed:
        assert format_allowed(gbt.question(item).codes) in p.message
    if code is Code.RESP_001:
        assert "B.1.1" in p.message                         # shows the known ids
    if code is Code.RESP_004:
        assert "A.5.11" in p.message and "B.3.9" in p.message   # names both fields
    if code is Code.RESP_005:
        assert icd10.EXPECTED in p.message
    assert isinstance(info.value, ValueError)
    assert info.value.to_dict()["error"] == code.name


def test_all_problems_listed_at_once(gbt, full):
    answers = {**full, "B.1.1": 9, "B.4.4": 4, "X.1": 1, "A.4.1": ["??"]}
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one(gbt, answers)
    got = [(p.code, p.item) for p in info.value.problems]
    assert got == [(Code.RESP_001, "X.1"), (Code.RESP_002, "B.1.1"), (Code.RESP_002, "B.4.4"),
                   (Code.RESP_005, "A.4.1")]


def test_unknown_item_and_missing_item_listed_together(gbt, full):
    answers = {**full, "X.1": 1}
    del answers["B.2.1"]
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one(gbt, answers)
    assert [(p.code, p.item) for p in info.value.problems] == [(Code.RESP_001, "X.1"), (Code.RESP_003, "B.2.1")]


@pytest.mark.parametrize("bad", [{"B.1.1": 9}, {"A.5.11": 1, "B.3.9": 2}], ids=["not-allowed", "inconsistent"])
def test_missing_items_listed_with_other_problems(gbt, full, bad):
    answers = {**full, **bad}
    del answers["B.2.1"]
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one(gbt, answers)
    assert (Code.RESP_003, "B.2.1") in [(p.code, p.item) for p in info.value.problems]


def test_answers_must_be_a_mapping(gbt):
    with pytest.raises(TypeError):
        assess.score_one(gbt, [("B.1.1", 4)])


def test_diagnosis_list_is_optional(gbt, full):
    answers = dict(full)
    del answers["A.4.1"]
    assert assess.score_one(gbt, answers).level == 0
    assert assess.score_one(gbt, {**full, "A.4.1": None}).level == 0
    assert assess.score_one(gbt, {**full, "A.4.1": ""}).level == 0


@pytest.mark.parametrize("cell", ["F03", "E11;F03", "E11；F03", "E11, F03", "E11、F03", ("E11", "F03"), [" f03 "]],
                         ids=["one", "semicolon", "fullwidth", "comma", "dunhao", "tuple", "spaces"])
def test_diagnosis_cells(gbt, full, cell):
    r = assess.score_one(gbt, {**full, "A.4.1": cell})
    assert [x.id for x in r.rules] == ["R2"] and r.level == 1


# --------------------------------------------------------------------------- incomplete

def test_allow_incomplete(gbt, full):
    answers = dict(full)
    del answers["B.1.1"], answers["B.4.5"]
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one(gbt, answers)
    assert [(p.code, p.item) for p in info.value.problems] == [(Code.RESP_003, "B.1.1"), (Code.RESP_003, "B.4.5")]
    r = assess.score_one(gbt, answers, allow_incomplete=True)
    assert r.status == "incomplete"
    assert r.domains == {"B.1": None, "B.2": 15, "B.3": 28, "B.4": None}
    assert r.total is None and r.scores == {"total": None}
    assert r.level_initial is None and r.level is None and r.level_label is None
    assert r.items["B.1.1"] is None and r.items["B.1.2"] == 4
    assert [(p.code, p.item) for p in r.problems] == [(Code.RESP_003, "B.1.1"), (Code.RESP_003, "B.4.5")]
    assert "incomplete" in r.summary_zh()


def test_allow_incomplete_still_rejects_bad_codes(gbt, full):
    answers = {**full, "B.1.2": 7}
    del answers["B.1.1"]
    with pytest.raises(assess.AnswerError) as info:
        assess.score_one(gbt, answers, allow_incomplete=True)
    assert info.value.code is Code.RESP_002


def test_missing_is_never_zero(gbt, full):
    """data-hygiene §4: a blank is never 0 — a missing item gives no total, 0 gives a total."""
    zero = assess.score_one(gbt, {**full, "B.1.1": 0})
    blank = assess.score_one(gbt, {**full, "B.1.1": None}, allow_incomplete=True)
    assert zero.total == 86 and zero.domains["B.1"] == 28
    assert blank.total is None and blank.domains["B.1"] is None


# --------------------------------------------------------------------------- answer types

CONVERSIONS = {
    "int": int, "str": str, "float": float, "np.int64": np.int64, "np.int8": np.int8, "np.uint16": np.uint16,
    "np.float64": np.float64, "np.float32": np.float32, "str-padded": lambda v: f" {v} ",
}


@pytest.mark.parametrize("convert", CONVERSIONS.values(), ids=CONVERSIONS.keys())
def test_answer_types_are_equal(gbt, rng, convert):
    """"4", 4, 4.0 and numpy scalars are the same answer."""
    from _support import random_valid_answers
    for _ in range(10):
        answers = random_valid_answers(gbt, rng)
        plain = assess.score_one(gbt, answers).to_dict()
        converted = {k: (convert(v) if isinstance(v, int) else v) for k, v in answers.items()}
        assert assess.score_one(gbt, converted).to_dict() == plain


def test_numpy_answers_from_an_array(gbt, full):
    codes = np.array([full[i.id] for i in gbt.items], dtype=np.int64)
    answers = {**full, **dict(zip((i.id for i in gbt.items), codes))}
    assert isinstance(answers["B.1.1"], np.int64)
    r = assess.score_one(gbt, answers)
    assert r.total == 90 and type(r.total) is int
    assert json.dumps(r.to_dict())


def test_nan_float_column_value_is_missing(gbt, full):
    r = assess.score_one(gbt, {**full, "B.1.1": np.float64("nan")}, allow_incomplete=True)
    assert r.status == "incomplete"
    assert r.items["B.1.1"] is None


def test_score_one_does_not_modify_answers(gbt, full):
    answers = {**full, "A.4.1": ["f03"]}
    before = json.dumps(answers, sort_keys=True)
    assess.score_one(gbt, answers)
    assert json.dumps(answers, sort_keys=True) == before


def test_copy_of_instrument_file_scores_the_same(tmp_path, gbt, full):
    path = tmp_path / GBT / "2022.yaml"
    path.parent.mkdir()
    shutil.copy(GBT_FILE, path)
    other = assess.load_path(path)
    answers = {**full, "B.2.3": 1, "A.2.14.5": 2}
    assert assess.score_one(other, answers).to_dict() == assess.score_one(gbt, answers).to_dict()
