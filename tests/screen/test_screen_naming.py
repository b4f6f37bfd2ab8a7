"""Problems of rows the scorer did not pass are named without scoring (checks.answer_problems):
the same problems, in the same order and words, as the reference scorer's full evaluation, for
every instrument and combination of settings on random rows with bad, missing and skipped cells."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_kernel_parity import INSTRUMENTS, _setting_combinations, random_columns

from assess import _reference, load_instrument
from assess import model as m
from assess.screen import checks


def _cases():
    for iid in INSTRUMENTS:
        for settings in _setting_combinations(load_instrument(iid)):
            yield pytest.param(iid, settings, id=f"{iid}-{'-'.join(map(str, settings.values())) or 'default'}")


@pytest.mark.parametrize("iid, settings", list(_cases()))
def test_named_as_the_reference_names_them(iid, settings, seed):
    ins = load_instrument(iid).with_settings(settings)
    if not checks._answers_only(ins):
        pytest.skip("constraints read scores: such rows are named by the reference itself")
    n = 120
    cols = random_columns(ins, n, np.random.default_rng(seed), bad_share=0.1, missing_share=0.1)
    # As a file gives them: text cells, and the same texts in many rows (ProblemNamer's memo).
    cols = {q: [v if v is None or isinstance(v, list) else str(v) for v in vs] for q, vs in cols.items()}
    cols = {q: [";".join(v) if isinstance(v, list) else v for v in vs] for q, vs in cols.items()}
    batch = checks.ProblemNamer(ins).name(cols, np.arange(n) + 2)
    compared = 0
    for r in range(n):
        answers = {q: v[r] for q, v in cols.items()}
        want = _reference.evaluate(ins, answers, row=r + 2)
        if want.status == _reference.OK:
            continue
        assert checks.answer_problems(ins, answers, r + 2) == want.problems, answers
        assert batch[r] == want.problems, answers
        compared += 1
    assert compared


def test_constraint_on_a_score_is_left_to_the_reference(ins):
    bound = m.Constraint("c", m.AnyOf((m.ScoreBetween("total", 0, 5),)), ins.constraints[0].message)
    assert checks._answers_only(ins)
    assert not checks._answers_only(dataclasses.replace(ins, constraints=(bound,)))


def test_rows_alike_are_named_with_their_own_lines(ins):
    """ProblemNamer names each kind of row once and places it at each row's line; cells that are
    equal in Python but read differently (9, 9.0, True and 1) are not taken for one another."""
    ok = {q.id: str(q.options[0].raw) for q in ins.items if q.options}
    cells = [9, 9.0, "9", True, 1, 9, 9.0, True, "x", "x", None, None]
    rows = [{**ok, "B.1.1": c, "B.1.2": "7" if k % 3 == 0 else ok["B.1.2"]} for k, c in enumerate(cells)]
    rows += rows                       # every row twice more, at other lines
    cols = {q: [row.get(q) for row in rows] for q in rows[0]}
    lines = np.arange(len(rows)) * 7 + 2
    batch = checks.ProblemNamer(ins).name(cols, lines)
    named = 0
    for r, line in enumerate(lines):
        want = _reference.evaluate(ins, rows[r], row=int(line))
        assert batch[r] == (want.problems if want.status != _reference.OK else []), rows[r]
        assert all(f"row {line}" in p.message for p in batch[r]), batch[r]
        named += bool(batch[r])
    assert named >= len(rows) - 4
