"""OUT's Parquet columns declared required, and the memo that names rejected rows' problems.

Both are shortcuts of the screening run that must never change a result: a column declared
required (no definition levels) must hold a value in every row the reference scorer passes, for
every instrument; and ``checks.ProblemNamer``'s memo must not read one cell as another that
Python calls equal (tests/screen/test_screen_naming.py compares it with the reference).
"""
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq
import pytest

import assess
import yaml
from _support import INSTRUMENTS_DIR, instrument_files, load_file, read_yaml
from assess import _reference
from assess.screen import checks, run
from assess.screen.codes import int_coded
from assess.screen.writer import TableWriter

FILES = instrument_files()


def _rows(ins, rng: random.Random, n: int) -> list[dict]:
    """Raw answers as a file gives them (text of a code); a third of the rows with one or two cells
    blank or not allowed."""
    questions = [q for q in (*ins.items, *ins.fields) if q.options or getattr(q, "type", "") == "icd10_list"]
    rows = []
    for _ in range(n):
        row = {}
        for q in questions:
            if getattr(q, "type", "code") == "icd10_list":
                row[q.id] = rng.choice(["F03", "I10;F32", "G30", ""])
            else:
                row[q.id] = str(rng.choice(q.options).raw)
        if rng.random() < 1 / 3:
            for q in rng.sample(questions, min(len(questions), rng.randint(1, 2))):
                row[q.id] = rng.choice(["", None, "  ", "99", "-1", "x", "F0", "I10;"])
        rows.append(row)
    return rows


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_required_out_columns_hold_a_value_in_every_scored_row(path):
    ins = load_file(path)
    never_null = run._never_null(ins, int_coded(ins))
    assert {"source_line", "status", "rules"} <= never_null
    questions = never_null & set(ins._questions)
    scored = 0
    for answers in _rows(ins, random.Random(path.stem), 400):
        ev = _reference.evaluate(ins, answers)
        if ev.status == _reference.OK:
            scored += 1
            assert all(not _reference.is_missing(answers.get(q)) for q in questions), answers
    assert scored or not questions      # the check saw scored rows whenever it had columns to check


def _single_setting_changes(ins):
    """The settings in force, and each setting's other values one at a time."""
    yield {}
    for name, setting in ins.settings.items():
        if setting.kind == "table":
            continue
        for value in setting.values:
            if value != ins.setting_values.get(name):
                yield {name: value}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_scores_and_levels_declared_required_are_filled_in_every_ok_row(path):
    """Scores and levels join OUT's required columns only when the instrument fills them in every
    ok row (batch.never_null_when_ok); checked on the scorer's own output, under every setting."""
    base = load_file(path)
    for change in _single_setting_changes(base):
        ins = base.with_settings(change) if change else base
        declared = run._never_null(ins, int_coded(ins)) - set(ins._questions) - {"source_line"}
        rows = _rows(ins, random.Random(f"{path.stem}{change}"), 300)
        table = pa.Table.from_pylist([{q: r.get(q) for q in ins._questions} for r in rows])
        out = assess.score(ins, table)
        ok = out.filter(pa.compute.equal(out.column("status"), "ok"))
        # Some rows not ok: to_arrow then masks every column, so a null in an ok row would show.
        assert 0 < ok.num_rows < out.num_rows, change
        for name in declared:
            assert ok.column(name).null_count == 0, (change, name)


def test_a_weighted_score_of_an_optional_field_stays_nullable(tmp_path):
    """A weighted score may read a field; left blank on an ok row, the score is null there, so OUT
    does not declare it required (run._never_null), and a batch of ok rows still gets its mask."""
    raw = read_yaml(next((INSTRUMENTS_DIR / "phq9").glob("*.yaml")))
    raw["fields"] = list(raw.get("fields", [])) + [
        {"id": "visits", "label": {"zh": "就诊次数", "en": "visits"}, "type": "integer", "min": 0, "max": 9,
         "required": False}]
    raw["scores"] = list(raw["scores"]) + [
        {"id": "vw", "label": {"zh": "就诊加权", "en": "visits weighted"}, "clause": "test",
         "weighted": [{"of": "visits", "weight": 2}]}]
    path = tmp_path / "phq9x.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    ins = assess.load_path(path)
    assert "vw" not in run._never_null(ins, int_coded(ins))
    items = {i.id: pa.array([1, 2], pa.int8()) for i in ins.items}
    out = assess.score(ins, pa.table({**items, "visits": pa.array([None, 3], pa.int8())}))
    assert out.column("status").to_pylist() == ["ok", "ok"] and out.column("vw").to_pylist() == [None, 6]


def test_a_null_in_a_required_column_stops_the_write(tmp_path):
    out = tmp_path / "out.parquet"
    w = TableWriter(out, not_null=frozenset({"a"}))
    w.write(pa.table({"a": pa.array([1, 2], pa.int8()), "b": pa.array([None, 1], pa.int8())}))
    w.write(pa.table({"a": pa.array([3, None], pa.int8()), "b": pa.array([1, 1], pa.int8())}))
    with pytest.raises(ValueError, match="null"):
        w.commit()
    w.abort()
    assert not out.exists()


def test_required_columns_are_declared_in_the_file(tmp_path):
    out = tmp_path / "out.parquet"
    w = TableWriter(out, not_null=frozenset({"a"}))
    w.write(pa.table({"a": pa.array([1, 2], pa.int8()), "b": pa.array([None, 1], pa.int8())}))
    w.finish_empty(pa.schema([]))
    w.commit()
    schema = pq.read_schema(out)
    assert not schema.field("a").nullable and schema.field("b").nullable
    assert pq.read_table(out).column("a").to_pylist() == [1, 2]


def test_id_numbers_and_names_are_stored_uncompressed_and_read_back_as_text(tmp_path):
    """The writer leaves only the identity text columns uncompressed (writer._UNCOMPRESSED); the
    values still read back as the same text, and the other columns stay LZ4."""
    out = tmp_path / "out.parquet"
    ids = ["11010819600210108X", "310115195410073647"]
    w = TableWriter(out)
    w.write(pa.table({"A.2.8": ids, "A.2.1": ["韩云", "余英"], "region": ["110108", "310115"],
                      "level": pa.array([1, 2], pa.int8())}))
    w.finish_empty(pa.schema([]))
    w.commit()
    meta = pq.ParquetFile(out).metadata.row_group(0)
    codecs = {meta.column(i).path_in_schema: meta.column(i).compression for i in range(meta.num_columns)}
    assert codecs == {"A.2.8": "UNCOMPRESSED", "A.2.1": "UNCOMPRESSED", "region": "LZ4", "level": "LZ4"}
    table = pq.read_table(out)
    assert table.schema.field("A.2.8").type == pa.string()
    assert table.column("A.2.8").to_pylist() == ids
    assert table.column("A.2.1").to_pylist() == ["韩云", "余英"]


def test_problem_namer_does_not_confuse_equal_cells_of_other_types():
    """1 == True == 1.0 in Python: only texts and integers share a memo entry."""
    ins = assess.load_instrument("barthel-1965")
    q = ins.items[0]
    code = q.options[1].raw
    cells = [code, True, np.bool_(True), float(code) + 0.5, str(code), code]
    want = [_reference.read_answers(ins, {q.id: c}, k + 2)[1] for k, c in enumerate(cells)]
    cols = {q.id: cells}
    for other in ins.items[1:]:
        cols[other.id] = [other.options[0].raw] * len(cells)
    got = checks.ProblemNamer(ins).name(cols, np.arange(len(cells)) + 2)
    assert [[p.message for p in g] for g in got] == [[p.message for p in w] for w in want]


def test_a_parquet_column_of_nulls_is_rejected_not_a_crash(tmp_path):
    """An all-empty column that pandas writes with Arrow type null cannot be declared required;
    its rows are incomplete and go to REJECTS."""
    from screen_helpers import AS_OF, good_row
    ins = assess.load_instrument("gbt42195-2022")
    t = pa.Table.from_pylist([good_row(ins, n) for n in range(5)])
    q = ins.items[0].id
    t = t.set_column(t.schema.get_field_index(q), q, pa.nulls(5, pa.null()))
    pq.write_table(t, tmp_path / "in.parquet")
    s = run.screen(tmp_path / "in.parquet", "gbt42195-2022", tmp_path / "out.parquet", as_of=AS_OF)
    assert (s.stats.scored, s.stats.rejected) == (0, 5)
    assert pq.read_schema(tmp_path / "out.parquet").field(q).nullable


def test_an_instrument_without_bands_is_screened(tmp_path):
    """Lawton IADL has a total and no bands (no level): its scores are still counted."""
    from _support import random_valid_answers
    from screen_helpers import AS_OF, person_id, write_rows
    ins = assess.load_instrument("lawton-1969")
    assert not ins.bands
    rng = random.Random(3)
    rows = [{"A.2.8": person_id(seq=f"{2 * n + 1:03d}"), "region": "110105",
             **{k: str(v) for k, v in random_valid_answers(ins, rng).items()}} for n in range(20)]
    src = write_rows(tmp_path / "in.csv", rows)
    s = run.screen(src, "lawton-1969", tmp_path / "out.parquet", as_of=AS_OF)
    assert (s.stats.scored, s.stats.rejected) == (20, 0)
    total = pq.read_table(tmp_path / "out.parquet").column(ins.level_score).to_pylist()
    assert sum(s.stats.scores[ins.level_score]) == 20 and s.stats.scores[ins.level_score][total[0]] >= 1


def test_rows_without_a_level_are_counted_apart(tmp_path):
    """Katz under the Hartford convention leaves totals 3 and 5 unlabelled (reference §1.2): such
    rows are scored with no level, and the summary counts them apart, not as level 0."""
    from screen_helpers import AS_OF, person_id, write_rows
    ins = assess.load_instrument("katz-1963").with_settings({"band_set": "hartford"})
    items = [i.id for i in ins.items]
    totals = [6, 5, 4, 3, 2, 5]       # independent activities per row (1 = independent)
    rows = [{"A.2.8": person_id(seq=f"{2 * n + 1:03d}"), "region": "110105",
             **{q: "1" if k < t else "0" for k, q in enumerate(items)}} for n, t in enumerate(totals)]
    src = write_rows(tmp_path / "in.csv", rows)
    s = run.screen(src, "katz-1963", tmp_path / "out.parquet", settings={"band_set": "hartford"}, as_of=AS_OF,
                   report=tmp_path / "report.html")
    st = s.stats
    assert (st.scored, st.no_level) == (6, 3)
    assert st.levels.tolist() == [1, 1, 1]          # totals 6, 4 and 2; not the three unlabelled rows
    assert st.level_rows()[-1][:3] == ("—", "未评定等级（该分数段无等级标签）", 3)
    assert st.to_dict()["no_level"] == 3 and sum(st.regions["110105"]) == 3
    assert "未评定等级" in (tmp_path / "report.html").read_text(encoding="utf-8")
