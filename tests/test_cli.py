"""The command line: instruments list/show/validate and score-one, and how errors reach the user."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import assess
from assess.cli import main
from assess.errors import Code

from _support import GBT, GBT_FILE, REPO, max_answers


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
    return invoke


@pytest.fixture
def answers_file(tmp_path, gbt):
    def write(answers, name="answers.json"):
        path = tmp_path / name
        path.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
        return path
    return write


@pytest.fixture
def full(gbt):
    return max_answers(gbt)


def test_version(run):
    res = run("--version")
    assert res.exit_code == 0 and assess.__version__ in res.output


# --------------------------------------------------------------------------- instruments

def test_instruments_list(run):
    res = run("instruments", "list")
    assert res.exit_code == 0
    assert f"{GBT}\t2022\t老年人能力评估规范" in res.stdout
    res = run("instruments", "list", "--json")
    listed = json.loads(res.stdout)
    assert {"id": GBT, "version": "2022"}.items() <= next(x for x in listed if x["id"] == GBT).items()
    assert len(listed) == len(assess.list_instruments())


def test_instruments_show(run, gbt):
    res = run("instruments", "show", GBT)
    assert res.exit_code == 0
    for item in gbt.items:
        assert f"  {item.id} " in res.stdout
    for b in gbt.bands:
        assert f"{b.level} {b.label.zh}: {b.min}–{b.max}" in res.stdout
    for name in gbt.settings:
        assert f"{GBT}.{name} = {gbt.setting_values[name]}   [" in res.stdout
    assert "(changed)" not in res.stdout


def test_instruments_show_json_and_set(run, gbt):
    res = run("instruments", "show", GBT, "--json", "--set", "raise_stacking=additive")
    assert res.exit_code == 0
    shown = json.loads(res.stdout)
    assert shown["id"] == GBT and len(shown["items"]) == 26
    assert [b["min"] for b in shown["bands"]] == [b.min for b in gbt.bands]
    settings = {s["name"]: s for s in shown["settings"]}
    assert settings[f"{GBT}.raise_stacking"]["value"] == "additive"
    assert settings[f"{GBT}.raise_stacking"]["default"] == "single"
    text = run("instruments", "show", GBT, "--set", f"{GBT}.coma_final_level=3").stdout
    assert f"{GBT}.coma_final_level = 3  (changed)" in text


@pytest.mark.parametrize("args, code", [
    (["instruments", "show", "no-such-instrument"], Code.INSTR_006),
    (["instruments", "show", GBT, "--version", "1999"], Code.INSTR_006),
    (["instruments", "show", GBT, "--set", "nope=1"], Code.SET_001),
    (["instruments", "show", GBT, "--set", "raise_stacking=both"], Code.SET_002),
], ids=["unknown-id", "unknown-version", "unknown-setting", "bad-setting-value"])
def test_instruments_show_errors(run, args, code):
    res = run(*args)
    assert res.exit_code == 2
    assert f"error {code.name}:" in res.stderr
    assert res.stdout == ""
    res = run(*args, "--json")
    assert res.exit_code == 2
    assert json.loads(res.stderr)["error"] == code.name


def test_validate_ok(run):
    res = run("instruments", "validate", GBT_FILE)
    assert res.exit_code == 0
    assert f"{GBT_FILE}: ok ({GBT} v2022, 26 items)" in res.stdout


def _broken(tmp_path):
    text = GBT_FILE.read_text(encoding="utf-8")
    text = text.replace("{level: 2, min: 46,", "{level: 2, min: 47,").replace("    default: single", "    default: both")
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_broken(run, tmp_path):
    path = _broken(tmp_path)
    res = run("instruments", "validate", GBT_FILE, path)
    assert res.exit_code == 1
    assert f"{GBT_FILE}: ok" in res.stdout                  # the good file is still reported
    assert f"{path}: 2 problem(s)" in res.stderr
    assert f"  {Code.INSTR_004.name}: " in res.stderr and f"  {Code.INSTR_005.name}: " in res.stderr
    assert "broken.yaml:" in res.stderr                     # file and line


def test_validate_broken_json(run, tmp_path):
    path = _broken(tmp_path)
    res = run("instruments", "validate", path, "--json")
    assert res.exit_code == 1
    report = json.loads(res.stderr)
    assert report["path"] == str(path)
    assert sorted(p["code"] for p in report["problems"]) == ["INSTR_004", "INSTR_005"]
    assert all(isinstance(p["line"], int) for p in report["problems"])


def test_validate_yaml_syntax_error(run, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: [unclosed\n", encoding="utf-8")
    res = run("instruments", "validate", path)
    assert res.exit_code == 1 and Code.INSTR_007.name in res.stderr


def test_validate_needs_an_existing_file(run, tmp_path):
    res = CliRunner().invoke(main, ["instruments", "validate", str(tmp_path / "absent.yaml")])
    assert res.exit_code == 2 and "does not exist" in res.output


# --------------------------------------------------------------------------- score-one

def test_score_one_json(run, answers_file, full):
    res = run("score-one", GBT, answers_file({**full, "B.1.1": 3}))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["total"], out["level_initial"], out["level"], out["status"]) == (89, 1, 1, "ok")
    assert out["domains"] == {"B.1": 31, "B.2": 15, "B.3": 28, "B.4": 15}
    assert out["trace"] and out["settings"][f"{GBT}.raise_stacking"] == "single"


def test_score_one_example_file(run):
    """The README demo: examples/gbt42195-answers.json scores and prints a Chinese summary."""
    example = REPO / "examples" / "gbt42195-answers.json"
    res = run("score-one", GBT, example, "--text")
    assert res.exit_code == 0, res.output
    want = assess.score_one(GBT, json.loads(example.read_text(encoding="utf-8")))
    assert f"总分 {want.total}" in res.stdout and f"最终等级 {want.level}" in res.stdout


def test_score_one_text(run, answers_file, full):
    res = run("score-one", GBT, answers_file({**full, "A.4.1": ["F03"]}), "--text")
    assert res.exit_code == 0
    assert "总分 90" in res.stdout and "初步等级 0" in res.stdout and "最终等级 1" in res.stdout
    assert "[附录C C.4 R2]" in res.stdout


def test_score_one_stdin(run, full):
    res = run("score-one", GBT, "-", input=json.dumps(full))
    assert res.exit_code == 0 and json.loads(res.stdout)["level"] == 0


@pytest.mark.parametrize("pairs, level", [([], 2), (["--set", "raise_stacking=additive"], 3),
                                          (["--set", f"{GBT}.raise_stacking=additive"], 3)],
                         ids=["default", "short", "long"])
def test_score_one_set(run, answers_file, full, pairs, level):
    """reference §10: total 70 with R2 and R3 → 2 (single) or 3 (additive)."""
    answers = {**full, **{f"B.1.{k}": 0 for k in range(1, 6)}, "A.4.1": ["F03"], "A.2.14.1": 2}
    res = run("score-one", GBT, answers_file(answers), *pairs)
    assert res.exit_code == 0 and json.loads(res.stdout)["level"] == level


@pytest.mark.parametrize("change, code, item", [
    ({"B.1.1": 7}, Code.RESP_002, "B.1.1"),
    ({"B.9.9": 1}, Code.RESP_001, "B.9.9"),
    ({"B.1.1": None}, Code.RESP_003, "B.1.1"),
    ({"A.5.11": 1}, Code.RESP_004, "A.5.11"),
    ({"A.4.1": ["F3"]}, Code.RESP_005, "A.4.1"),
], ids=["not-allowed", "unknown-item", "missing", "inconsistent", "icd10"])
def test_score_one_bad_answers(run, answers_file, full, gbt, change, code, item):
    path = answers_file({**full, **change})
    res = run("score-one", GBT, path)
    assert res.exit_code == 2
    assert res.stdout == ""
    assert f"error {code.name}: " in res.stderr and item in res.stderr
    if code is Code.RESP_002:
        assert "Allowed: 4, 3, 2, 1, 0" in res.stderr
    res = run("score-one", GBT, path, "--json")
    assert res.exit_code == 2
    err = json.loads(res.stderr)
    assert err["error"] == code.name and err["problems"][0]["item"] == item


def test_score_one_allow_incomplete(run, answers_file, full):
    res = run("score-one", GBT, answers_file({**full, "B.1.1": None}), "--allow-incomplete")
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert out["status"] == "incomplete" and out["level"] is None and out["domains"]["B.1"] is None


@pytest.mark.parametrize("content, hint", [("{not json", "not JSON"), ("[1, 2]", "JSON object"),
                                           ('"B.1.1"', "JSON object")], ids=["syntax", "list", "string"])
def test_score_one_bad_json(tmp_path, content, hint):
    path = tmp_path / "a.json"
    path.write_text(content, encoding="utf-8")
    res = CliRunner().invoke(main, ["score-one", GBT, str(path)])
    assert res.exit_code == 2
    assert hint in res.output and "ANSWERS" in res.output


@pytest.mark.parametrize("args, code", [
    (["score-one", "no-such-instrument"], Code.INSTR_006),
    (["score-one", GBT, "--set", "nope=1"], Code.SET_001),
    (["score-one", GBT, "--set", "coma_final_level=2"], Code.SET_002),
], ids=["unknown-instrument", "unknown-setting", "bad-setting-value"])
def test_score_one_errors(run, answers_file, full, args, code):
    path = answers_file(full)
    res = run(*args[:2], path, *args[2:])
    assert res.exit_code == 2
    assert f"error {code.name}: " in res.stderr


def test_score_one_set_without_equals(answers_file, full):
    res = CliRunner().invoke(main, ["score-one", GBT, str(answers_file(full)), "--set", "raise_stacking"])
    assert res.exit_code == 2 and "NAME=VALUE" in res.output


def test_score_one_missing_answers_file(tmp_path):
    res = CliRunner().invoke(main, ["score-one", GBT, str(tmp_path / "none.json")])
    assert res.exit_code == 2 and "none.json" in res.output
