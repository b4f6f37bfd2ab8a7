"""Common checks over every instrument definition file (STYLE §11).

Parametrised over every file under instruments/, so a new instrument gets these checks for free:
it loads and passes the schema, its ids are unique, every option carries points, every band of
its level score is reachable at both ends, and the bands are contiguous and cover the range.
"""
from __future__ import annotations

import jsonschema
import pytest

import assess
from assess.instrument import schema, validate

from _support import (GBT_FILE, is_plain_sum, INSTRUMENTS_DIR, answers_for_total, contributing_items, instrument_files, load_file,
                      reachable_totals, read_yaml, required_settings, score_range)

FILES = instrument_files()
IDS = [str(p.relative_to(INSTRUMENTS_DIR)) for p in FILES]
each_file = pytest.mark.parametrize("path", FILES, ids=IDS)


def test_instrument_files_found():
    assert GBT_FILE in FILES
    assert all(p.is_file() and p.stat().st_size > 0 for p in FILES)


@each_file
def test_passes_schema(path):
    errors = list(jsonschema.Draft202012Validator(schema()).iter_errors(read_yaml(path)))
    assert not errors, [e.message for e in errors]


@each_file
def test_loads(path):
    ins = load_file(path)
    assert isinstance(ins, assess.Instrument)
    # one file per version: instruments/<id>/<version>.yaml (STYLE §2.5)
    assert ins.id == path.parent.name
    assert ins.version == path.stem
    assert ins.title.zh and ins.source["citation"]


@each_file
def test_installed_and_listed(path):
    refs = {(r.id, r.version) for r in assess.list_instruments()}
    assert (path.parent.name, path.stem) in refs


@each_file
def test_ids_unique(path):
    ins = load_file(path)
    questions = [q.id for q in (*ins.items, *ins.fields)]
    assert len(questions) == len(set(questions))
    for group in (ins.domains, ins.scores, ins.rules, ins.constraints):
        ids = [x.id for x in group]
        assert len(ids) == len(set(ids)), ids
    named = [d.id for d in ins.domains] + [s.id for s in ins.scores]
    assert not set(named) & set(questions)
    for q in (*ins.items, *ins.fields):
        keys = [o.key for o in q.options]
        assert len(keys) == len(set(keys)), f"{q.id}: duplicate option codes {keys}"


@each_file
def test_every_option_has_points(path):
    ins = load_file(path)
    for item in ins.items:
        assert item.options, item.id
        for o in item.options:
            assert isinstance(o.points, int) and not isinstance(o.points, bool), f"{item.id} option {o.raw}"


@each_file
def test_every_item_in_a_domain(path):
    ins = load_file(path)
    in_domains = [i for d in ins.domains for i in d.items]
    assert sorted(in_domains) == sorted(i.id for i in ins.items)
    assert all(d.items for d in ins.domains), "a domain without items"


def _band_sets(path):
    """The instrument with each of its band sets in force (one when the bands are not chosen by a setting)."""
    ins = load_file(path)
    bands = read_yaml(path)["levels"]["bands"]
    if isinstance(bands, list):
        return [ins]
    return [ins.with_settings({bands["by_setting"]: set_id}) for set_id in bands["cases"]]


@each_file
def test_bands_contiguous_and_cover_range(path):
    """Bands, with the spans a band set declares unclassified (each with its reason), are contiguous
    and cover the range: a gap is allowed only where it is declared."""
    for ins in _band_sets(path):
        lo, hi = score_range(ins, ins.level_score)
        assert sorted(b.level for b in ins.bands) == list(range(len(ins.bands)))
        spans = sorted([(b.min, b.max, f"level {b.level}") for b in ins.bands]
                       + [(u.min, u.max, f"unclassified ({u.reason.zh})") for u in ins.unclassified])
        assert all(u.reason.zh.strip() for u in ins.unclassified)
        assert spans[0][0] == lo, f"lowest band starts at {spans[0][0]}, range starts at {lo}"
        assert spans[-1][1] == hi, f"highest band ends at {spans[-1][1]}, range ends at {hi}"
        for a, b in zip(spans, spans[1:]):
            assert a[0] <= a[1]
            assert b[0] == a[1] + 1, f"{a[2]} and {b[2]}: {a[0]}–{a[1]} then {b[0]}–{b[1]}"
        ordered = sorted(ins.bands, key=lambda b: b.min)
        levels = [b.level for b in ordered]
        # levels are numbered from 0 for the most able band (issue 5)
        if ins.direction == "higher_is_better":
            assert levels == sorted(levels, reverse=True)
        elif ins.direction == "higher_is_worse":
            assert levels == sorted(levels)


@each_file
def test_every_band_reachable_at_both_ends(path, rng):
    """For each band, answer sets score its lowest and its highest reachable total, and the engine
    agrees on the band. (Where points come in steps, e.g. Barthel's 5s, a band edge such as 61 is not
    itself reachable; the band's reachable ends are tested instead, and each band must hold one.)"""
    for ins in _band_sets(path):
        reach = reachable_totals(ins)
        if not is_plain_sum(ins, ins.level_score):   # a grade table (MZ/T 039), weighted points (NBA)
            for band in ins.bands:
                assert any(band.min <= t <= band.max for t in reach), f"level {band.level} cannot be reached"
            continue
        assert contributing_items(ins, ins.level_score)
        for band in ins.bands:
            inside = [t for t in reach if band.min <= t <= band.max]
            assert inside, f"level {band.level}: no total in {band.min}–{band.max} can be reached"
            for target in (inside[0], inside[-1]):
                answers = answers_for_total(ins, target, rng)
                result = assess.score_one(ins, answers)
                assert result.total == target
                assert result.level_initial == band.level


@each_file
def test_unclassified_totals_have_no_level_and_stay_ok(path, rng):
    """A declared unclassified total scores as ok, with no level and the declared reason."""
    for ins in _band_sets(path):
        for span in ins.unclassified:
            for target in [t for t in reachable_totals(ins) if span.min <= t <= span.max][:2]:
                result = assess.score_one(ins, answers_for_total(ins, target, rng))
                assert (result.status, result.total, result.level_initial, result.level) == ("ok", target, None, None)
                assert result.level_reason == span.reason.zh


def test_undeclared_gap_between_bands_is_refused():
    """Accidental gaps are still caught: only a span declared ``unclassified`` may be left out."""
    data = read_yaml(INSTRUMENTS_DIR / "katz-1963" / "1963.yaml")
    hartford = data["levels"]["bands"]["cases"]["hartford"]
    data["levels"]["bands"]["cases"]["hartford"] = [b for b in hartford if "level" in b]
    with pytest.raises(assess.InstrumentError) as info:
        validate(data, "katz-1963/1963.yaml")
    assert any(p.code.name == "INSTR_004" and "gap before" in p.message for p in info.value.problems)


@each_file
def test_every_setting_value_builds(path):
    ins = load_file(path)
    base = required_settings(path)
    for name, setting in ins.settings.items():
        if setting.kind == "table":   # a file the office supplies (tests/test_grading_table.py)
            assert setting.default is None and not setting.values, name
            continue
        assert setting.values, name
        for value in setting.values:
            built = assess.load_path(path, settings={**base, name: value})
            assert built.setting_values[name] == value


@each_file
def test_rules_have_clauses(path):
    ins = load_file(path)
    for r in ins.rules:
        assert r.clause.strip(), f"rule {r.id} cites no clause"
        effects = [r.set_level is not None, r.raise_by != 0, r.flag]
        assert effects.count(True) == 1, f"rule {r.id}: exactly one effect"
