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
