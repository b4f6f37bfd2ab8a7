"""Settings with no default (reference README, THE RULE): the input must declare them.

WHODAS 2.0 item coding (whodas-gbt26341.md §2: 1–5 or 0–4, no default, since the two codings differ
by one per item and a wrong guess silently shifts the total) and the Shah modified Barthel input
coding (barthel.md §3: levels 1–5 or points, declared by the caller). The definition loads for
display; scoring one assessment or a table refuses with SET_003 naming the setting until a value
is given, and the value used is recorded with the result.
"""
from __future__ import annotations

import pandas as pd
import pytest

import assess

WHODAS36_IDS = ([f"D1.{k}" for k in range(1, 7)] + [f"D2.{k}" for k in range(1, 6)] + [f"D3.{k}" for k in range(1, 5)]
                + [f"D4.{k}" for k in range(1, 6)] + [f"D5.{k}" for k in range(1, 9)] + [f"D6.{k}" for k in range(1, 9)])
SHAH_LEVELS = {"hygiene": 5, "bathing": 5, "feeding": 5, "toilet": 5, "stairs": 5, "dressing": 5, "bowels": 5,
               "bladder": 5, "transfer": 5, "ambulation": 5, "walks": 1}

# (instrument, setting, a value, answers valid under that value, total they give)
CASES = [
    pytest.param("whodas2-12", "coding", "1to5", {f"S{k}": 1 for k in range(1, 13)}, 12, id="whodas2-12"),
    pytest.param("whodas2-36", "coding", "0to4", {**{i: 0 for i in WHODAS36_IDS}, "works": 1}, 0, id="whodas2-36"),
    pytest.param("barthel-shah-1989", "coding", "levels", SHAH_LEVELS, 100, id="barthel-shah-1989"),
]


@pytest.mark.parametrize("instrument_id, name, value, answers, total", CASES)
def test_setting_has_no_default_and_loads_for_display(instrument_id, name, value, answers, total):
    ins = assess.load_instrument(instrument_id)
    assert ins.settings[name].default is None
    assert ins.unset == (name,)
    assert {d["name"]: d["value"] for d in ins.describe_settings()}[f"{instrument_id}.{name}"] is None


@pytest.mark.parametrize("instrument_id, name, value, answers, total", CASES)
def test_score_one_refuses_without_the_setting(instrument_id, name, value, answers, total):
    with pytest.raises(assess.SettingError) as info:
        assess.score_one(instrument_id, answers)
    assert [p.code.name for p in info.value.problems] == ["SET_003"]
    assert f"{instrument_id}.{name}" in info.value.problems[0].message


@pytest.mark.parametrize("instrument_id, name, value, answers, total", CASES)
def test_score_table_refuses_without_the_setting(instrument_id, name, value, answers, total):
    with pytest.raises(assess.SettingError) as info:
        assess.score(instrument_id, pd.DataFrame([answers]))
    assert info.value.code.name == "SET_003"


@pytest.mark.parametrize("instrument_id, name, value, answers, total", CASES)
def test_scores_once_the_setting_is_given_and_records_it(instrument_id, name, value, answers, total):
    result = assess.score_one(instrument_id, answers, settings={name: value})
    assert result.total == total
    assert result.settings[f"{instrument_id}.{name}"] == value
    table = assess.score(instrument_id, pd.DataFrame([answers]), settings={name: value})
    assert (table["status"].iloc[0], int(table["total"].iloc[0])) == ("ok", total)


@pytest.mark.parametrize("instrument_id, name, value, answers, total", CASES)
def test_an_instrument_with_the_setting_applied_scores(instrument_id, name, value, answers, total):
    ins = assess.load_instrument(instrument_id).with_settings({name: value})
    assert ins.unset == ()
    assert assess.score_one(ins, answers).total == total
