"""Tablet forms generated from an instrument definition: steps, posted values → answers.

One step per domain, preceded by a step for the rule-input fields (附录A) when the instrument has
any. Nothing here scores: the running scores come from :func:`assess.score_one`.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

import assess
from assess import model as m

FIELDS_TITLE = "基本信息"
_ICD_SPLIT = re.compile(r"[\s,，、;；]+")


@dataclass(frozen=True)
class Step:
    index: int
    key: str
    title: str
    questions: tuple


_listed: tuple = ((), [])       # (modification stamps of the files, assess.list_instruments())
_listing = threading.Lock()


def _stamps(refs) -> tuple:
    out = []
    for r in refs:
        try:
            st = os.stat(r.path)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def instruments() -> list:
    """:func:`assess.list_instruments`, read again only when a definition file changes.

    It parses every installed file each call (about a second for the nine here), which the tablet's
    person page and ``GET /api/instruments`` paid on every view.
    """
    global _listed
    stamps, refs = _listed
    if not refs or _stamps(refs) != stamps:
        with _listing:
            stamps, refs = _listed
            if not refs or _stamps(refs) != stamps:
                refs = assess.list_instruments()
                _listed = (_stamps(refs), refs)
    return list(refs)


def steps(ins: m.Instrument) -> list[Step]:
    out = []
    if ins.fields:
        out.append(Step(0, "A", FIELDS_TITLE, tuple(ins.fields)))
    by_id = {i.id: i for i in ins.items}
    for d in ins.domains:
        out.append(Step(len(out), d.id, d.label.zh, tuple(by_id[i] for i in d.items)))
    return out


def kind(q) -> str:
    """How a question is asked: radio choices, or one input (ICD-10 codes, a whole number, free text)."""
    if isinstance(q, m.Field) and q.type in ("icd10_list", "integer", "text"):
        return q.type
    return "choice"


def value_of(q, text: str | None):
    """The answer for a posted value: the option's own code (4 or "0b"), a code list, or None."""
    if kind(q) == "icd10_list":
        if text is None:
            return None
        return [c for c in _ICD_SPLIT.split(text.strip()) if c]
    if text is None or text == "":
        return None
    opt = q.option(str(text))
    return opt.raw if opt is not None else str(text)      # unknown codes go to the scorer, which names them


def parse(step: Step, form) -> dict:
    """Answers posted for one step: question id → answer (None clears it)."""
    return {q.id: value_of(q, form.get(q.id)) for q in step.questions}


def merge(answers: dict, updates: dict, ins: m.Instrument) -> dict:
    """Answers with updates (posted strings or code lists) applied; unknown ids are dropped, None clears."""
    out = dict(answers)
    for qid, v in updates.items():
        q = ins.question(qid)
        if q is None:
            continue
        if isinstance(v, list) and kind(q) == "icd10_list":
            v = [str(c).strip() for c in v if str(c).strip()]
        elif v is not None:
            v = value_of(q, str(v))
        if v is None:
            out.pop(qid, None)
        else:
            out[qid] = v
    return out


def missing(step: Step, answers: dict) -> list:
    return [q for q in step.questions if q.required and q.id not in answers]


def answer_key(answers: dict, q) -> str | None:
    v = answers.get(q.id)
    return None if v is None else str(v)


def icd_text(answers: dict, q) -> str:
    v = answers.get(q.id)
    return "、".join(v) if isinstance(v, list) else ""


def domain_max(ins: m.Instrument) -> dict:
    """The highest score of each domain (for the chart's scale), read from the options."""
    by_id = {i.id: i for i in ins.items}
    return {d.id: sum(by_id[i].max_points for i in d.items) for d in ins.domains}


def score_max(ins: m.Instrument, score_id: str) -> int:
    dm = domain_max(ins)
    s = next(s for s in ins.scores if s.id == score_id)
    return sum(dm.get(x, 0) for x in s.sum)
