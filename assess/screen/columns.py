"""Which input column is which: item and field ids, Chinese labels, identity columns, --map files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import model as m
from ..errors import Code, problem
from .errors import ScreenError

# Identity columns carried through to OUT, in output order: output name → accepted input names.
IDENTITY = {
    "A.2.8": ("A.2.8", "公民身份号码", "身份证号", "身份证号码"),
    "A.2.1": ("A.2.1", "姓名"),
    "A.2.3": ("A.2.3", "出生日期"),
    "A.2.2": ("A.2.2", "性别"),
    "region": ("region", "行政区划代码", "区划代码"),
}
ID_NUMBER, NAME, BIRTH, SEX, REGION = IDENTITY


@dataclass(frozen=True)
class Columns:
    """The recognised columns of one input file."""

    by_source: dict          # input column name → id (question id or identity output name)
    source_of: dict          # id → input column name
    questions: tuple         # question ids present, in instrument order
    identity: tuple          # identity ids present, in IDENTITY order
    ignored: tuple           # input columns not recognised

    def source(self, cid: str) -> str:
        return self.source_of.get(cid, cid)


def read_map(path) -> dict:
    """A --map file: YAML mapping input column name → item/field/identity id."""
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScreenError(problem(Code.FILE_003, where=where, detail=str(exc).replace("\n", " "))) from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ScreenError(problem(Code.FILE_003, where=where,
                                  detail="应为“输入列名: 条目编号”的映射，如 吃饭: B.1.1"))
    return {k.strip(): v.strip() for k, v in data.items()}


def names_for(ins: m.Instrument) -> dict:
    """Every name a column may carry without a map: ids, Chinese labels, identity aliases."""
    names = {}
    for q in (*ins.items, *ins.fields):
        names[q.id] = q.id
        names.setdefault(q.label.zh.strip(), q.id)
    for out, aliases in IDENTITY.items():
        for a in aliases:
            names[a] = out
    return names


def recognise(ins: m.Instrument, header, mapping: dict | None = None, where: str = "") -> Columns:
    """Map an input header to ids. Two columns meaning the same id, or a map naming an unknown id,
    are errors; unrecognised columns are ignored (and listed). Missing required items are an error:
    a file without them would only produce rejects."""
    names = names_for(ins)
    mapping = mapping or {}
    known_ids = set(ins._questions) | set(IDENTITY)
    bad = [f"{k} → {v}" for k, v in mapping.items() if v not in known_ids]
    if bad:
        raise ScreenError(problem(Code.FILE_003, where=where,
                                  detail="未知的编号 " + "，".join(bad[:5])))
    by_source, source_of, ignored = {}, {}, []
    for col in header:
        name = str(col).strip().lstrip("\ufeff")
        cid = mapping.get(name) or names.get(name)
        if cid is None:
            ignored.append(col)
            continue
        if cid in source_of:
            raise ScreenError(problem(Code.FILE_003, where=where,
                                      detail=f"列 {source_of[cid]!r} 和 {col!r} 都对应 {cid}"))
        by_source[col] = cid
        source_of[cid] = col
    missing = [q.id for q in (*ins.items, *ins.fields) if q.required and q.id not in source_of]
    if missing:
        shown = "、".join(f"{q} {ins.question(q).label.zh}" for q in missing[:8])
        raise ScreenError(problem(Code.FILE_002, where=where,
                                  missing=shown + (f" 等 {len(missing)} 列" if len(missing) > 8 else "")))
    questions = tuple(q for q in ins._questions if q in source_of)
    identity = tuple(i for i in IDENTITY if i in source_of)
    return Columns(by_source, source_of, questions, identity, tuple(ignored))
