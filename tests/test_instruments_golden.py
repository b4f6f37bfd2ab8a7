"""Golden cases for every instrument that has them (STYLE §12).

Each file tests/golden/<id>/<version>/cases.yaml holds synthetic answer sets (never real
assessments), each citing the clause of the instrument and the section of its
shared/reference/*.md file it checks ("reference §…"). A case starts from one of the file's
``bases`` and overrides some answers; ``expect`` lists what must come out (items listed are
compared, the rest of the result as given). Cut-off cases are also generated from every band set
of every instrument file, so a new cut-off is covered on both sides without editing a golden file.
"""
from __future__ import annotations

import pytest

import assess

from _support import (GOLDEN_DIR, answers_for_total, instrument_files, is_plain_sum, load_file, read_yaml,
                      reachable_totals)

GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*/*/cases.yaml"))


def _cases():
    out = []
    for path in GOLDEN_FILES:
        golden = read_yaml(path)
        for case in golden["cases"]:
            out.append(pytest.param(golden, case, id=f"{golden['instrument']}:{case['id']}"))
    return out


def _answers(golden: dict, case: dict) -> dict:
    answers = dict(golden["bases"][case["base"]])
    answers.update(case.get("answers") or {})
    return {k: v for k, v in answers.items() if v != "__absent__"}


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[str(p.relative_to(GOLDEN_DIR)) for p in GOLDEN_FILES])
def test_golden_file_is_well_formed(path):
    golden = read_yaml(path)
    ins = assess.load_instrument(golden["instrument"], version=golden["version"])
    assert path.parent.name == ins.version and path.parent.parent.name == ins.id
    ids = [c["id"] for c in golden["cases"]]
    assert len(ids) == len(set(ids)), "golden case ids must be unique"
    for case in golden["cases"]:
        assert "reference §" in case.get("clause", ""), f"{case['id']}: cite the reference section"
        assert case["base"] in golden["bases"], case["id"]


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[str(p.relative_to(GOLDEN_DIR)) for p in GOLDEN_FILES])
def test_golden_cases_cover_both_sides_of_every_cutoff(path):
    """For the band set in force by default: the lowest reachable total of each band, and the
    highest reachable total below it, each appear in a hand-written case."""
    golden = read_yaml(path)
    ins = assess.load_instrument(golden["instrument"], version=golden["version"])
    # cases under the default band set: no settings, or only settings that have no default (Shah coding)
    totals = {c["expect"]["total"] for c in golden["cases"]
              if all(ins.settings[k.rpartition(".")[2]].default is None for k in (c.get("settings") or {}))
              and c["expect"].get("level_initial") is not None}
    reach = reachable_totals(ins)
    for band in ins.bands:
        inside = [t for t in reach if band.min <= t <= band.max]
        below = [t for t in reach if t < band.min]
        assert min(inside) in totals, f"level {band.level}: no case at {min(inside)}"
        if below:
            assert max(below) in totals, f"level {band.level}: no case at {max(below)} (just below)"


@pytest.mark.parametrize("golden, case", _cases())
def test_golden_case(golden, case):
    exp = case["expect"]
    if "error" in exp:   # answers the instrument must refuse, with the code and item named
        with pytest.raises(assess.AnswerError) as info:
            assess.score_one(golden["instrument"], _answers(golden, case), settings=case.get("settings"))
        assert (exp["error"], exp["item"]) in [(p.code.name, p.item) for p in info.value.problems]
        if "message_contains" in exp:   # e.g. the likely scale a foreign code belongs to
            assert any(exp["message_contains"] in p.message for p in info.value.problems
                       if p.item == exp["item"]), exp["message_contains"]
        return
    result = assess.score_one(golden["instrument"], _answers(golden, case), settings=case.get("settings"),
                              allow_incomplete=case.get("allow_incomplete", False))
    for item, points in (exp.get("items") or {}).items():
        assert result.items[item] == points, item
    if "domains" in exp:
        assert result.domains == exp["domains"]
    if "scores" in exp:
        assert result.scores == exp["scores"]
    assert result.total == exp["total"]
    assert result.level_initial == exp["level_initial"]
    assert result.level == exp.get("level", exp["level_initial"])
    assert result.status == exp.get("status", "ok")
    assert [r.id for r in result.rules] == exp.get("rules", [])
    if "label" in exp:
        assert result.level_label == exp["label"]
    assert result.level_reason == exp.get("level_reason")   # set only for declared unclassified totals
    for fid, value in (exp.get("fields") or {}).items():      # text fields: stored as given
        assert result.fields[fid] == value, fid
    assert list(result.skipped) == exp.get("skipped", [])      # items the instrument's rule skipped
    for cat, label in (exp.get("categories") or {}).items():   # category id → label, or null for none
        assert (result.categories[cat] or {}).get("label") == label, cat
    for name, value in (case.get("settings") or {}).items():
        assert result.settings[f"{golden['instrument']}.{name.rpartition('.')[2]}"] == str(value)


# --------------------------------------------------------------------------- generated from every band set

def _band_variants():
    """(file, settings) for each band set an instrument file offers."""
    out = []
    for path in instrument_files():
        bands = read_yaml(path)["levels"]["bands"]
        if isinstance(bands, dict):
            for set_id in bands["cases"]:
                out.append(pytest.param(path, {bands["by_setting"]: set_id}, id=f"{path.parent.name}-{set_id}"))
        else:
            out.append(pytest.param(path, {}, id=path.parent.name))
    return out


@pytest.mark.parametrize("path, settings", _band_variants())
def test_generated_cutoffs(path, settings, rng):
    """Both sides of every cut-off of every band set: the band's lowest reachable total, and the
    highest reachable total below it (which must fall in the neighbouring band)."""
    ins = load_file(path).with_settings(settings)
    if not is_plain_sum(ins, ins.level_score):
        pytest.skip("the level comes from a grade table, not a sum (tested by test_generated_grade_cutoffs)")
    reach = reachable_totals(ins)
    checked = 0
    for band in ins.bands:
        inside = [t for t in reach if band.min <= t <= band.max]
        assert inside, f"level {band.level} ({band.min}–{band.max}) cannot be reached"
        below = [t for t in reach if t < band.min]
        for total in [min(inside), max(inside)] + ([max(below)] if below else []):
            # a total in a declared unclassified span (e.g. Katz Hartford 3 and 5) has no level
            want = next((b.level for b in ins.bands if b.min <= total <= b.max), None)
            assert want is not None or ins.unclassified_span(total) is not None, total
            result = assess.score_one(ins, answers_for_total(ins, total, rng))
            assert (result.total, result.level_initial) == (total, want)
            checked += 1
    assert checked >= 2 * len(ins.bands)


def _graded_scores():
    out = []
    for path in instrument_files():
        ins = load_file(path)
        for s in ins.scores:
            if s.kind == "bands" and is_plain_sum(ins, s.sum[0]):
                out.append(pytest.param(path, s.id, id=f"{path.parent.name}-{s.id}"))
    return out


@pytest.mark.parametrize("path, score_id", _graded_scores())
def test_generated_grade_cutoffs(path, score_id, rng):
    """Both sides of every range of every banded score (e.g. MZ/T 039 domain grades A, M, P): the
    range's lowest and highest reachable value and the highest reachable value below it."""
    ins = load_file(path)
    s = next(x for x in ins.scores if x.id == score_id)
    reach = reachable_totals(ins, s.sum[0])
    checked = 0
    for lo, hi, value in s.bands:
        inside = [t for t in reach if lo <= t <= hi]
        below = [t for t in reach if t < lo]
        for total in [min(inside), max(inside)] + ([max(below)] if below else []):
            want = next(v for a, b, v in s.bands if a <= total <= b)
            result = assess.score_one(ins, answers_for_total(ins, total, rng, score_id=s.sum[0]))
            got = result.scores[score_id] if score_id in result.scores else None
            assert (result.domains.get(s.sum[0], result.scores.get(s.sum[0])), got) == (total, want)
            checked += 1
    assert checked >= 2 * len(s.bands)
