"""Derived scores: how an instrument computes values from items, domains and earlier scores.

A derived score is written with exactly one of these keys (``instruments/*/*.yaml``, ``scores``):

- ``sum: [parts]``, ``max: [parts]``, ``min: [parts]``: arithmetic over the parts;
- ``bands: {of: part, ranges: [{min, max, value}]}``: the value of the range holding the part
  (MZ/T 039 domain grades, NBA weighted points); the ranges must hold every reachable value of
  the part exactly once;
- ``matrix: {of: [parts], cells: nested lists}``: a lookup table indexed by the parts' values
  (LTC 2021 组合法); or ``matrix: {of: [parts], rules: [...], overlap: ..., gaps: [...]}``: the table
  built from published combination rules (MZ/T 039 §4), where a combination matched by several
  rules is resolved by ``overlap`` and one matched by none takes a declared ``gaps`` value. Every
  cell must end up with a value (or, under ``overlap: reject``, an explicit refusal);
- ``cases: [{value, when}]`` with ``otherwise``: the first case whose condition holds (MZ/T 039
  感知觉与沟通);
- ``weighted: [{of, weight}]``: the sum of each part times its integer weight, where a part may
  also be a numeric rule-input field (NBA Modul 5: counts per day, week and month in one unit).

A score is null when any part is null (``cases``: when no case holds and there is no
``otherwise``). This module reads plain definition data and builds :class:`~assess.model.Score`
objects; it does no I/O. Both scorers read the built objects.
"""
from __future__ import annotations

import itertools
from typing import Callable, Mapping

import numpy as np

from . import model as m
from .errors import Code, format_allowed

KINDS = ("sum", "max", "min", "bands", "matrix", "cases", "weighted")
MAX_REACHABLE = 50_000   # beyond this many values a reachable set is taken as its whole range
MAX_CELLS = 1 << 16
OVERLAP = ("max", "min", "reject")


def kind_of(node: Mapping) -> str:
    return next(k for k in KINDS if k in node)


def parts_of(node: Mapping) -> list[str]:
    kind = kind_of(node)
    if kind in ("sum", "max", "min"):
        return list(node[kind])
    if kind == "bands":
        return [node["bands"]["of"]]
    if kind == "matrix":
        return list(node["matrix"]["of"])
    if kind == "weighted":
        return [p["of"] for p in node["weighted"]]
    return []


def _setsum(a: frozenset, b: frozenset) -> frozenset:
    if len(a) * len(b) > 200_000:
        return range(min(a) + min(b), max(a) + max(b) + 1)   # a range stands for a set this large
    out = np.unique(np.add.outer(np.fromiter(a, np.int64, len(a)), np.fromiter(b, np.int64, len(b))))
    if len(out) > MAX_REACHABLE:
        return range(int(out[0]), int(out[-1]) + 1)
    return frozenset(out.tolist())


def reachable(data: Mapping, options: Callable, resolve: Callable) -> dict[str, frozenset]:
    """Every value each item, domain and derived score can take on an ok assessment.

    ``options(q)`` gives a question's options under the settings in force; ``resolve(node)``
    resolves a ``by_setting`` node (or returns the node) as the builder does.
    """
    values: dict[str, frozenset] = {}
    for q in data.get("items", []):
        pts = {o["points"] for o in options(q) or []}
        if "skip_when" in q:
            pts.add(0)   # a skipped item counts 0
        if pts:
            values[q["id"]] = frozenset(pts)
    for q in data.get("fields", []):   # rule inputs a weighted score may add up (NBA Modul 5 frequencies)
        if q.get("type") == "integer":
            if "min" in q and "max" in q:   # (the checks name an integer field without its range)
                values[q["id"]] = range(q["min"], q["max"] + 1)
        elif q.get("type", "code") == "code":
            vals = {o.get("value", o.get("points")) for o in options(q) or []}
            if vals and None not in vals:
                values[q["id"]] = frozenset(vals)
    for d in data.get("domains", []):
        acc = frozenset({0})
        for q in data.get("items", []):
            if q["domain"] == d["id"] and q["id"] in values:
                acc = _setsum(acc, values[q["id"]])
        values[d["id"]] = acc
    for s in data.get("scores", []):
        kind = kind_of(s)
        parts = [values.get(p) for p in parts_of(s)]
        if None in parts:
            continue
        if kind == "sum":
            acc = frozenset({0})
            for p in parts:
                acc = _setsum(acc, p)
        elif kind == "weighted":
            acc = frozenset({0})
            for p, part in zip(s["weighted"], parts):
                scaled = range(p["weight"] * part.start, p["weight"] * (part.stop - 1) + 1) \
                    if isinstance(part, range) and len(part) > MAX_REACHABLE else frozenset(p["weight"] * x for x in part)
                acc = _setsum(acc, scaled)
        elif kind in ("max", "min"):
            pick = max if kind == "max" else min
            acc = frozenset(pick(c) for c in itertools.product(*parts))
        elif kind == "bands":
            acc = frozenset(r["value"] for r in s["bands"]["ranges"] if _hits(parts[0], r["min"], r["max"]))
        elif kind == "matrix":
            node = s["matrix"]
            cells = _flat(node["cells"]) if "cells" in node else \
                _gap_values(node, resolve) | {r["value"] for r in node["rules"]}
            acc = frozenset(v for v in cells if v is not None)
        else:
            acc = frozenset(c["value"] for c in s["cases"]) | (
                {s["otherwise"]} if s.get("otherwise") is not None else set())
        values[s["id"]] = acc
    return values


def _hits(reach, lo: int, hi: int) -> bool:
    """Some reachable value lies in lo … hi."""
    if isinstance(reach, range):
        return lo <= reach.stop - 1 and hi >= reach.start
    return any(lo <= x <= hi for x in reach)


def _gap_values(node: Mapping, resolve: Callable) -> set:
    out = set()
    for g in node.get("gaps", []):
        v = resolve(g["value"])
        out.add(int(v))
    return out


def _flat(cells) -> list:
    if isinstance(cells, list):
        return [x for c in cells for x in _flat(c)]
    return [cells]


def _shape(cells) -> tuple:
    if not isinstance(cells, list):
        return ()
    inner = {_shape(c) for c in cells}
    if len(inner) != 1:
        return (len(cells), None)   # ragged
    return (len(cells),) + inner.pop()


# --------------------------------------------------------------------------- checks

def check(data: Mapping, values: Mapping[str, frozenset], ctx, probs, resolve: Callable, condition: Callable) -> None:
    """Cross-checks of every derived score (after the schema): parts defined before use, bands
    holding every reachable value exactly once, matrices complete."""
    known = {q["id"] for q in data.get("items", [])} | {d["id"] for d in data.get("domains", [])}
    fields = {q["id"] for q in data.get("fields", []) if q.get("type", "code") in ("code", "integer")}
    for i, s in enumerate(data.get("scores", [])):
        kind = kind_of(s)
        path = ("scores", i, kind)
        for part in parts_of(s):
            if part in fields and kind == "weighted":
                if part not in values:
                    probs.add(Code.INSTR_001, path, detail=f"field {part} has options without a numeric value")
            elif part not in known:
                probs.add(Code.INSTR_003, path, kind="score part", id=part, allowed=format_allowed(sorted(known)))
        known.add(s["id"])
        if any(p not in values for p in parts_of(s)):
            continue
        if kind == "bands":
            _check_ranges(s["bands"]["ranges"], values[s["bands"]["of"]], probs, path + ("ranges",))
        elif kind == "matrix":
            node = s["matrix"]
            axes = [(min(values[p]), max(values[p])) for p in node["of"]]
            size = 1
            for lo, hi in axes:
                size *= hi - lo + 1
            if size > MAX_CELLS:
                probs.add(Code.INSTR_001, path, detail=f"{size} cells; a matrix may have at most {MAX_CELLS}")
                continue
            if "cells" in node:
                want = tuple(hi - lo + 1 for lo, hi in axes)
                if _shape(node["cells"]) != want:
                    probs.add(Code.INSTR_001, path + ("cells",),
                              detail=f"cells must be nested lists of shape {list(want)} (one per value of "
                                     f"{', '.join(f'{p} {lo}…{hi}' for p, (lo, hi) in zip(node['of'], axes))})")
            else:
                for j, r in enumerate(node["rules"]):
                    _check_matrix_condition(r["when"], node["of"], ctx, probs, path + ("rules", j, "when"))
                for j, g in enumerate(node.get("gaps", [])):
                    _check_matrix_condition(g["when"], node["of"], ctx, probs, path + ("gaps", j, "when"))
                if isinstance(node.get("overlap"), dict) and not ctx.check_cases(node["overlap"], path + ("overlap",)):
                    continue
                try:
                    build_matrix_cells(node, axes, resolve, condition)
                except ValueError as e:
                    probs.add(Code.INSTR_004, path, detail=str(e), lo=axes[0][0], hi=axes[0][1])
        elif kind == "cases":
            for j, c in enumerate(s["cases"]):
                ctx.check(c["when"], ("scores", i, "cases", j, "when"))


def _check_ranges(ranges: list, reach: frozenset, probs, path: tuple) -> None:
    for j, r in enumerate(ranges):
        if r["min"] > r["max"]:
            probs.add(Code.INSTR_004, path + (j,), detail="min > max", lo=min(reach), hi=max(reach))
        elif not _hits(reach, r["min"], r["max"]):
            probs.add(Code.INSTR_008, path + (j,), detail=f"range {r['min']}–{r['max']} cannot be reached",
                      lo=min(reach), hi=max(reach))
    # How many ranges hold each reachable value, by sweeping the sorted values once.
    arr = np.asarray(sorted(reach) if not isinstance(reach, range) else reach, np.int64)
    cover = np.zeros(len(arr) + 1, np.int64)
    for r in ranges:
        cover[np.searchsorted(arr, r["min"], "left")] += 1
        cover[np.searchsorted(arr, r["max"], "right")] -= 1
    bad = np.nonzero(np.cumsum(cover)[:-1] != 1)[0]
    if len(bad):
        x = int(arr[bad[0]])
        hits = [j for j, r in enumerate(ranges) if r["min"] <= x <= r["max"]]
        what = "no range holds" if not hits else f"ranges {hits} all hold"
        probs.add(Code.INSTR_004, path, detail=f"{what} the reachable value {x}", lo=min(reach), hi=max(reach))


def _check_matrix_condition(cond: Mapping, axes: list, ctx, probs, path: tuple) -> None:
    ctx.check(cond, path)
    if any(r not in axes for r in ctx.reads(cond)):
        probs.add(Code.INSTR_001, path, detail=f"a combination rule may read only the matrix's parts {axes}")


# --------------------------------------------------------------------------- building

def build_matrix_cells(node: Mapping, axes: list, resolve: Callable, condition: Callable) -> tuple[list, dict, dict]:
    """The flat cells of a matrix given by combination rules, with a reason for each refused cell
    and a trace of how each cell got its value. Raises ValueError naming the first cell no rule,
    gap or table fills."""
    if "cells" in node:
        return _flat(node["cells"]), {}, {}
    from ._reference import holds
    overlap = resolve(node.get("overlap", "max"))
    rules = [(r["value"], m.Text(**r["label"]) if "label" in r else m.Text(str(r["value"])), condition(r["when"]))
             for r in node["rules"]]
    gaps = [(int(resolve(g["value"])), condition(g["when"]), g["value"]) for g in node.get("gaps", [])]
    cells, reasons, traces = [], {}, {}
    names = node["of"]
    for combo in itertools.product(*(range(lo, hi + 1) for lo, hi in axes)):
        vals = dict(zip(names, combo))
        shown = " ".join(f"{n}={v}" for n, v in vals.items())
        hit = [(v, label) for v, label, cond in rules if holds(cond, {}, vals)]
        index = len(cells)
        if len({v for v, _ in hit}) == 1:
            cells.append(hit[0][0])
            traces[index] = m.Text(f"{shown}：符合规则“{hit[0][1].zh}”", f"{shown}: rule {hit[0][1].en or hit[0][1].zh}")
        elif hit:
            matched = "、".join(f"“{label.zh}”" for _, label in hit)
            if overlap == "reject":
                cells.append(None)
                reasons[index] = m.Text(f"{shown} 同时符合规则 {matched}，按设置不判定（overlap=reject）",
                                        f"{shown} matches several rules; not decided (overlap=reject)")
            else:
                pick = max if overlap == "max" else min
                cells.append(pick(v for v, _ in hit))
                traces[index] = m.Text(
                    f"{shown} 同时符合规则 {matched}，按设置取{'较重' if overlap == 'max' else '较轻'}者",
                    f"{shown} matches several rules; the {'higher' if overlap == 'max' else 'lower'} value is taken")
        else:
            gap = next(((v, how) for v, cond, how in gaps if holds(cond, {}, vals)), None)
            if gap is None:
                raise ValueError(f"the combination {shown} matches no rule and no declared gap")
            cells.append(gap[0])
            setting = f"（设置 {gap[1]['setting']}）" if isinstance(gap[1], dict) else ""
            traces[index] = m.Text(f"{shown} 不符合任何规则（空缺），按声明取 {gap[0]}{setting}",
                                   f"{shown} matches no rule (a gap); declared value {gap[0]}")
    return cells, reasons, traces


def build(s: Mapping, values: Mapping[str, frozenset], resolve: Callable, condition: Callable) -> m.Score:
    """A :class:`~assess.model.Score` from a validated score definition."""
    kind = kind_of(s)
    label = m.Text(s["label"]["zh"], s["label"].get("en", ""))
    common = dict(id=s["id"], label=label, clause=s.get("clause", ""), kind=kind, sum=tuple(parts_of(s)))
    labels = {}
    if kind == "bands":
        ranges = s["bands"]["ranges"]
        labels = {r["value"]: m.Text(r["label"]["zh"], r["label"].get("en", "")) for r in ranges if "label" in r}
        return m.Score(**common, bands=tuple((r["min"], r["max"], r["value"]) for r in ranges), value_labels=labels)
    if kind == "matrix":
        node = s["matrix"]
        axes = tuple((min(values[p]), max(values[p])) for p in node["of"])
        cells, reasons, traces = build_matrix_cells(node, list(axes), resolve, condition)
        labels = {r["value"]: m.Text(r["label"]["zh"], r["label"].get("en", "")) for r in node.get("rules", [])
                  if "label" in r}
        return m.Score(**common, axes=axes, cells=tuple(cells), cell_reasons=reasons, cell_traces=traces,
                       value_labels=labels)
    if kind == "weighted":
        return m.Score(**common, weights=tuple(p["weight"] for p in s["weighted"]))
    if kind == "cases":
        labels = {c["value"]: m.Text(c["label"]["zh"], c["label"].get("en", "")) for c in s["cases"] if "label" in c}
        why = s.get("none_reason")
        return m.Score(**common, cases=tuple((c["value"], condition(c["when"])) for c in s["cases"]),
                       otherwise=s.get("otherwise"), value_labels=labels,
                       none_reason=m.Text(why["zh"], why.get("en", "")) if why else None)
    return m.Score(**common)
