"""Helpers shared by the test modules: instrument files, answer builders, seeded random answers.

Nothing here knows GB/T 42195 except the GBT id and the ICD-10 pool; answer builders work from
the instrument's own items, options and bands so that they serve every instrument file.
"""
from __future__ import annotations

import random
from pathlib import Path

import yaml

import assess
from assess import model as m

REPO = Path(__file__).resolve().parent.parent
INSTRUMENTS_DIR = REPO / "instruments"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GBT = "gbt42195-2022"
GBT_FILE = INSTRUMENTS_DIR / GBT / "2022.yaml"
SEED_ENV = "ASSESS_TEST_SEED"

# Diagnoses for random answers: inside F00–F03, inside F04–F99, and outside F (G30 is Alzheimer's
# disease in chapter VI, not a mental-disorder code).
ICD10_POOL = ["F03", "F00.0*", "f01.1", "F32", "F99", "E11", "G30", "I10", "I63", "F03.x00"]


def instrument_files() -> list[Path]:
    """Every definition file under instruments/."""
    return sorted(p for p in INSTRUMENTS_DIR.rglob("*") if p.suffix in (".yaml", ".yml"))


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def required_settings(path: Path) -> dict:
    """Values for settings that have no default (the loader refuses to build without them)."""
    data = read_yaml(path)
    return {name: next(iter(s["values"])) for name, s in (data.get("settings") or {}).items()
            if s.get("default") is None and s.get("kind") != "table"}   # a table may be left out


def load_file(path: Path) -> m.Instrument:
    return assess.load_path(path, settings=required_settings(path))


# --------------------------------------------------------------------------- answers

def first_code_by_points(q: m.Question) -> dict[int, object]:
    """points → the first option code (as written) carrying those points."""
    out: dict[int, object] = {}
    for o in q.options:
        out.setdefault(o.points, o.raw)
    return out


def neutral_fields(ins: m.Instrument) -> dict:
    """Rule inputs that fire no rule: no diagnosis, and the first listed option of each code field."""
    return {f.id: ([] if f.type == "icd10_list" else f.options[0].raw) for f in ins.fields if f.type != "text"}


def max_answers(ins: m.Instrument) -> dict:
    answers = {i.id: first_code_by_points(i)[i.max_points] for i in ins.items}
    answers.update(neutral_fields(ins))
    return drop_skipped(ins, answers)


def drop_skipped(ins: m.Instrument, answers: dict) -> dict:
    """The answers without those the instrument's own rule skips (e.g. MZ/T B.3.2–B.3.4 when
    B.3.1 = 3 昏迷): a form leaves them blank, and an answer there is an inconsistency."""
    from assess import _reference
    given = {q: ins.question(q).option(_reference.code_key(v)) for q, v in answers.items()
             if ins.question(q) is not None and ins.question(q).options}
    given = {q: o for q, o in given.items() if o is not None}
    return {q: v for q, v in answers.items()
            if not (isinstance(ins.question(q), m.Item) and ins.question(q).skip_when is not None
                    and _reference.holds(ins.question(q).skip_when, given))}


def contributing_items(ins: m.Instrument, score_id: str) -> list[m.Item]:
    """The items whose points add up to a domain or derived score (a plain sum; KeyError for a
    score computed otherwise, e.g. MZ/T 039's grades and combination table)."""
    items = {i.id: i for i in ins.items}
    if score_id in items:
        return [items[score_id]]
    for d in ins.domains:
        if d.id == score_id:
            return [items[i] for i in d.items]
    for s in ins.scores:
        if s.id == score_id and s.kind == "sum":
            return [it for part in s.sum for it in contributing_items(ins, part)]
    raise KeyError(score_id)


def is_plain_sum(ins: m.Instrument, score_id: str) -> bool:
    try:
        contributing_items(ins, score_id)
    except KeyError:
        return False
    return True


def score_range(ins: m.Instrument, score_id: str) -> tuple[int, int]:
    reach = reachable_values(ins)[score_id]
    return min(reach), max(reach)


def reachable_values(ins: m.Instrument) -> dict:
    from assess.instrument import reachable_values as values
    return values(ins)


def reachable_totals(ins: m.Instrument, score_id: str | None = None) -> list[int]:
    """Every value the level score (or ``score_id``) can take: subset sums over the contributing
    items' points for a plain sum, the engine's own reachable set otherwise."""
    score_id = score_id or ins.level_score
    if not is_plain_sum(ins, score_id):
        return sorted(reachable_values(ins)[score_id])
    reach = {0}
    kept = max_answers(ins)   # as answers_for_total: items the base answers leave skipped add nothing
    for it in contributing_items(ins, score_id):
        if it.id in kept:
            reach = {t + o.points for t in reach for o in it.options}
    return sorted(reach)


def answers_for_total(ins: m.Instrument, target: int, rng: random.Random | None = None,
                      score_id: str | None = None) -> dict | None:
    """Answers whose level score (or ``score_id``, a plain sum) is exactly ``target``, or None when
    no answer set reaches it.

    Subset-sum over the contributing items' point values, so it works for any option points
    (0/5/10 series, items with gaps). With ``rng`` the way the total is made up is random.
    """
    answers = max_answers(ins)   # without the items its own skips leave out, which stay out of the sum
    items = [it for it in contributing_items(ins, score_id or ins.level_score) if it.id in answers]
    reach = [{0}]
    for it in items:
        pts = {o.points for o in it.options}
        reach.append({t + p for t in reach[-1] for p in pts})
    if target not in reach[-1]:
        return None
    remaining = target
    for k in range(len(items) - 1, -1, -1):
        it = items[k]
        by_points = first_code_by_points(it)
        choices = sorted(by_points, reverse=True)
        if rng is not None:
            rng.shuffle(choices)
        p = next(p for p in choices if remaining - p in reach[k])
        answers[it.id] = by_points[p]
        remaining -= p
    return answers


def random_answers(ins: m.Instrument, rng: random.Random, *, events_max: int = 3,
                   diagnoses: bool = True) -> dict:
    """Random valid-looking answers: any option of each item and field, 0–2 diagnoses.

    May be inconsistent (e.g. coma with an awake consciousness code); callers that need a valid
    set use :func:`random_valid_answers`.
    """
    out = {i.id: rng.choice(i.options).raw for i in ins.items}
    for f in ins.fields:
        if f.type == "text":   # stored, never scored: left blank
            continue
        if f.type == "icd10_list":
            out[f.id] = rng.sample(ICD10_POOL, rng.randint(0, 2)) if diagnoses else []
        else:
            opts = [o for o in f.options if o.value is None or o.value <= events_max]
            out[f.id] = rng.choice(opts).raw
    return out


def random_valid_answers(ins: m.Instrument, rng: random.Random, **kw) -> dict:
    for _ in range(200):
        answers = random_answers(ins, rng, **kw)
        try:
            assess.score_one(ins, answers)
        except assess.AnswerError:
            continue
        return answers
    raise AssertionError("could not draw a consistent answer set in 200 tries")
