"""Grading tables that a deploying office supplies (LTC 2021 评估结果判定, shared/reference/ltc-2021.md §5).

Where the national text leaves the grading to a table that is not established (the indicator bands
and the 组合法 matrix of 长期护理失能等级评估标准（试行）), an instrument declares a ``grading_table``
section and a setting of kind ``table``. Without a table the instrument reports its indicator totals
and no level, saying why. With one, the table is validated for completeness (§5.3) and turned into
ordinary derived scores, so both scorers run it like any other definition:

- one ``bands`` score per indicator: ``<indicator>_grade``, 0 for the best grade upward;
- for a ``merged`` table, ``<b>_<c>_grade`` = the more severe (``max``) of the two merged grades;
- ``grade``: a ``matrix`` over the axes, whose cells are the table's levels.

A table file (YAML or JSON)::

    id: …                      # the office's table id, recorded with every graded result
    version: "…"
    provenance: {office: …, document: …, region: "330100", effective_date: "2024-01-01"}
    grades:                    # per indicator, best (highest scores) first
      ADL: [{code: "1", name: 能力完好, min: 100, max: 100}, …]
    combination:
      shape: merged            # or three_way
      merge: more_severe       # merged only
      matrix: [[…], …]         # first indicator's grades × merged grades (or × second × third)

A table setting that ``replaces`` a matrix score (the MZ/T 039 判定卡) gives that score's cells
instead: the same id, version and provenance, and ``cells`` as nested lists with one level per
combination of the matrix's parts (:func:`replace_cells`).

This module reads files only in :func:`read`; :func:`apply` works on plain data.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Mapping

import yaml

from . import _yaml
from . import model as m
from .errors import Code, SettingError, problem

MERGE_RULES = {"more_severe": "max"}   # grades are numbered best first, so the more severe is the larger
PROVENANCE = ("office", "document", "region", "effective_date")


def read(path) -> dict:
    """Parse a table file; a file that cannot be read is a setting error naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else _yaml.load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise SettingError(problem(Code.SET_004, where=str(path), detail=f"cannot be read ({exc})")) from exc
    if not isinstance(data, dict):
        raise SettingError(problem(Code.SET_004, where=str(path), detail="the file does not hold a mapping"))
    return data


def label(table: Mapping) -> str:
    """How results record the table: its id and version."""
    return f"{table.get('id')}@{table.get('version')}"


def _fail(table: Mapping, detail: str):
    raise SettingError(problem(Code.SET_004, where=f"grading table {label(table)}", detail=detail))


def validate(table: Mapping, spec: Mapping, maxima: Mapping[str, int], levels: set) -> None:
    """Reject an incomplete table, naming the first failure (ltc-2021.md §5.3)."""
    prov = _check_head(table, ("grades", "combination"))
    if not re.fullmatch(r"\d{6}", str(prov["region"])):
        _fail(table, f"provenance.region {prov['region']!r} is not a 6-digit 行政区划代码 written as text")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(prov["effective_date"])):
        _fail(table, f"provenance.effective_date {prov['effective_date']!r} is not YYYY-MM-DD")
    grades = table["grades"]
    for ind in spec["indicators"]:
        _check_grades(table, ind, (grades or {}).get(ind), maxima[ind])
    comb = table["combination"]
    shape = comb.get("shape") if isinstance(comb, Mapping) else None
    if shape not in ("merged", "three_way"):
        _fail(table, f"combination.shape {shape!r} must be merged or three_way")
    axes = _axes(table, spec)
    if shape == "merged":
        if comb.get("merge") not in spec.get("merge_rules", []):
            _fail(table, f"combination.merge {comb.get('merge')!r} is not a merge rule the engine knows "
                         f"({', '.join(spec.get('merge_rules', [])) or 'none'})")
        first, second = (grades[i] for i in spec["indicators"][1:3])
        if [(g["code"], g["name"]) for g in first] != [(g["code"], g["name"]) for g in second]:
            _fail(table, f"merged {spec['indicators'][1]} and {spec['indicators'][2]} must list the same grades")
    _check_levels(table, _cells(table, comb.get("matrix"), [len(a) for a in axes], []), levels, "matrix cell")


def _check_head(table: Mapping, body: tuple) -> Mapping:
    """The table's id, version and provenance (who issued it, under which document, where, from when)."""
    for key in ("id", "version", "provenance", *body):
        if key not in table:
            _fail(table, f"'{key}' is missing")
    prov = table["provenance"]
    for key in PROVENANCE:
        if not isinstance(prov, Mapping) or not str(prov.get(key) or "").strip():
            _fail(table, f"provenance.{key} is missing")
    return prov


def _check_grades(table, ind: str, grades, top: int) -> None:
    if not isinstance(grades, list) or len(grades) < 2:
        _fail(table, f"grades.{ind} needs at least two grades")
    codes = [str(g.get("code")) for g in grades]
    if len(set(codes)) != len(codes):
        _fail(table, f"grades.{ind}: grade codes must be unique")
    expect = top   # best first: the first grade holds the maximum, each next one continues below
    for g in grades:
        lo, hi = g.get("min"), g.get("max")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (lo, hi)) or not g.get("name"):
            _fail(table, f"grades.{ind} {g.get('code')!r}: needs a name and integer min and max")
        if hi != expect or lo > hi:
            what = "overlap" if hi > expect else "gap"
            _fail(table, f"grades.{ind} {g['code']!r} ({lo}–{hi}): {what}; the ranges must cover {top}…0 "
                         f"without gaps or overlaps, best grade first (expected a grade ending at {expect})")
        expect = lo - 1
    if expect != -1:
        _fail(table, f"grades.{ind}: the ranges end at {expect + 1}, not 0")


def _check_levels(table, cells: list, levels: set, what: str) -> None:
    """Every cell holds one of the levels (an integer, not a bool or a text)."""
    for where, cell in cells:
        if isinstance(cell, bool) or not isinstance(cell, int) or cell not in levels:
            _fail(table, f"{what} {where} is {cell!r}; every cell holds a level {sorted(levels)}")


def _axes(table, spec) -> list:
    grades, inds = table["grades"], spec["indicators"]
    if table["combination"]["shape"] == "merged":
        return [grades[inds[0]], grades[inds[1]]]
    return [grades[i] for i in inds]


def _cells(table, node, shape: list, where: list) -> list:
    if not shape:
        return [(where, node)]
    if not isinstance(node, list) or len(node) != shape[0]:
        _fail(table, f"matrix{''.join(f'[{w}]' for w in where)} must list {shape[0]} entries "
                     f"(the matrix has shape {shape})")
    return [c for k, sub in enumerate(node) for c in _cells(table, sub, shape[1:], where + [k])]


def apply(table: Mapping, spec: Mapping) -> tuple[tuple, str, tuple]:
    """(derived scores, level score id, level bands) for a validated table."""
    inds = spec["indicators"]
    grades = table["grades"]
    scores = []
    for ind in inds:
        ranges = tuple((g["min"], g["max"], k) for k, g in enumerate(grades[ind]))
        scores.append(m.Score(f"{ind}_grade", m.Text(f"{ind} 分级", f"{ind} grade"), (ind,), spec.get("clause", ""),
                              kind="bands", bands=ranges,
                              value_labels={k: m.Text(g["name"]) for k, g in enumerate(grades[ind])}))
    axes = [f"{inds[0]}_grade"]
    if table["combination"]["shape"] == "merged":
        merged = f"{inds[1]}_{inds[2]}_grade"
        scores.append(m.Score(merged, m.Text(f"{inds[1]}、{inds[2]} 合并分级（取较重者）",
                                             f"{inds[1]} and {inds[2]} merged (the more severe)"),
                              (f"{inds[1]}_grade", f"{inds[2]}_grade"), spec.get("clause", ""),
                              kind=MERGE_RULES[table["combination"]["merge"]],
                              value_labels={k: m.Text(g["name"]) for k, g in enumerate(grades[inds[1]])}))
        axes.append(merged)
    else:
        axes += [f"{i}_grade" for i in inds[1:]]
    cells = _cells(table, table["combination"]["matrix"], [len(a) for a in _axes(table, spec)], [])
    flat = [c for _, c in cells]
    where = f"分级表 {label(table)}（{table['provenance']['office']}，{table['provenance']['document']}）"
    traces = {i: m.Text(f"{where} 组合法 {'、'.join(f'{a}={k}' for a, k in zip(axes, at))}",
                        f"table {label(table)}, cell {at}") for i, (at, _) in enumerate(cells)}
    scores.append(m.Score("grade", m.Text("组合法等级", "Level by the combination table"), tuple(axes),
                          spec.get("clause", ""), kind="matrix",
                          axes=tuple((0, len(a) - 1) for a in _axes(table, spec)), cells=tuple(flat),
                          cell_traces=traces))
    bands = tuple(m.Band(lv["level"], lv["level"], lv["level"], m.Text(lv["label"]["zh"], lv["label"].get("en", "")))
                  for lv in spec["levels"])
    return tuple(scores), "grade", bands


def replace_cells(table: Mapping, score: m.Score, levels: set) -> m.Score:
    """The matrix score with the office's cells, each checked to be a level (MZ/T 039 §4: 256 cells 0–3)."""
    prov = _check_head(table, ("cells",))
    cells = _cells(table, table["cells"], [hi - lo + 1 for lo, hi in score.axes], [])
    _check_levels(table, cells, levels, "cell")
    where = f"判定卡 {label(table)}（{prov['office']}，{prov['document']}）"
    traces = {i: m.Text(f"{where} {'、'.join(f'{p}={lo + k}' for p, (lo, _), k in zip(score.sum, score.axes, at))}",
                        f"table {label(table)}, cell {at}") for i, (at, _) in enumerate(cells)}
    return dataclasses.replace(score, cells=tuple(c for _, c in cells), cell_reasons={}, cell_traces=traces)
