"""Compile an instrument (with its settings resolved) into the flat plan the kernel executes.

The plan is a handful of small numpy arrays: per question a code→option lookup, per option its
points and value, the parts of every score, the band edges, the rule and constraint conditions
as postfix programs over atoms, and the rule effects. Compiled once per instrument and settings.

Layout of the per-row value vector the kernel fills (and the score parts index into):
``[item points (n_items) | domain scores (n_domains) | derived scores (n_scores)]``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import model as m

# Atom kinds (kernels/score.pyx mirrors these numbers). Code and value conditions on one question
# all become OPTION_IN: a truth table by option index, so the kernel reads one byte per cell.
ATOM_OPTION_IN, ATOM_SUM_AT_LEAST, ATOM_FLAG, ATOM_SCORE_BETWEEN, ATOM_NEVER = range(5)
# Postfix opcodes: push atom k; pop n and push their AND / OR.
OP_ATOM, OP_AND, OP_OR, OP_COUNT = 0, 1, 2, 3
# OP_COUNT's argument packs the number of operands and the bounds: n | lo << 20 | hi << 40.
COUNT_SHIFT = 20
# Derived score kinds (assess/derived.py; the kernel mirrors these numbers).
SCORE_KINDS = {"sum": 0, "max": 1, "min": 2, "bands": 3, "matrix": 4, "cases": 5, "weighted": 6}
NULL_SCORE = -(1 << 31)
# Integer option codes must lie in [CODE_LO, CODE_LO + CODE_SPAN): int8 and uint8 columns then
# index the table without a bounds check. Codes are points values in practice (0 … 100).
CODE_LO, CODE_SPAN = -128, 384


class Unsupported(ValueError):
    """A valid definition the kernel's layout cannot hold (a code or a domain sum too large):
    ``assess.score`` has the reference scorer score it instead."""


@dataclass(frozen=True)
class Plan:
    questions: tuple[str, ...]          # items first, then fields, in definition order
    n_items: int
    required: np.ndarray                # uint8 [Q]
    code_lo: int
    code_table: np.ndarray              # int16 [Q, CODE_SPAN]: option index of integer code c at
                                        # [q, c - CODE_LO]; -2 when the code is not allowed
    sum_table: np.ndarray               # int32 [n_items, CODE_SPAN]: (points << 16), or 1 when not allowed
    pack2: np.ndarray                   # int32 [n_items, options + 2]: the same by option index + 2
                                        # (column 0: not allowed, column 1: missing, both 1)
    need_idx: np.ndarray                # uint8 [Q]: the kernel keeps this question's option indexes
    item_domain: np.ndarray             # int64 [n_items] domain of each item
    identity_lo: np.ndarray             # int32 [n_items]: allowed integer codes are exactly lo … hi, each
    identity_hi: np.ndarray             # worth its own value in points (lo > hi when not so)
    index_lo: np.ndarray                # int32 [Q]: integer codes lo … hi are option indexes 0 … hi - lo
    index_hi: np.ndarray                # and no other code is allowed (lo > hi when not so)
    value_is_index: np.ndarray          # uint8 [Q]: each option's value is its index
    item_values: int                    # 1 when a derived score sums items directly
    keys: tuple[tuple[str, ...], ...]   # option keys per question (string columns are mapped with these)
    icd10: tuple[int, ...]              # question indexes of icd10_list fields
    text: tuple[int, ...]               # question indexes of text fields (never read: absent to the kernel)
    score_part_start: np.ndarray        # int64 [D+S+1] parts of domain d / score s in score_parts
    score_parts: np.ndarray             # int64 indexes into the value vector
    level_value: int                    # index of the level score in the value vector
    band_min: np.ndarray                # int32 [B]
    band_max: np.ndarray                # int32 [B]
    band_level: np.ndarray              # int8 [B]
    atom_kind: np.ndarray               # int8 [A]
    atom_q: np.ndarray                  # int64 [A] question (OPTION_IN), flag column (FLAG) or
                                        # value-vector slot (SCORE_BETWEEN)
    atom_option: np.ndarray             # uint8 [A, W]: OPTION_IN truth by option index + 2 (columns 0, 1:
                                        # not allowed, missing: false); W = most options + 2
    atom_bits: np.ndarray               # uint32 [A]: the same as a bit mask (bit i: index i - 2); empty
                                        # when W > 32
    opt_value2: np.ndarray              # int32 [Q, W]: option value by option index + 2 (0 when not given)
    atom_n: np.ndarray                  # int32 [A] threshold (SUM_AT_LEAST) or lower bound (SCORE_BETWEEN)
    atom_hi: np.ndarray                 # int32 [A] upper bound (SCORE_BETWEEN)
    atom_sum_start: np.ndarray          # int64 [A+1] questions summed (SUM_AT_LEAST) in atom_sum_q
    atom_sum_q: np.ndarray              # int64
    flags: tuple                        # (question index, ranges) of each FLAG column, computed in Python
    prog_start: np.ndarray              # int64 [R+C+1] rules then constraints: postfix program slices
    prog_op: np.ndarray                 # int8
    prog_arg: np.ndarray                # int64
    n_rules: int
    rule_raise: np.ndarray              # int32 [R]
    rule_set_level: np.ndarray          # int8 [R] (-1: the rule does not set the level)
    fired_set: np.ndarray               # int8 [1 << R]: level set by the rules of a bit set that hold
                                        # (-1 none); empty when R > RULE_TABLE_MAX
    fired_raise: np.ndarray             # int32 [1 << R]: what they raise the level by (when none sets it)
    raise_sum: int                      # 1: raises add up; 0: the largest one applies
    max_level: int
    constraint_field: np.ndarray        # int64 [C] question reported when a constraint fires
    n_constraints: int
    cat_case_start: np.ndarray          # int64 [K+1] cases of category k (programs after rules and constraints)
    cat_case_value: np.ndarray          # int8 [cases]
    cat_otherwise: np.ndarray           # int8 [K] value when no case holds (-1: none)
    n_domains: int
    n_scores: int
    skip_item: np.ndarray               # int64 [K] question of skip K: an item skipped, or a field not required,
                                        # while program K (after the category cases) holds
    skip_kind: np.ndarray               # uint8 [K] 1: item skip (counts 0); 0: field required unless it holds
    skip_of_q: np.ndarray               # int16 [Q] index into skip_item, -1 when the question has no skip
    score_kind: np.ndarray              # int8 [S] SCORE_KINDS of each derived score
    score_aux_start: np.ndarray         # int64 [S+1] slice of score_aux: bands (lo, hi, value)…; matrix
    score_aux: np.ndarray               # int32         (lo, span) per axis, then the cells (NULL_SCORE: none);
                                        #               weighted (source, index, weight) per part
    score_case_start: np.ndarray        # int64 [S+1] cases of score s (programs after the skips)
    score_case_value: np.ndarray        # int32 [cases]
    score_otherwise: np.ndarray         # int32 [S] value when no case holds (NULL_SCORE: null)


def _int_code(key: str) -> int | None:
    try:
        value = int(key)
    except ValueError:
        return None
    return value if str(value) == key else None


def _identity_range(codes: np.ndarray, item: m.Item) -> tuple[int, int]:
    """(lo, hi) when the item's allowed integer codes are exactly lo … hi, each worth its own value
    in points and no two options sharing a code; (1, 0) otherwise."""
    allowed = np.nonzero(codes >= 0)[0] + CODE_LO
    if not len(allowed) or allowed[-1] - allowed[0] + 1 != len(allowed) or allowed[-1] >= 1 << 15:
        return 1, 0
    for code in allowed:
        if item.options[codes[code - CODE_LO]].points != code:
            return 1, 0
    return int(allowed[0]), int(allowed[-1])


def _index_range(codes: np.ndarray) -> tuple[int, int]:
    """(lo, hi) when the allowed integer codes are exactly lo … hi and are the question's option
    indexes 0 … hi - lo in order (the kernel then reads an index by arithmetic); (1, 0) otherwise."""
    found = np.flatnonzero(codes >= 0)
    if not found.size or found[-1] - found[0] + 1 != found.size or not np.array_equal(codes[found], np.arange(found.size)):
        return 1, 0
    return int(found[0]) + CODE_LO, int(found[-1]) + CODE_LO


RULE_TABLE_MAX = 12   # rules up to which the kernel looks a row's level change up by its rule set


def _rule_effects(set_level: np.ndarray, raise_by: np.ndarray, raise_sum: int) -> tuple[np.ndarray, np.ndarray]:
    """For each set of rules that hold (bit k: rule k), the level the first level-setting rule sets
    (-1 none) and the raise of the rest: their sum, or their largest (raise_combination). Empty
    beyond RULE_TABLE_MAX rules, where the kernel walks them."""
    n = len(raise_by)
    if n > RULE_TABLE_MAX:
        return np.zeros(0, np.int8), np.zeros(0, np.int32)
    setter = np.full(1 << n, -1, np.int8)
    up = np.zeros(1 << n, np.int32)
    for bits in range(1 << n):
        for k in range(n):      # lowest first, as the kernel's row loop walks them
            if not bits >> k & 1:
                continue
            if set_level[k] >= 0:
                if setter[bits] < 0:
                    setter[bits] = set_level[k]
            elif raise_sum:
                up[bits] += raise_by[k]
            elif raise_by[k] > up[bits]:
                up[bits] = raise_by[k]
    return setter, up


@functools.lru_cache(maxsize=32)
def compile_plan(ins: m.Instrument) -> Plan:
    questions = tuple(ins._questions)
    qi = {q: i for i, q in enumerate(questions)}
    qs = [ins.question(q) for q in questions]

    code_table = np.full((len(qs), CODE_SPAN), -2, np.int16)
    for k, q in enumerate(qs):
        for j, o in enumerate(q.options):
            code = _int_code(o.key)
            if code is None:
                continue   # text codes such as "0b" are mapped in Python (assess/_columns.py)
            if not CODE_LO <= code < CODE_LO + CODE_SPAN:
                raise Unsupported(f"{ins.id} {q.id}: integer code {code} outside {CODE_LO}…{CODE_LO + CODE_SPAN - 1}")
            code_table[k, code - CODE_LO] = j

    n_items = len(ins.items)
    # Domain accumulators pack (points << 16) + count of unanswered items into an int32.
    for d in ins.domains:
        members = [i for i in ins.items if i.domain == d.id]
        if sum(max(abs(o.points) for o in i.options) for i in members) >= 1 << 15 or len(members) >= 1 << 16:
            raise Unsupported(f"{ins.id} {d.id}: domain too large for the kernel's packed sums")
    width = max(len(i.options) for i in ins.items) + 2
    pack2 = np.ones((n_items, width), np.int32)
    sum_table = np.ones((n_items, CODE_SPAN), np.int32)
    for k, item in enumerate(ins.items):
        for j, o in enumerate(item.options):
            pack2[k, j + 2] = o.points * 65536
        allowed = code_table[k] >= 0
        sum_table[k, allowed] = pack2[k, code_table[k, allowed] + 2]
    slot = {q.id: i for i, q in enumerate(ins.items)}
    part_start, parts = [0], []
    for k, d in enumerate(ins.domains):
        parts.extend(slot[i] for i in d.items)
        part_start.append(len(parts))
        slot[d.id] = n_items + k
    for k, s in enumerate(ins.scores):
        if s.kind != "weighted":   # weighted parts (which may be fields) are described in score_aux
            parts.extend(slot[p] for p in s.sum)
        part_start.append(len(parts))
        slot[s.id] = n_items + len(ins.domains) + k

    atoms: list[tuple] = []
    flags: list[tuple] = []

    def atom(c) -> int:
        if isinstance(c, (m.CodeIn, m.ValueAtLeast, m.ValueAtMost)):
            options = ins.question(c.field).options
            if isinstance(c, m.CodeIn):
                truth = [o.key in c.keys for o in options]
            elif isinstance(c, m.ValueAtLeast):
                truth = [(o.value or 0) >= c.at_least for o in options]
            else:
                truth = [(o.value or 0) <= c.at_most for o in options]
            atoms.append((ATOM_OPTION_IN, qi[c.field], truth, 0, ()))
        elif isinstance(c, m.ScoreBetween):
            if slot[c.score] < n_items:
                raise ValueError(f"{ins.id}: a score condition must name a domain or derived score, not {c.score}")
            atoms.append((ATOM_SCORE_BETWEEN, slot[c.score], None, c.lo, (), c.hi))
        elif isinstance(c, m.SumAtLeast):
            atoms.append((ATOM_SUM_AT_LEAST, -1, None, c.at_least, tuple(qi[f] for f in c.fields)))
        elif isinstance(c, m.Never):
            atoms.append((ATOM_NEVER, -1, None, 0, ()))
        elif isinstance(c, m.Icd10In):
            flags.append((qi[c.field], c.ranges))
            atoms.append((ATOM_FLAG, len(flags) - 1, None, 0, ()))
        else:
            raise TypeError(c)
        return len(atoms) - 1

    prog_start, ops, args = [0], [], []

    def emit(c) -> None:
        if isinstance(c, m.CountBetween):
            for sub in c.conditions:
                emit(sub)
            ops.append(OP_COUNT)
            args.append(len(c.conditions) | c.lo << COUNT_SHIFT | min(c.hi, len(c.conditions)) << 2 * COUNT_SHIFT)
            return
        if isinstance(c, (m.AnyOf, m.AllOf)):
            for sub in c.conditions:
                emit(sub)
            ops.append(OP_OR if isinstance(c, m.AnyOf) else OP_AND)
            args.append(len(c.conditions))
        else:
            ops.append(OP_ATOM)
            args.append(atom(c))

    from ._reference import _first_field
    case_conds = [cond for cat in ins.categories for _, _, cond in cat.cases]
    skips = [(i, i.skip_when, 1) for i in ins.items if i.skip_when is not None]
    skips += [(f, f.required_unless, 0) for f in ins.fields if f.required_unless is not None]
    skip_ids = {q.id for q, _, kind in skips if kind}
    score_cases = [cond for s in ins.scores for _, cond in s.cases]
    for cond in ([r.when for r in ins.rules] + [c.when for c in ins.constraints] + case_conds
                 + [cond for _, cond, _ in skips] + score_cases):
        emit(cond)
        prog_start.append(len(ops))

    i64 = functools.partial(np.asarray, dtype=np.int64)
    identity = [_identity_range(code_table[k], item) for k, item in enumerate(ins.items)]
    item_values = any(p in {i.id for i in ins.items} for s in ins.scores for p in s.sum)
    atom_questions = {a[1] for a in atoms if a[0] == ATOM_OPTION_IN} | {q for a in atoms for q in a[4]}
    option_width = max(len(q.options) for q in qs) + 2
    atom_option = np.zeros((len(atoms), option_width), np.uint8)
    for k, a in enumerate(atoms):
        if a[0] == ATOM_OPTION_IN:
            atom_option[k, 2:2 + len(a[2])] = a[2]
    opt_value2 = np.zeros((len(qs), option_width), np.int32)
    for k, q in enumerate(qs):
        opt_value2[k, 2:2 + len(q.options)] = [o.value or 0 for o in q.options]
    atom_bits = (atom_option.astype(np.uint64) << np.arange(option_width, dtype=np.uint64)).sum(axis=1)
    index_range = [_index_range(code_table[k]) for k in range(len(qs))]
    rule_raise = np.asarray([r.raise_by for r in ins.rules], np.int32)
    rule_set_level = np.asarray([-1 if r.set_level is None else r.set_level for r in ins.rules], np.int8)
    raise_sum = int(ins.raise_combination == "sum")
    fired_set, fired_raise = _rule_effects(rule_set_level, rule_raise, raise_sum)
    sum_start = [0]
    sum_q: list[int] = []
    for a in atoms:
        sum_q.extend(a[4])
        sum_start.append(len(sum_q))
    bands = sorted(ins.bands, key=lambda b: b.min)
    aux_start, aux = [0], []
    for sc in ins.scores:
        if sc.kind == "bands":
            aux.extend(x for band in sc.bands for x in band)
        elif sc.kind == "weighted":   # (0, value slot, weight) or (1, field question, weight)
            for p, w in zip(sc.sum, sc.weights):
                aux.extend((1, qi[p], w) if p in qi and p not in slot else (0, slot[p], w))
        elif sc.kind == "matrix":
            aux.extend(x for lo, hi in sc.axes for x in (lo, hi - lo + 1))
            aux.extend(NULL_SCORE if c is None else c for c in sc.cells)
        aux_start.append(len(aux))
    return Plan(
        questions=questions, n_items=n_items,
        required=np.asarray([q.required for q in qs], np.uint8),
        code_lo=CODE_LO, code_table=code_table, sum_table=sum_table, pack2=pack2,
        identity_lo=np.asarray([r[0] for r in identity], np.int32),
        identity_hi=np.asarray([r[1] for r in identity], np.int32),
        index_lo=np.asarray([r[0] for r in index_range], np.int32),
        index_hi=np.asarray([r[1] for r in index_range], np.int32),
        value_is_index=np.asarray([(v[2:2 + len(q.options)] == np.arange(len(q.options))).all()
                                   for v, q in zip(opt_value2, qs)], np.uint8),
        need_idx=np.asarray([k >= n_items or item_values or k in atom_questions or questions[k] in skip_ids
                             for k in range(len(qs))], np.uint8),
        item_values=int(item_values),
        item_domain=i64([[d.id for d in ins.domains].index(i.domain) for i in ins.items]),
        keys=tuple(tuple(o.key for o in q.options) for q in qs),
        icd10=tuple(i for i, q in enumerate(qs) if isinstance(q, m.Field) and q.type == "icd10_list"),
        text=tuple(i for i, q in enumerate(qs) if isinstance(q, m.Field) and q.type == "text"),
        score_part_start=i64(part_start), score_parts=i64(parts), level_value=slot[ins.level_score],
        band_min=np.asarray([b.min for b in bands], np.int32), band_max=np.asarray([b.max for b in bands], np.int32),
        band_level=np.asarray([b.level for b in bands], np.int8),
        atom_kind=np.asarray([a[0] for a in atoms], np.int8), atom_q=i64([a[1] for a in atoms]),
        atom_option=atom_option, atom_bits=atom_bits.astype(np.uint32) if option_width <= 32 else np.zeros(0, np.uint32),
        opt_value2=opt_value2, atom_n=np.asarray([a[3] for a in atoms], np.int32),
        atom_hi=np.asarray([a[5] if len(a) > 5 else 0 for a in atoms], np.int32),
        atom_sum_start=i64(sum_start), atom_sum_q=i64(sum_q), flags=tuple(flags),
        prog_start=i64(prog_start), prog_op=np.asarray(ops, np.int8), prog_arg=i64(args),
        n_rules=len(ins.rules),
        rule_raise=rule_raise, rule_set_level=rule_set_level, fired_set=fired_set, fired_raise=fired_raise,
        raise_sum=raise_sum, max_level=ins.max_level,
        constraint_field=i64([qi[_first_field(c.when)] for c in ins.constraints]),
        n_constraints=len(ins.constraints),
        cat_case_start=i64(np.cumsum([0] + [len(c.cases) for c in ins.categories])),
        cat_case_value=np.asarray([v for c in ins.categories for v, _, _ in c.cases], np.int8),
        cat_otherwise=np.asarray([-1 if c.otherwise is None else c.otherwise[0] for c in ins.categories], np.int8),
        n_domains=len(ins.domains), n_scores=len(ins.scores),
        skip_item=i64([qi[q.id] for q, _, _ in skips]),
        skip_kind=np.asarray([kind for _, _, kind in skips], np.uint8),
        skip_of_q=np.asarray([next((k for k, s in enumerate(skips) if s[0].id == q), -1) for q in questions], np.int16),
        score_kind=np.asarray([SCORE_KINDS[sc.kind] for sc in ins.scores], np.int8),
        score_aux_start=i64(aux_start), score_aux=np.asarray(aux, np.int32),
        score_case_start=i64(np.cumsum([0] + [len(sc.cases) for sc in ins.scores])),
        score_case_value=np.asarray([v for sc in ins.scores for v, _ in sc.cases], np.int32),
        score_otherwise=np.asarray([NULL_SCORE if sc.otherwise is None else sc.otherwise for sc in ins.scores], np.int32),
    )
