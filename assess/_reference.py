"""The reference scorer: plain Python, one assessment at a time, in the order of the standard.

It is written to be read beside an instrument's report clauses (for GB/T 42195: C.1 domain
scores → C.2 total → C.3 initial level → C.4 rules → C.5 final level), and it is the oracle the
compiled kernel is tested against. Nothing here knows any particular instrument: every number and
rule comes from the definition file.

Answer states (shared/reference/data-hygiene.md §4): a question is *answered* with an allowed
code, *missing* (no value), or carries a value that is *not allowed*. A blank is never 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import icd10
from . import model as m
from .errors import Code, Problem, format_allowed, problem

# Row status, most severe first when several apply: not allowed > inconsistent > incomplete.
OK, NOT_ALLOWED, INCOMPLETE, INCONSISTENT = 0, 1, 2, 3
STATUS_NAMES = ("ok", "not_allowed", "incomplete", "inconsistent")
NULL_SCORE = np.iinfo(np.int32).min   # "no score" in raw batch output; never a real sum


@dataclass
class FiredRule:
    rule: m.Rule
    reason: str


@dataclass
class Evaluation:
    """Everything the reference computes for one assessment."""

    instrument: m.Instrument
    answers: dict = field(default_factory=dict)        # question id → Option, or list of ICD-10 codes
    item_points: dict = field(default_factory=dict)    # item id → points, None when not answered
    domains: dict = field(default_factory=dict)        # domain id → score or None
    scores: dict = field(default_factory=dict)         # derived score id → value or None
    level_initial: int | None = None
    level: int | None = None
    fired: list = field(default_factory=list)          # FiredRule, in rule order
    categories: dict = field(default_factory=dict)     # category id → value, None when none applies
    level_reason: m.Text | None = None                 # why an ok total has no level (unclassified span)
    skipped: list = field(default_factory=list)        # item ids skipped by the instrument's rule
    problems: list = field(default_factory=list)       # Problem
    status: int = OK
    error_field: str | None = None
    trace: list = field(default_factory=list)

    @property
    def total(self):
        return self.scores.get(self.instrument.level_score, self.domains.get(self.instrument.level_score))


# --------------------------------------------------------------------------- answers

def is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def code_key(value) -> str | None:
    """Canonical key of an answer code: 4, "4", 4.0 and np.int8(4) all give "4"; None if malformed."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else None
    if hasattr(value, "__index__"):
        return str(int(value))
    return None


def _where(ins: m.Instrument, row: int | None) -> str:
    return f"{ins.id} v{ins.version}" + (f", row {row}" if row is not None else "")


def read_answers(ins: m.Instrument, answers, row: int | None = None) -> tuple[dict, list, list]:
    """Normalise raw answers. Returns (answers by id, problems, ids of missing required questions)."""
    where = _where(ins, row)
    known = ins._questions
    problems: list[Problem] = []
    for key in answers:
        if key not in known:
            problems.append(problem(Code.RESP_001, where=where, item=key, allowed=format_allowed(known, 6)))
    out: dict = {}
    missing: list[str] = []
    for q in (*ins.items, *ins.fields):
        read_answer(ins, q, answers.get(q.id), where, out, problems, missing)
    return out, problems, missing


def read_answer(ins: m.Instrument, q, raw, where: str, out: dict, problems: list, missing: list) -> None:
    """Read one question's raw answer into ``out``, or name its problem, or note it missing."""
    if isinstance(q, m.Field) and q.type == "text":
        # Stored as given, never scored nor read by a rule (e.g. the PHQ-9 difficulty question).
        if not is_missing(raw):
            out[q.id] = raw.strip() if isinstance(raw, str) else raw
        return
    if isinstance(q, m.Field) and q.type == "icd10_list":
        codes = _read_icd10(q, raw, where, problems)
        if codes is None:
            if q.required:
                missing.append(q.id)
        else:
            out[q.id] = codes
        return
    if is_missing(raw):
        if q.required:
            missing.append(q.id)
        return
    key = code_key(raw)
    opt = q.option(key) if key is not None else None
    if opt is None:
        allowed = q.allowed_text
        # A code of another scale of the same items (e.g. Collin 0–20 in a Barthel 0–100 file):
        # still not allowed, and the message names the scale the file is probably on.
        other = next((o for o in ins.other_scales if key in o.keys), None)
        if other is not None:
            allowed += f". {other.message.zh}" + ("" if other.instrument in other.message.zh else f"（{other.instrument}）")
        problems.append(problem(Code.RESP_002, where=where, item=q.id, label=q.label.zh, value=raw,
                                allowed=allowed))
    else:
        out[q.id] = opt


def _read_icd10(q: m.Field, raw, where: str, problems: list) -> list | None:
    if is_missing(raw):
        return None if q.required else []
    if isinstance(raw, str):       # a table cell: codes between separators
        codes = icd10.split(raw)
    elif isinstance(raw, (list, tuple)):   # a list from an API caller: surrounding spaces forgiven
        codes = [c.strip() if isinstance(c, str) else c for c in raw]
    else:
        codes = None
    bad = [c for c in codes or [] if not isinstance(c, str) or icd10.category(c) is None]
    if codes is None or bad:
        problems.append(problem(Code.RESP_005, where=where, item=q.id, label=q.label.zh,
                                value=bad[0] if bad else raw, expected=icd10.EXPECTED))
        return []
    return [c.upper() for c in codes]


# --------------------------------------------------------------------------- conditions

def holds(cond: m.Condition, answers: dict, values: dict | None = None) -> str | None:
    """Why a condition holds on the answers given (a short reason), or None when it does not.

    A condition about a question that has no valid answer does not hold, nor one about a score
    (``values``: domain and derived scores) that is null.
    """
    if isinstance(cond, m.AnyOf):
        for c in cond.conditions:
            reason = holds(c, answers, values)
            if reason:
                return reason
        return None
    if isinstance(cond, m.AllOf):
        reasons = [holds(c, answers, values) for c in cond.conditions]
        return "，".join(reasons) if all(reasons) else None
    if isinstance(cond, m.CountBetween):
        reasons = [r for r in (holds(c, answers, values) for c in cond.conditions) if r]
        if cond.lo <= len(reasons) <= cond.hi:
            return f"{len(reasons)} 项成立" + (f"（{'，'.join(reasons)}）" if reasons else "")
        return None
    if isinstance(cond, m.CodeIn):
        opt = answers.get(cond.field)
        return f"{cond.field}={opt.raw}（{opt.label.zh}）" if opt is not None and opt.key in cond.keys else None
    if isinstance(cond, m.ValueAtLeast):
        opt = answers.get(cond.field)
        return f"{cond.field}={opt.value} ≥ {cond.at_least}" if opt is not None and opt.value >= cond.at_least else None
    if isinstance(cond, m.ValueAtMost):
        opt = answers.get(cond.field)
        return f"{cond.field}={opt.value} ≤ {cond.at_most}" if opt is not None and opt.value <= cond.at_most else None
    if isinstance(cond, m.ScoreBetween):
        v = (values or {}).get(cond.score)
        return f"{cond.score}={v}" if v is not None and cond.lo <= v <= cond.hi else None
    if isinstance(cond, m.SumAtLeast):
        parts = [(f, answers[f].value) for f in cond.fields if f in answers]
        total = sum(v for _, v in parts)
        shown = " + ".join(f"{f}={v}" for f, v in parts)
        return f"{shown} = {total} ≥ {cond.at_least}" if total >= cond.at_least else None
    if isinstance(cond, m.Never):
        return None
    if isinstance(cond, m.Icd10In):
        for code in answers.get(cond.field, ()):
            rng = icd10.in_ranges(icd10.category(code), cond.ranges)
            if rng:
                return f"{cond.field} 含 {code}（{rng[0]}–{rng[1]}）"
        return None
    raise TypeError(f"unknown condition {cond!r}")


# --------------------------------------------------------------------------- scoring

def evaluate(ins: m.Instrument, answers, row: int | None = None) -> Evaluation:
    """Score one assessment, clause by clause, recording a readable trace."""
    ev = Evaluation(ins)
    ev.answers, ev.problems, missing = read_answers(ins, answers, row)
    given = ev.answers
    t = ev.trace

    # Skips (data-hygiene §4): an item the instrument's own rule does not ask or count (e.g.
    # Lawton C, D, E for men under the traditional rule) counts 0 and is not required. The rule
    # reads fields only, and holds only on answers given: a missing trigger skips nothing.
    skipped = set()
    for item in ins.items:
        reason = holds(item.skip_when, given) if item.skip_when is not None else None
        if reason:
            skipped.add(item.id)
            ev.skipped.append(item.id)
            t.append(_step(item.id, f"{item.id} {item.label.zh} 按规则跳过，计0分（{reason}）",
                           f"{item.id} skipped by rule, counts 0 ({reason})"))
    missing = [q for q in missing if q not in skipped]
    # A field required unless a condition holds (e.g. GB/T 42195 A.5.11, which B.3.9 may already
    # decide, reference §5): missing is a gap only while the condition does not hold.
    for f in ins.fields:
        if f.required_unless is not None and is_missing(answers.get(f.id)):
            reason = holds(f.required_unless, given)
            if reason:
                t.append(_step(f.id, f"{f.id} {f.label.zh} 未填写，无须填写（{reason}）",
                               f"{f.id} not given and not needed ({reason})"))
            else:
                missing.append(f.id)
    missing.sort(key=list(ins._questions).index)

    # Item points: an answered item scores its option's points; a skipped item has none.
    for item in ins.items:
        opt = given.get(item.id)
        ev.item_points[item.id] = opt.points if opt is not None and item.id not in skipped else None

    # Domain scores (GB/T 42195 C.1): the sum of the domain's item points, when all are answered
    # (skipped items add 0).
    for d in ins.domains:
        pts = [ev.item_points[i] for i in d.items if i not in skipped]
        ev.domains[d.id] = sum(pts) if None not in pts else None
        shown = " + ".join("?" if p is None else str(p) for p in pts) or "0"
        t.append(_step(d.id, f"{d.label.zh} = {shown} = {_show(ev.domains[d.id])}",
                       f"{d.label.en or d.id} = {_show(ev.domains[d.id])}"))

    # Derived scores (GB/T 42195 C.2 total; MZ/T 039 domain grades and combination): computed in
    # definition order from items, domains and earlier scores.
    values = {**ev.item_points, **{i: 0 for i in skipped}, **ev.domains}
    for s in ins.scores:
        values[s.id] = ev.scores[s.id] = _derived(s, values, given, t)

    # Initial level (C.3): the band that holds the level score. A band set may declare totals it
    # leaves unlabelled (e.g. Katz Hartford 3 and 5): no level, with the reason; the status stays ok.
    total = values.get(ins.level_score)
    if total is None:
        ev.level_reason = _null_reason(ins, ins.level_score, values)
    if total is not None:
        band = next((b for b in ins.bands if b.min <= total <= b.max), None)
        if band is not None:
            ev.level_initial = band.level
            t.append(_step(ins.levels_clause or "levels",
                           f"初步等级：{ins.level_score} {total} 在 {band.min}–{band.max} 分 → {band.level} {band.label.zh}",
                           f"initial level: {total} in {band.min}–{band.max} → {band.level} {band.label.en}"))
        else:
            span = ins.unclassified_span(total)
            ev.level_reason = span.reason
            t.append(_step(ins.levels_clause or "levels",
                           f"初步等级：{ins.level_score} {total} 在 {span.min}–{span.max} 分 → 本分级方案不分级（{span.reason.zh}）",
                           f"initial level: {total} in {span.min}–{span.max} → unclassified ({span.reason.en or span.reason.zh})"))

    # Adjustment rules (C.4): each rule that holds on the answers given is reported.
    for rule in ins.rules:
        reason = holds(rule.when, given, values)
        if reason:
            ev.fired.append(FiredRule(rule, reason))
        t.append(_step(rule.clause, f"{rule.id} {'成立' if reason else '不成立'}：{rule.label.zh}"
                       + (f"（{reason}）" if reason else ""),
                       f"{rule.id} {'holds' if reason else 'does not hold'}: {rule.label.en}"
                       + (f" ({reason})" if reason else "")))

    # Consistency between answers (e.g. A.5.11 coma vs B.3.9 consciousness).
    inconsistent = []
    for c in ins.constraints:
        if holds(c.when, given, values):
            inconsistent.append(c)
            ev.problems.append(problem(Code.RESP_004, where=_where(ins, row), item=_first_field(c.when),
                                       detail=c.message.zh))

    # Status: not allowed > inconsistent > incomplete > ok; only an ok assessment gets a level.
    not_allowed = [p for p in ev.problems if p.code in (Code.RESP_002, Code.RESP_005)]
    if not_allowed:
        ev.status, ev.error_field = NOT_ALLOWED, _first_in_order(ins, [p.item for p in not_allowed])
    elif inconsistent:
        ev.status, ev.error_field = INCONSISTENT, _first_field(inconsistent[0].when)
    elif missing:
        ev.status, ev.error_field = INCOMPLETE, _first_in_order(ins, missing)
    # Every missing answer is listed, whatever else is wrong, so one round of corrections suffices.
    for qid in missing:
        q = ins.question(qid)
        ev.problems.append(problem(Code.RESP_003, where=_where(ins, row), item=qid, label=q.label.zh,
                                   allowed=q.allowed_text if q.options else icd10.EXPECTED))
    ev.categories = {c.id: None for c in ins.categories}
    if ev.status != OK:
        ev.level_initial = None
        ev.level_reason = None
        t.append(_step("status", f"未评定等级：{_STATUS_ZH[ev.status]}", f"no level: {STATUS_NAMES[ev.status]}"))
        return ev

    # Final level (C.5): a rule that sets the level decides it; otherwise the raises are combined
    # (max: one raise in total; sum: each rule adds) and capped at the highest level. A total the
    # band set leaves unclassified gets no final level either.
    setter = next((f for f in ev.fired if f.rule.set_level is not None), None)
    if ev.level_initial is None:
        pass
    elif setter is not None:
        ev.level = setter.rule.set_level
        how = f"{setter.rule.id} 直接评定为 {ev.level}"
    else:
        raises = [f.rule.raise_by for f in ev.fired if f.rule.raise_by]
        up = (max(raises) if ins.raise_combination == "max" else sum(raises)) if raises else 0
        ev.level = min(ins.max_level, ev.level_initial + up)
        how = f"初步等级 {ev.level_initial} + 上调 {up}" + ("（封顶）" if ev.level_initial + up > ins.max_level else "")
    if ev.level is not None:
        t.append(_step("final", f"最终等级：{how} → {ev.level} {ins.band(ev.level).label.zh}",
                       f"final level {ev.level} {ins.band(ev.level).label.en}"))

    # Categories reported beside the level (e.g. Katz letter grades): the first case that holds.
    for cat in ins.categories:
        for value, label, cond in cat.cases:
            reason = holds(cond, given, values)
            if reason:
                ev.categories[cat.id] = value
                t.append(_step(cat.clause, f"{cat.label.zh}：{label.zh}（{reason}）", f"{cat.label.en or cat.id}: {label.en or label.zh}"))
                break
        else:
            if cat.otherwise is not None:
                ev.categories[cat.id] = cat.otherwise[0]
            shown = cat.otherwise[1].zh if cat.otherwise else "无（not_classifiable）"
            t.append(_step(cat.clause, f"{cat.label.zh}：无匹配情形 → {shown}", f"{cat.label.en or cat.id}: no case holds"))
    return ev


def _null_reason(ins: m.Instrument, score_id: str, values: dict) -> m.Text | None:
    """Why a derived score is null on answers that are all there: a case list that gives no value
    (GB/T 26341, NBA for children) or a combination the table leaves undecided (MZ/T 039 reject),
    found by following the null parts down."""
    s = next((x for x in ins.scores if x.id == score_id), None)
    if s is None:
        return None
    if s.kind == "cases":
        return s.none_reason
    parts = [values.get(p) for p in s.sum]
    if s.kind == "matrix" and None not in parts:
        return s.cell_reasons.get(s.cell_index(parts))
    return next((r for p, v in zip(s.sum, parts) if v is None for r in [_null_reason(ins, p, values)] if r), None)


def _derived(s: m.Score, values: dict, given: dict, t: list):
    """One derived score and its trace step; None when a part is null (or no case holds)."""
    parts = [values[p] if p in values else (given[p].value if p in given else None) for p in s.sum]
    named = "，".join(f"{p}={_show(v)}" for p, v in zip(s.sum, parts))
    labelled = (lambda v: f"{v} {s.value_labels[v].zh}" if v in s.value_labels else _show(v))
    if s.kind == "cases":
        value, why = s.otherwise, "无匹配情形"
        for v, cond in s.cases:
            reason = holds(cond, given, values)
            if reason:
                value, why = v, reason
                break
        zh = f"{s.label.zh}：{why} → {labelled(value)}"
    elif None in parts:
        value = None
        zh = f"{s.label.zh}：{named} → 无"
    elif s.kind == "weighted":
        value = sum(w * x for w, x in zip(s.weights, parts))
        zh = f"{s.label.zh} = {' + '.join(f'{w}×{x}' for w, x in zip(s.weights, parts))} = {value}"
    elif s.kind == "sum":
        value = sum(parts)
        zh = f"{s.label.zh} = {' + '.join(map(_show, parts))} = {value}"
    elif s.kind in ("max", "min"):
        value = max(parts) if s.kind == "max" else min(parts)
        zh = f"{s.label.zh} = {'较大' if s.kind == 'max' else '较小'}者（{named}）= {value}"
    elif s.kind == "bands":
        (x,) = parts
        hit = next(((lo, hi, v) for lo, hi, v in s.bands if lo <= x <= hi), None)
        value = None if hit is None else hit[2]
        zh = f"{s.label.zh}：{s.sum[0]}={x}" + (f" 在 {hit[0]}–{hit[1]} → {labelled(value)}" if hit else " → 无")
    else:  # matrix
        index = s.cell_index(parts)
        value = None if index is None else s.cells[index]
        how = (s.cell_reasons.get(index) or s.cell_traces.get(index)) if index is not None else None
        zh = f"{s.label.zh}：{how.zh if how else named} → {labelled(value)}"
    t.append(_step(s.clause or s.id, zh, f"{s.label.en or s.id} = {_show(value)}"))
    return value


_STATUS_ZH = {NOT_ALLOWED: "有不允许的答案代码", INCOMPLETE: "有必答项缺失", INCONSISTENT: "答案之间相互矛盾"}


def _step(clause: str, zh: str, en: str) -> dict:
    return {"clause": clause, "zh": zh, "en": en}


def _show(v) -> str:
    return "?" if v is None else str(v)


def _first_field(cond: m.Condition) -> str:
    """The first question a condition reads (reported as the error field of a constraint)."""
    from .instrument import iter_conditions
    for atom in iter_conditions(cond):
        if isinstance(atom, m.SumAtLeast):
            return atom.fields[0]
        if not isinstance(atom, (m.ScoreBetween, m.Never)):
            return atom.field
    raise ValueError("a constraint must read at least one item or field")


def _first_in_order(ins: m.Instrument, ids: list) -> str:
    order = {q: i for i, q in enumerate(ins._questions)}
    return min(ids, key=lambda q: order.get(q, len(order)))


# --------------------------------------------------------------------------- batch

def score_columns(ins: m.Instrument, columns, n: int) -> dict:
    """Score a batch row by row; the raw arrays the compiled kernel must reproduce exactly.

    ``columns`` maps question id → a sequence of n raw values; absent questions are missing.
    """
    q_index = {q: i for i, q in enumerate(ins._questions)}
    out = {
        "domains": np.full((n, len(ins.domains)), NULL_SCORE, np.int32),
        "scores": np.full((n, len(ins.scores)), NULL_SCORE, np.int32),
        "level_initial": np.full(n, -1, np.int8),
        "level": np.full(n, -1, np.int8),
        "rules": np.zeros(n, np.uint32),
        "status": np.zeros(n, np.uint8),
        "error_field": np.full(n, -1, np.int16),
        "categories": np.full((n, len(ins.categories)), -1, np.int8),
    }
    names = [q for q in q_index if q in columns]
    rule_bit = {r.id: 1 << i for i, r in enumerate(ins.rules)}
    for row in range(n):
        ev = evaluate(ins, {q: columns[q][row] for q in names})
        for j, d in enumerate(ins.domains):
            if ev.domains[d.id] is not None:
                out["domains"][row, j] = ev.domains[d.id]
        for j, s in enumerate(ins.scores):
            if ev.scores[s.id] is not None:
                out["scores"][row, j] = ev.scores[s.id]
        out["level_initial"][row] = -1 if ev.level_initial is None else ev.level_initial
        out["level"][row] = -1 if ev.level is None else ev.level
        out["rules"][row] = sum(rule_bit[f.rule.id] for f in ev.fired)
        out["status"][row] = ev.status
        out["error_field"][row] = -1 if ev.error_field is None else q_index[ev.error_field]
        for j, c in enumerate(ins.categories):
            if ev.categories.get(c.id) is not None:
                out["categories"][row, j] = ev.categories[c.id]
    return out
