"""Broken definition files: one InstrumentError listing every problem, each located (STYLE §2.5–6).

Each defect is a text edit of a temporary copy of the GB/T 42195 file. A defect says which
problems it must cause: the stable code, the item id (or None) and a marker, the text of the line
the problem must point at in the edited file. Messages are not retyped; the file name is checked.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

import assess
from assess.errors import Code

from _support import GBT_FILE, read_yaml


@dataclass
class Defect:
    old: str                       # text to replace (must occur exactly once)
    new: str
    expect: list                   # (Code, item id or None, marker of the line it points at)
    also: set = field(default_factory=set)   # codes that may follow as consequences


DEFECTS = {
    "unknown-domain": Defect(
        "{id: B.1.2, domain: B.1,", "{id: B.1.2, domain: B.9,",
        [(Code.INSTR_003, "B.1.2", "{id: B.1.2, domain: B.9,")],
        # B.1.2 then belongs to no domain, so the total range shrinks and the bands no longer fit
        also={Code.INSTR_004, Code.INSTR_008}),
    "duplicate-item-id": Defect(
        "{id: B.1.3, domain: B.1,", "{id: B.1.2, domain: B.1,",
        [(Code.INSTR_002, "B.1.2", "{id: B.1.2, domain: B.1, scale: S5, label: {zh: 洗澡")]),
    "duplicate-option-code": Defect(
        "- {code: 3, points: 3, label: {zh: 在他人指导或提示下完成，或独立使用辅具",
        "- {code: 4, points: 3, label: {zh: 在他人指导或提示下完成，或独立使用辅具",
        # located at the item's options list (its first option)
        [(Code.INSTR_002, "B.1.1", "- {code: 4, points: 4, label: {zh: 独立使用器具")]),
    "option-without-points": Defect(
        "- {code: 0, points: 0, label: {zh: 完全不能步行}}", "- {code: 0, label: {zh: 完全不能步行}}",
        [(Code.INSTR_001, "B.2.3", "- {code: 0, label: {zh: 完全不能步行}}")]),
    "band-gap": Defect(
        "{level: 2, min: 46,", "{level: 2, min: 47,",
        [(Code.INSTR_004, None, "{level: 2, min: 47,")]),
    "band-overlap": Defect(
        "{level: 3, min: 30, max: 45,", "{level: 3, min: 30, max: 46,",
        [(Code.INSTR_004, None, "{level: 2, min: 46,")]),
    "band-outside-range": Defect(
        "    - {level: 4, min: 0, max: 29,",
        "    - {level: 5, min: 91, max: 95, label: {zh: 越界}}\n    - {level: 4, min: 0, max: 29,",
        [(Code.INSTR_008, None, "{level: 5, min: 91, max: 95"),
         (Code.INSTR_004, None, "{level: 0, min: 90, max: 90,")]),   # the bands list starts here
    "setting-default-not-in-values": Defect(
        "    default: single", "    default: both",
        [(Code.INSTR_005, None, "    default: both")]),
    "by-setting-cases-mismatch-rule": Defect(
        "        per_type:", "        per_kind:",
        [(Code.INSTR_001, "R3", "        total_across_types: {sum:")]),
    "by-setting-cases-mismatch-combination": Defect(
        "  cases: {single: max, additive: sum}", "  cases: {single: max, additive_x: sum}",
        [(Code.INSTR_001, None, "  cases: {single: max, additive_x: sum}")]),
    "rule-unknown-field": Defect(
        "when: {field: A.4.1, icd10_in", "when: {field: A.4.9, icd10_in",
        [(Code.INSTR_003, "R2", "when: {field: A.4.9, icd10_in")]),
    "rule-code-field-lacks": Defect(
        "either: {any: [{field: A.5.11, in: [1]}, {field: B.3.9, in: [\"0b\"]}]}",
        "either: {any: [{field: A.5.11, in: [1]}, {field: B.3.9, in: [\"0c\"]}]}",
        [(Code.INSTR_003, "R1", "{field: B.3.9, in: [\"0c\"]}")]),
    "constraint-code-field-lacks": Defect(
        "when: {all: [{field: A.5.11, in: [0]}, {field: B.3.9, in: [\"0b\"]}]}",
        "when: {all: [{field: A.5.11, in: [0]}, {field: B.3.9, in: [\"0z\"]}]}",
        [(Code.INSTR_003, "comatose_but_no_coma", "{field: B.3.9, in: [\"0z\"]}")]),
    "rule-unknown-setting": Defect(
        "effect: {set_level: {setting: coma_final_level}}", "effect: {set_level: {setting: coma_level}}",
        [(Code.INSTR_003, "R1", "effect: {set_level: {setting: coma_level}}")]),
}

# Several defects in one file: every problem is listed at once.
SEVERAL = ["duplicate-item-id", "duplicate-option-code", "band-gap", "setting-default-not-in-values",
           "by-setting-cases-mismatch-rule", "rule-unknown-field", "rule-code-field-lacks",
           "constraint-code-field-lacks"]


def _write(tmp_path, defects: list[Defect], name="broken.yaml"):
    text = GBT_FILE.read_text(encoding="utf-8")
    for d in defects:
        assert text.count(d.old) == 1, f"defect anchor not unique: {d.old!r}"
        text = text.replace(d.old, d.new)
    folder = tmp_path / "demo-instrument"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path, text.splitlines()


def _line_of(lines, marker) -> int:
    hits = [n for n, line in enumerate(lines, 1) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} found on lines {hits}"
    return hits[0]


def _check(exc: assess.InstrumentError, path, lines, defects: list[Defect]):
    found = exc.problems
    expected = [e for d in defects for e in d.expect]
    allowed_extra = set().union(*(d.also for d in defects))
    for code, item, marker in expected:
        line = _line_of(lines, marker)
        match = [p for p in found if p.code is code and p.item == item and p.line == line]
        assert match, (f"no {code.name} for item {item} at line {line}; got "
                       f"{[(p.code.name, p.item, p.line) for p in found]}")
    want = Counter(code for code, _, _ in expected)
    got = Counter(p.code for p in found)
    for code, n in got.items():
        if code not in allowed_extra:
            assert n == want[code], f"{code.name}: {n} problems, expected {want[code]}"
    for p in found:
        assert path.name in p.message and path.parent.name in p.message, p.message
        assert p.line is not None and f":{p.line}" in p.message
        if p.item is not None:
            assert p.item in p.message
    assert exc.code is found[0].code
    assert str(exc) == "\n".join(p.message for p in found)


@pytest.mark.parametrize("name", DEFECTS)
def test_single_defect(tmp_path, name):
    path, lines = _write(tmp_path, [DEFECTS[name]])
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    _check(info.value, path, lines, [DEFECTS[name]])


def test_several_defects_listed_at_once(tmp_path):
    defects = [DEFECTS[n] for n in SEVERAL]
    path, lines = _write(tmp_path, defects)
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    _check(info.value, path, lines, defects)
    assert len(info.value.problems) == sum(len(d.expect) for d in defects)


def test_several_schema_defects_listed_at_once(tmp_path):
    defects = [DEFECTS["option-without-points"],
               Defect("direction: higher_is_better", "direction: sideways",
                      [(Code.INSTR_001, None, "direction: sideways")]),
               Defect("  - {id: B.4, label: {zh: 感知觉与社会参与", "  - {id: B 4, label: {zh: 感知觉与社会参与",
                      [(Code.INSTR_001, "B 4", "  - {id: B 4, label:")])]
    path, lines = _write(tmp_path, defects)
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    _check(info.value, path, lines, defects)


def test_yaml_syntax_error(tmp_path):
    path, lines = _write(tmp_path, [Defect("direction: higher_is_better", "direction: [higher_is_better", [])])
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    (p,) = info.value.problems
    assert p.code is Code.INSTR_007
    assert f"{path.parent.name}/{path.name}" in p.message
    assert f"line {_line_of(lines, 'direction: [higher_is_better')}" in p.message


def test_yaml_syntax_error_sets_line(tmp_path):
    path, lines = _write(tmp_path, [Defect("direction: higher_is_better", "direction: [higher_is_better", [])])
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    assert info.value.problems[0].line == _line_of(lines, "direction: [higher_is_better")


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", b"\xff\xfe\x00"], ids=["empty", "list", "not-utf8"])
def test_unreadable_file(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    assert [p.code for p in info.value.problems] == [Code.INSTR_007]
    assert path.name in info.value.problems[0].message


def test_missing_file(tmp_path):
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(tmp_path / "absent.yaml")
    assert info.value.code is Code.INSTR_007


def test_instrument_error_is_value_error():
    assert issubclass(assess.InstrumentError, assess.AssessError)
    assert issubclass(assess.InstrumentError, ValueError)


def test_load_path_sees_edits(tmp_path):
    path, _ = _write(tmp_path, [], name="2022.yaml")
    assert assess.load_path(path).id == "gbt42195-2022"
    path.write_text(path.read_text(encoding="utf-8").replace("{level: 2, min: 46,", "{level: 2, min: 47,"),
                    encoding="utf-8")
    with pytest.raises(assess.InstrumentError):
        assess.load_path(path)


def _load_edited(tmp_path, edit):
    import yaml
    raw = read_yaml(GBT_FILE)
    edit(raw)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(assess.InstrumentError) as info:
        assess.load_path(path)
    return info.value.problems


def test_more_rules_than_the_rule_mask_holds(tmp_path):
    """A result's rules column is a 32-bit mask: a 33rd rule is refused on load, said in a line
    with the reason, without quoting the 33 rules."""
    (p,) = _load_edited(tmp_path, lambda raw: raw.update(rules=[dict(raw["rules"][0], id=f"R{k}") for k in range(33)]))
    assert p.code is Code.INSTR_001 and "33 entries, at most 32 allowed (a result's rules column is a 32-bit mask" in p.message
    assert "R0" not in p.message


def test_a_list_below_its_minimum_says_the_count_and_no_other_reason(tmp_path):
    """An empty weighted sum: the count and the bound, not the description of its schema node."""
    def edit(raw):
        raw["scores"] = list(raw.get("scores", [])) + [
            {"id": "vw", "label": {"zh": "加权", "en": "weighted"}, "clause": "test", "weighted": []}]
    (p,) = _load_edited(tmp_path, edit)
    assert p.code is Code.INSTR_001 and "0 entries, at least 1 allowed. Fix" in p.message
