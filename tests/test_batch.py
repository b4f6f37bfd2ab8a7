"""assess.score on tables: pandas DataFrame, pyarrow Table and RecordBatch.

The batch path must agree with score_one row by row (including rows that are incomplete, carry
codes that are not allowed or contradict each other), keep length and order, and never stop on a
bad row (STYLE §2.7).
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

import assess
from assess.errors import Code

from _support import max_answers, random_answers

KINDS = ["pandas", "arrow", "batch"]


def _noisy_rows(ins, rng, n):
    """Random rows with missing answers, codes not allowed, contradictions and diagnosis cells."""
    rows = []
    for _ in range(n):
        row = random_answers(ins, rng)
        for i in ins.items:
            u = rng.random()
            if u < 0.03:
                row[i.id] = None
            elif u < 0.05:
                row[i.id] = 7 if i.id != "B.3.9" else "9z"
        row["B.3.9"] = str(row["B.3.9"])                 # one type per column: "2", "0b", …
        dx = row["A.4.1"]
        row["A.4.1"] = ";".join(dx) if dx else None
        if rng.random() < 0.05:
            row["A.4.1"] = "F3X"                          # malformed diagnosis
        if rng.random() < 0.03:
            row["A.5.11"] = None
        rows.append(row)
    return rows


def _table(rows, kind):
    df = pd.DataFrame(rows)
    if kind == "pandas":
        return df
    t = pa.Table.from_pandas(df, preserve_index=False)
    return t if kind == "arrow" else t.combine_chunks().to_batches()[0]


def _records(out) -> list[dict]:
    if isinstance(out, pd.DataFrame):
        return [{k: (None if not isinstance(v, (list, tuple)) and pd.isna(v) else v) for k, v in rec.items()}
                for rec in out.to_dict("records")]
    if isinstance(out, pa.RecordBatch):
        out = pa.Table.from_batches([out])
    return out.to_pylist()


def _expected(ins, row) -> dict:
    """What one output row must hold, from score_one on the same answers."""
    rule_ids = [r.id for r in ins.rules]
    try:
        r = assess.score_one(ins, row, allow_incomplete=True)
    except assess.AnswerError as exc:
        bad = [p for p in exc.problems if p.code in (Code.RESP_002, Code.RESP_005)]
        conflict = [p for p in exc.problems if p.code is Code.RESP_004]
        status, first = ("not_allowed", bad[0]) if bad else ("inconsistent", conflict[0])
        return {"status": status, "error_field": first.item, "level_initial": None, "level": None}
    out = {**r.domains, **r.scores, "level_initial": r.level_initial, "level": r.level, "status": r.status,
           "error_field": None if r.status == "ok" else r.problems[0].item}
    fired = {x.id for x in r.rules}
    out.update({f"rule_{rid}": rid in fired for rid in rule_ids})
    out["rules"] = sum(1 << k for k, rid in enumerate(rule_ids) if rid in fired)
    return out


def _columns(ins):
    return ([d.id for d in ins.domains] + [s.id for s in ins.scores] + ["level_initial", "level", "rules"]
            + [f"rule_{r.id}" for r in ins.rules] + [c.id for c in ins.categories] + ["status", "error_field"])


def test_category_columns_follow_the_rule_flags():
    """Instruments with categories (Katz letter grades) add one int8 column per category."""
    katz = assess.load_instrument("katz-1963")
    t = pa.table({i.id: pa.array([1, 0], pa.int8()) for i in katz.items})
    out = assess.score(katz, t)
    assert out.schema.names == _columns(katz)
    assert out.column("katz_grade").to_pylist() == [0, 6]          # A, G (reference katz-lawton.md §1.3)
    assert out.column("level").to_pylist() == [0, 2]


@pytest.mark.parametrize("kind", KINDS)
def test_matches_score_one_row_by_row(gbt, rng, kind):
    rows = _noisy_rows(gbt, rng, 300)
    out = assess.score(gbt, _table(rows, kind))
    assert type(out) is type(_table(rows[:1], kind))
    assert list(out.columns if kind == "pandas" else out.schema.names) == _columns(gbt)
    got = _records(out)
    assert len(got) == len(rows)
    statuses = set()
    for n, (row, rec) in enumerate(zip(rows, got)):
        want = _expected(gbt, row)
        statuses.add(want["status"])
        assert {k: rec[k] for k in want} == want, f"row {n}: {row}"
    assert statuses == {"ok", "incomplete", "not_allowed", "inconsistent"}   # the sample exercises every path


@pytest.mark.parametrize("kind", KINDS)
def test_nulls_for_incomplete_rows(gbt, kind):
    full = max_answers(gbt)
    # A.5.11 is needed only when B.3.9 = 0 without a sub-code (reference §5)
    rows = [dict(full), {**full, "B.1.1": None}, {**full, "A.5.11": None, "B.3.9": 0}, dict(full)]
    for row in rows:
        row["A.4.1"] = None
    got = _records(assess.score(gbt, _table(rows, kind)))
    assert [r["status"] for r in got] == ["ok", "incomplete", "incomplete", "ok"]
    assert [r["error_field"] for r in got] == [None, "B.1.1", "A.5.11", None]
    assert [r["total"] for r in got] == [90, None, 88, 90]
    assert [r["B.1"] for r in got] == [32, None, 32, 32]
    assert [r["B.2"] for r in got] == [15, 15, 15, 15]
    assert [r["level"] for r in got] == [0, None, None, 0]
    assert [r["level_initial"] for r in got] == [0, None, None, 0]


def test_output_types(gbt):
    full = max_answers(gbt)
    out = assess.score(gbt, pa.Table.from_pylist([{**full, "A.4.1": "F03"}]))
    schema = out.schema
    assert schema.field("total").type == pa.int32()
    assert schema.field("level").type == pa.int8()
    assert schema.field("rule_R2").type == pa.bool_()
    assert pa.types.is_dictionary(schema.field("status").type)
    assert out.to_pylist()[0]["level"] == 1 and out.to_pylist()[0]["rule_R2"] is True
    df = assess.score(gbt, pd.DataFrame([{**full, "A.4.1": "F03"}]))
    assert str(df["total"].dtype) == "Int32" and str(df["level"].dtype) == "Int8"


def test_keeps_order_and_ignores_extra_columns(gbt, rng):
    rows = _noisy_rows(gbt, rng, 60)
    df = pd.DataFrame(rows)
    df.insert(0, "person_id", [f"p{i:03d}" for i in range(len(df))])   # ids travel beside the answers
    out = assess.score(gbt, df)
    assert len(out) == len(df) and "person_id" not in out.columns
    reversed_out = assess.score(gbt, df.iloc[::-1])
    pd.testing.assert_frame_equal(reversed_out.iloc[::-1].reset_index(drop=True), out)


def test_batch_split_does_not_change_results(gbt, rng):
    """STYLE §13: results ignore how a batch is split."""
    t = _table(_noisy_rows(gbt, rng, 120), "arrow")
    whole = assess.score(gbt, t).to_pylist()
    parts = []
    for start, stop in ((0, 1), (1, 50), (50, 120)):
        parts += assess.score(gbt, t.slice(start, stop - start)).to_pylist()
    assert parts == whole


def test_chunked_table(gbt, rng):
    rows = _noisy_rows(gbt, rng, 40)
    t = pa.Table.from_batches(_table(rows, "arrow").to_batches(max_chunksize=15))
    assert t.column("B.1.1").num_chunks == 3
    assert assess.score(gbt, t).to_pylist() == assess.score(gbt, t.combine_chunks()).to_pylist()


def test_list_column_of_diagnoses(gbt):
    full = max_answers(gbt)
    items = {k: v for k, v in full.items() if k != "A.4.1"}
    t = pa.table({**{k: [v] * 3 for k, v in items.items()},
                  "A.4.1": pa.array([["F03"], [], None], pa.list_(pa.string()))})
    got = assess.score(gbt, t).to_pylist()
    assert [r["rule_R2"] for r in got] == [True, False, False]
    assert [r["level"] for r in got] == [1, 0, 0]


def test_settings(gbt):
    full = max_answers(gbt)
    row = {**full, "B.1.1": 0, "B.1.2": 0, "B.1.3": 0, "B.1.4": 0, "B.1.5": 0, "A.4.1": "F03", "A.2.14.1": 2}
    t = pa.Table.from_pylist([row])
    assert assess.score(gbt, t).column("level").to_pylist() == [2]           # reference §10, single
    assert assess.score(gbt, t, settings={"raise_stacking": "additive"}).column("level").to_pylist() == [3]
    assert assess.score("gbt42195-2022", t, settings={"gbt42195-2022.raise_stacking": "additive"}) \
        .column("level").to_pylist() == [3]


def test_missing_column_means_missing_answers(gbt):
    full = max_answers(gbt)
    t = pa.Table.from_pylist([{k: v for k, v in full.items() if k not in ("B.4.5", "A.4.1")}] * 2)
    got = assess.score(gbt, t).to_pylist()
    assert [r["status"] for r in got] == ["incomplete"] * 2
    assert [r["error_field"] for r in got] == ["B.4.5"] * 2
    assert [r["B.4"] for r in got] == [None, None] and [r["B.3"] for r in got] == [28, 28]


def test_rejects_other_inputs(gbt):
    with pytest.raises(TypeError):
        assess.score(gbt, [max_answers(gbt)])


def test_empty_record_batch_gives_record_batch(gbt):
    full = max_answers(gbt)
    empty = pa.Table.from_pylist([{**full, "A.4.1": "F03"}]).slice(0, 0).combine_chunks()
    rb = pa.RecordBatch.from_pylist([], schema=empty.schema)
    out = assess.score(gbt, rb)
    assert isinstance(out, pa.RecordBatch) and out.num_rows == 0


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_empty_table(gbt, kind):
    full = max_answers(gbt)
    t = _table([{**full, "A.4.1": "F03"}], kind)
    t = t.iloc[:0] if kind == "pandas" else t.slice(0, 0)
    out = assess.score(gbt, t)
    assert len(out) == 0
    assert list(out.columns if kind == "pandas" else out.schema.names) == _columns(gbt)


def test_dataframe_with_mixed_code_types(gbt):
    full = max_answers(gbt)
    rows = [dict(full), {**full, "A.5.11": 1, "B.3.9": "0b"}]
    out = assess.score(gbt, pd.DataFrame(rows))
    assert _records(out)[1]["rule_R1"] is True
    assert [r["level"] for r in _records(out)] == [assess.score_one(gbt, r).level for r in rows]


@pytest.mark.parametrize("kind", KINDS)
def test_unclassified_totals_are_null_levels_in_clean_batches(kind):
    """A band set that leaves totals unlabelled (Katz hartford: 3 and 5) gives a null level with
    status ok, also when every row is ok and the output skips null masks elsewhere."""
    ins = assess.load_instrument("katz-1963", settings={"band_set": "hartford"})
    rows = [[1] * 6, [1] * 5 + [0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]]
    got = _records(assess.score(ins, _table([dict(zip([i.id for i in ins.items], r)) for r in rows], kind)))
    assert [r["total"] for r in got] == [6, 5, 3, 4]
    assert [r["level"] for r in got] == [0, None, None, 1]
    assert [r["level_initial"] for r in got] == [0, None, None, 1]
    assert [r["status"] for r in got] == ["ok"] * 4


def test_text_field_is_accepted_and_never_scored():
    """PHQ-9's functional-difficulty answer (a text field) neither changes nor blocks the total."""
    rows = [{**{f"q{k}": 1 for k in range(1, 10)}, "difficulty": v} for v in ("非常困难", None, "3")]
    got = _records(assess.score("phq9", _table(rows, "arrow")))
    assert [r["total"] for r in got] == [9, 9, 9]
    assert [r["status"] for r in got] == ["ok"] * 3
