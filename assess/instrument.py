"""Find, read, validate and build instrument definitions.

Reading follows pyxform's order: the file is parsed into plain data, validated against the JSON
Schema shipped in ``assess/schemas``, then cross-checked (references, unique ids, bands covering
the reachable score range). Every problem found is gathered, located by file, line and item, and
raised once as an :class:`~assess.errors.InstrumentError`. Only then is the data built into the
frozen objects of :mod:`assess.model`; :func:`build` does no file I/O.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Mapping

import jsonschema
import yaml

from . import _yaml, derived, grading_table
from . import model as m
from .errors import Code, InstrumentError, SettingError, format_allowed, problem

_SCHEMA_PATH = Path(__file__).parent / "schemas" / "instrument.schema.json"
PATH_ENV = "ASSESS_INSTRUMENTS_PATH"


@dataclass(frozen=True)
class InstrumentRef:
    """One installed instrument version, as :func:`list_instruments` lists it."""

    id: str
    version: str
    title: str
    title_en: str
    effective_date: str | None
    path: str


# --------------------------------------------------------------------------- discovery

def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    packaged = resources.files("assess") / "instruments"          # wheel: assess/instruments
    source = Path(__file__).resolve().parent.parent / "instruments"  # source checkout
    for d in (Path(str(packaged)), source):
        if d.is_dir() and d not in dirs:
            dirs.append(d)
    return dirs


def _version_key(version: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.-]", version)]


@functools.lru_cache(maxsize=None)
def _index() -> dict[str, dict[str, Path]]:
    found: dict[str, dict[str, Path]] = {}
    for d in _search_dirs():
        for path in sorted(d.glob("*/*.yaml")):
            found.setdefault(path.parent.name, {}).setdefault(path.stem, path)
    return found


def list_instruments() -> list[InstrumentRef]:
    """Every installed instrument version, sorted by id then version."""
    out = []
    for iid, versions in sorted(_index().items()):
        for version in sorted(versions, key=_version_key):
            data = _read(versions[version])[0]
            out.append(InstrumentRef(iid, version, data["title"]["zh"], data["title"].get("en", ""),
                                     data["effective"]["date"], str(versions[version])))
    return out


def load_instrument(instrument_id: str, version: str | None = None, settings: Mapping | None = None) -> m.Instrument:
    """Load an installed instrument (the newest version unless one is named)."""
    versions = _index().get(instrument_id)
    if not versions or (version is not None and version not in versions):
        known = [f"{r.id}@{r.version}" for r in list_instruments()]
        raise InstrumentError(problem(Code.INSTR_006, id=instrument_id,
                                      version=f" version {version!r}" if version else "",
                                      allowed=format_allowed(known)))
    version = version or max(versions, key=_version_key)
    return _load_cached(str(versions[version]), _freeze(settings), _stamp(versions[version], settings))


def load_path(path: str | os.PathLike, settings: Mapping | None = None) -> m.Instrument:
    """Load and validate a definition file that need not be installed (re-read when it changes)."""
    return _load_cached(str(Path(path).resolve()), _freeze(settings), _stamp(path, settings))


def _freeze(settings):
    def frozen(v):
        if v is None or isinstance(v, (str, int, float, os.PathLike)):
            return None if v is None else str(v)
        return "data:" + json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)   # a table given as data
    return tuple(sorted((str(k), frozen(v)) for k, v in (settings or {}).items()))


def _unfreeze(settings: tuple) -> dict:
    return {k: json.loads(v[5:]) if isinstance(v, str) and v.startswith("data:") else v for k, v in settings}


def read_tables(data: Mapping, settings: Mapping) -> dict:
    """The settings, with each table setting given as a file path replaced by the file's data."""
    tables = {n for n, s in data.get("settings", {}).items() if s.get("kind") == "table"}
    out = {}
    for k, v in settings.items():
        short = k[len(data["id"]) + 1:] if k.startswith(data["id"] + ".") else k
        out[k] = grading_table.read(v) if short in tables and isinstance(v, (str, os.PathLike)) else v
    return out


def _stamp(path, settings: Mapping | None = None) -> tuple:
    """What makes a cached definition stale: the modification time and size of the file and of any
    file a setting names (a grading table)."""
    def one(p):
        try:
            st = os.stat(p)
        except OSError:
            return (None, None)   # _read reports the missing file
        return (st.st_mtime_ns, st.st_size)
    files = [v for v in (settings or {}).values() if isinstance(v, (str, os.PathLike)) and os.path.isfile(v)]
    return (one(path), *(one(f) for f in files))


@functools.lru_cache(maxsize=512)   # 16 instruments, each under many setting combinations (tests, rescoring)
def _load_cached(path: str, settings: tuple, stamp: tuple) -> m.Instrument:
    data, lines = _read(Path(path))
    validate(data, path, lines)
    return build(data, path, settings=read_tables(data, _unfreeze(settings)))


# --------------------------------------------------------------------------- reading


def _read(path: Path) -> tuple[dict, dict]:
    """Parse YAML into plain data plus a map from data path to 1-based line number."""
    where = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = _yaml.compose(text)
        data = _yaml.load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        # The construct left open (context) is where to look; else where parsing stopped.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InstrumentError(problem(Code.INSTR_007, where=f"{where}:{line}" if line else where, line=line,
                                      detail=str(exc).replace("\n", " "))) from exc
    if not isinstance(data, dict):
        raise InstrumentError(problem(Code.INSTR_007, where=where, detail="the file does not hold a mapping"))
    lines: dict[tuple, int] = {}
    _walk_lines(node, (), lines)
    return data, lines


def _walk_lines(node, path: tuple, out: dict) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = int(key.value) if key.tag.endswith(":int") else key.value
            _walk_lines(value, path + (k,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _walk_lines(value, path + (i,), out)


def _display(path) -> str:
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- validation

class _Problems:
    """Collects located problems for one file."""

    def __init__(self, data: dict, path: str, lines: dict):
        self.data, self.file, self.lines, self.found = data, _display(path), lines, []

    def where(self, path: tuple) -> tuple[str, str | None, int | None]:
        line = None
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                line = self.lines[path[:cut]]
                break
        item = None
        if len(path) >= 2 and path[0] in ("items", "fields", "rules", "constraints", "domains", "scores"):
            node = self.data.get(path[0])
            if isinstance(node, list) and isinstance(path[1], int) and path[1] < len(node) \
                    and isinstance(node[path[1]], dict):
                item = node[path[1]].get("id")
        where = f"{self.file}:{line}" if line else self.file
        if item:
            where += f", {path[0][:-1]} {item}"
        elif path:
            where += ", " + "/".join(str(p) for p in path)
        return where, item, line

    def add(self, code: Code, path: tuple, **kw) -> None:
        where, item, line = self.where(path)
        self.found.append(problem(code, where=where, item=item, line=line, **kw))


def validate(data: dict, path: str, lines: dict | None = None) -> None:
    """Check a parsed definition; raise once with every problem found."""
    probs = _Problems(data, path, lines or {})
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for err in errors:
        detail = _schema_detail(err)
        probs.add(Code.INSTR_001, tuple(err.absolute_path), detail=detail)
    if not probs.found:
        _check_references(data, probs)
    if probs.found:
        raise InstrumentError(probs.found)


def _schema_detail(err: jsonschema.ValidationError) -> str:
    if err.validator == "oneOf" and err.context:
        # Report the branch that got furthest instead of "is not valid under any of the given schemas".
        best = max(err.context, key=lambda e: (len(e.absolute_path), -len(e.message)))
        return best.message
    if err.validator in ("maxItems", "minItems"):
        # jsonschema's own message quotes the whole list. A bound with a reason gives it in "$comment".
        bound = "at most" if err.validator == "maxItems" else "at least"
        why = err.schema.get("$comment")
        return f"{len(err.instance)} entries, {bound} {err.validator_value} allowed" + (f" ({why})" if why else "")
    return err.message


def _scale_names(q: dict) -> list:
    """The scale(s) a question may use: one name, or one per value of the setting that picks it."""
    scale = q.get("scale")
    if isinstance(scale, dict):
        return list(scale["cases"].values())
    return [] if scale is None else [scale]


def _options(data: dict, q: dict, scales_key: str, values: Mapping | None = None) -> list[dict] | None:
    """A question's options; a scale chosen by a setting follows ``values`` (the first case if None)."""
    if "options" in q:
        return q["options"]
    scale = q.get("scale")
    if isinstance(scale, dict):
        cases = {str(k): v for k, v in scale["cases"].items()}
        scale = cases.get(str(values.get(scale["by_setting"]))) if values else next(iter(cases.values()))
    return data.get(scales_key, {}).get(scale)


def _bands(levels: dict, values: Mapping | None = None) -> dict[str, list]:
    """Band sets by id (one, named "", when the bands are not chosen by a setting); with ``values``
    only the set in force."""
    bands = levels["bands"]
    if isinstance(bands, list):
        return {"": bands}
    cases = {str(k): v for k, v in bands["cases"].items()}
    if values is not None:
        chosen = str(values[bands["by_setting"]])
        return {chosen: cases[chosen]}
    return cases


def _key(code) -> str:
    return str(code)


def _check_references(data: dict, probs: _Problems) -> None:
    settings = data.get("settings", {})
    for name, s in settings.items():
        if s["default"] is not None and str(s["default"]) not in s["values"]:
            probs.add(Code.INSTR_005, ("settings", name, "default"), value=s["default"],
                      allowed=format_allowed(s["values"]))

    matrices = [sc["id"] for sc in data.get("scores", []) if "matrix" in sc]
    for name, s in settings.items():
        if "replaces" in s and s["replaces"] not in matrices:
            probs.add(Code.INSTR_003, ("settings", name, "replaces"), kind="matrix score", id=s["replaces"],
                      allowed=format_allowed(matrices))
    domain_ids = [d["id"] for d in data.get("domains", [])]
    _unique(domain_ids + [s["id"] for s in data.get("scores", [])], "domains", probs)
    questions: dict[str, dict] = {}
    for kind, scales_key in (("items", "scales"), ("fields", "field_scales")):
        for i, q in enumerate(data.get(kind, [])):
            if q["id"] in questions:
                probs.add(Code.INSTR_002, (kind, i, "id"), id=q["id"])
            questions[q["id"]] = q
            for name in _scale_names(q):
                if name not in data.get(scales_key, {}):
                    probs.add(Code.INSTR_003, (kind, i, "scale"), kind="scale", id=name,
                              allowed=format_allowed(data.get(scales_key, {})))
            if isinstance(q.get("scale"), dict):
                _check_scale_cases(data, q, scales_key, (kind, i, "scale"), settings, probs)
            opts = _options(data, q, scales_key)
            if kind == "fields" and (q["type"] == "integer") != ("min" in q and "max" in q):
                probs.add(Code.INSTR_001, (kind, i), detail="min and max are given for an integer field, and only for one")
            if kind == "fields" and q["type"] == "integer":
                if "options" in q or "scale" in q:
                    probs.add(Code.INSTR_001, (kind, i), detail="an integer field takes min and max, not options")
                elif q.get("min", 0) > q.get("max", 0):
                    probs.add(Code.INSTR_001, (kind, i), detail="min > max")
                continue
            if kind == "fields" and q["type"] in ("icd10_list", "text"):
                if "options" in q or "scale" in q:
                    probs.add(Code.INSTR_001, (kind, i), detail=f"a {q['type']} field takes no options")
                if q["type"] == "text" and q.get("required", False):
                    probs.add(Code.INSTR_001, (kind, i), detail="a text field is never required")
                continue
            if kind == "fields" and opts is None and "scale" not in q:
                probs.add(Code.INSTR_001, (kind, i), detail="a code field needs options or a scale")
            keys = [_key(o["code"]) for o in opts or []]
            for k in {k for k in keys if keys.count(k) > 1}:
                probs.add(Code.INSTR_002, (kind, i, "options"), id=k)
            req = q.get("required")
            if isinstance(req, dict) and "by_setting" in req:
                _CondContext(data, {}, settings, probs).check_cases(req, (kind, i, "required"))
            if kind == "items" and (isinstance(req, dict) or req is False) and "skip_when" in q:
                probs.add(Code.INSTR_001, (kind, i, "required"), detail="an item with a skip is required when not skipped")
            if kind == "items" and isinstance(req, dict):
                probs.add(Code.INSTR_001, (kind, i, "required"), detail="only a field may be required by setting or condition")
            if kind == "items" and q["domain"] not in domain_ids:
                probs.add(Code.INSTR_003, (kind, i, "domain"), kind="domain", id=q["domain"],
                          allowed=format_allowed(domain_ids))

    levels = data["levels"]
    ctx = _CondContext(data, questions, settings, probs)
    first = _setting_values(data)
    reach = _reachable(data, first)
    ranges = {k: (min(v), max(v)) for k, v in reach.items() if v}
    derived.check(data, reach, ctx, probs, _resolver(first), lambda node: _condition(node, first))
    band_sets = _bands(levels)
    if isinstance(levels["bands"], dict):
        ctx.check_cases(levels["bands"], ("levels", "bands"))
    if levels["score"] not in ranges:
        probs.add(Code.INSTR_003, ("levels", "score"), kind="score", id=levels["score"],
                  allowed=format_allowed(ranges))
    else:
        for set_id, bands in band_sets.items():
            path = ("levels", "bands") + (("cases", set_id) if set_id else ())
            # the setting that picks a band set may also pick the scale (WHODAS 1–5 or 0–4 coding)
            rng = _score_ranges(data, {levels["bands"]["by_setting"]: set_id}) if set_id else ranges
            _check_bands(bands, rng.get(levels["score"], ranges[levels["score"]]), probs, path)
    # a level a rule sets must exist in every band set
    level_numbers = set.intersection(*({b["level"] for b in bands if "level" in b} for bands in band_sets.values()))
    for i, other in enumerate(data.get("other_scales", [])):
        if other["instrument"] == data["id"]:
            probs.add(Code.INSTR_001, ("other_scales", i, "instrument"), detail="names this instrument itself")
        item_keys = {_key(o["code"]) for q in data["items"] for o in _options(data, q, "scales") or []}
        for code in other["codes"]:
            if _key(code) in item_keys:
                probs.add(Code.INSTR_001, ("other_scales", i, "codes"),
                          detail=f"code {code!r} is allowed by an item of this instrument, so it cannot name another scale")

    for i, f in enumerate(data.get("fields", [])):
        req = f.get("required")
        unless = [req] if isinstance(req, dict) and "unless" in req else \
            [c for c in req["cases"].values() if isinstance(c, dict)] if isinstance(req, dict) else []
        for u in unless:
            ctx.check(u["unless"], ("fields", i, "required"))
            if any(qid not in questions for qid in _condition_reads(u["unless"])):
                probs.add(Code.INSTR_001, ("fields", i, "required"), detail="a requirement may read items and fields only")
    for i, q in enumerate(data.get("items", [])):
        if "skip_when" in q:
            ctx.check(q["skip_when"], ("items", i, "skip_when"))
            # A skip reads fields, or items that are never skipped themselves (MZ/T 039 B.3.1 昏迷).
            readable = {f["id"] for f in data.get("fields", [])} | {
                it["id"] for it in data["items"] if "skip_when" not in it}
            for qid in _condition_reads(q["skip_when"]):
                if qid not in readable:
                    probs.add(Code.INSTR_001, ("items", i, "skip_when"),
                              detail=f"a skip may read fields and unskipped items only, not {qid!r}")
    for i, r in enumerate(data.get("rules", [])):
        ctx.check(r["when"], ("rules", i, "when"))
        target = r["effect"].get("set_level")
        if isinstance(target, dict):
            name = target["setting"]
            if name not in settings:
                probs.add(Code.INSTR_003, ("rules", i, "effect"), kind="setting", id=name,
                          allowed=format_allowed(settings))
            elif not all(v.isdigit() and int(v) in level_numbers for v in settings[name]["values"]):
                probs.add(Code.INSTR_001, ("rules", i, "effect"),
                          detail=f"every value of setting {name!r} must be a level number {sorted(level_numbers)}")
        elif target is not None and target not in level_numbers:
            probs.add(Code.INSTR_001, ("rules", i, "effect"),
                      detail=f"set_level {target} is not a level {sorted(level_numbers)}")
    _unique([r["id"] for r in data.get("rules", [])], "rules", probs)
    for i, c in enumerate(data.get("constraints", [])):
        ctx.check(c["when"], ("constraints", i, "when"))
    taken = set(domain_ids) | {s["id"] for s in data.get("scores", [])}
    for i, cat in enumerate(data.get("categories", [])):
        if cat["id"] in taken:
            probs.add(Code.INSTR_002, ("categories", i, "id"), id=cat["id"])
        taken.add(cat["id"])
        for j, case in enumerate(cat["cases"]):
            ctx.check(case["when"], ("categories", i, "cases", j, "when"))
        other = cat.get("otherwise")
        if isinstance(other, dict) and "by_setting" in other:
            ctx.check_cases(other, ("categories", i, "otherwise"))
    comb = data.get("raise_combination")
    if isinstance(comb, dict):
        ctx.check_cases(comb, ("raise_combination",))


def _condition_reads(cond: dict) -> list:
    """Every item, field or score id a condition (as written, all setting cases) reads."""
    for key in ("any", "all", "count"):
        if key in cond:
            return [q for c in cond[key] for q in _condition_reads(c)]
    if "by_setting" in cond:
        return [q for c in cond["cases"].values() for q in _condition_reads(c)]
    if "never" in cond:
        return []
    return list(cond.get("sum") or [cond.get("field", cond.get("score"))])


def _unique(ids: list[str], kind: str, probs: _Problems) -> None:
    seen = set()
    for i, x in enumerate(ids):
        if x in seen:
            probs.add(Code.INSTR_002, (kind, i, "id"), id=x)
        seen.add(x)


def _setting_values(data: dict, given: Mapping | None = None) -> dict:
    """Setting values for building: the given ones, else the default, else the first allowed value
    (a setting with no default still needs some value to lay out the definition for display)."""
    given = given or {}
    return {name: str(given.get(name) if given.get(name) is not None else
                      s["default"] if s["default"] is not None else next(iter(s["values"])))
            for name, s in data.get("settings", {}).items() if s.get("kind") != "table"}


def _resolver(values: Mapping) -> Callable:
    """Resolve a node that may depend on a setting: ``{by_setting, cases}`` or ``{setting}``."""
    def resolve(node):
        if isinstance(node, dict) and "by_setting" in node:
            return {str(k): v for k, v in node["cases"].items()}[str(values[node["by_setting"]])]
        if isinstance(node, dict) and "setting" in node:
            return values[node["setting"]]
        return node
    return resolve


def _reachable(data: Mapping, values: Mapping) -> dict:
    """Every value each item, domain and derived score can take under these setting values."""
    return derived.reachable(data, lambda q: _options(data, q, "scales", values), _resolver(values))


def reachable_values(ins: m.Instrument) -> dict[str, frozenset]:
    """Every value each item, domain and derived score of a built instrument can take."""
    return _reachable(ins.raw, _setting_values(ins.raw, ins.setting_values))


def _score_ranges(data: dict, values: Mapping | None = None) -> dict[str, tuple[int, int]]:
    """Reachable [min, max] of every item, domain and derived score."""
    return {k: (min(v), max(v)) for k, v in _reachable(data, _setting_values(data, values)).items() if v}


def _check_scale_cases(data: dict, q: dict, scales_key: str, path: tuple, settings: dict, probs: _Problems) -> None:
    """A scale chosen by a setting: one case per value, each offering the same codes."""
    name = q["scale"]["by_setting"]
    if name not in settings:
        probs.add(Code.INSTR_003, path + ("by_setting",), kind="setting", id=name, allowed=format_allowed(settings))
        return
    want, have = set(map(str, settings[name]["values"])), set(map(str, q["scale"]["cases"]))
    if want != have:
        probs.add(Code.INSTR_001, path + ("cases",),
                  detail=f"cases {sorted(have)} must be exactly the values of {name!r}: {sorted(want)}")
    # Scales may code differently (WHODAS 1–5 or 0–4, Shah levels or points) only where no
    # condition reads the question: a condition's codes are checked against one scale.
    codes = [sorted(_key(o["code"]) for o in data.get(scales_key, {}).get(s) or []) for s in _scale_names(q)]
    if any(c != codes[0] for c in codes) and q["id"] in _all_condition_reads(data):
        probs.add(Code.INSTR_001, path, detail="a condition reads this question, so every scale a setting can "
                                               "choose must offer the same codes")


def _all_condition_reads(data: dict) -> set:
    """Every id any condition of the definition reads (rules, constraints, categories, skips,
    requirements, derived-score cases and combination rules)."""
    conds = [r["when"] for r in data.get("rules", [])] + [c["when"] for c in data.get("constraints", [])]
    conds += [c["when"] for cat in data.get("categories", []) for c in cat["cases"]]
    conds += [q["skip_when"] for q in data.get("items", []) if "skip_when" in q]
    for f in data.get("fields", []):
        req = f.get("required")
        if isinstance(req, dict):
            conds += [req["unless"]] if "unless" in req else [c["unless"] for c in req["cases"].values()
                                                              if isinstance(c, dict)]
    for sc in data.get("scores", []):
        conds += [c["when"] for c in sc.get("cases", [])]
        conds += [r["when"] for r in sc.get("matrix", {}).get("rules", [])]
        conds += [g["when"] for g in sc.get("matrix", {}).get("gaps", [])]
    return {q for c in conds for q in _condition_reads(c)}


def _check_bands(bands: list[dict], rng: tuple[int, int], probs: _Problems, path: tuple = ("levels", "bands")) -> None:
    """Bands and declared unclassified spans together must be contiguous and cover the range; a gap
    is only allowed where it is declared (``unclassified``, with its reason)."""
    lo, hi = rng
    levels = sorted(b["level"] for b in bands if "level" in b)
    if levels != list(range(len(levels))):   # none at all: every total declared unclassified (e.g. Lawton)
        probs.add(Code.INSTR_004, path, detail=f"levels are {levels}, expected 0…{len(levels) - 1}",
                  lo=lo, hi=hi)
    ordered = sorted(enumerate(bands), key=lambda ib: ib[1]["min"])
    expect = lo
    for i, b in ordered:
        what = f"level {b['level']}" if "level" in b else "unclassified span"
        if b["min"] > b["max"]:
            probs.add(Code.INSTR_004, path + (i,), detail=f"{what} has min > max", lo=lo, hi=hi)
        if b["min"] != expect:
            kind = "gap before" if b["min"] > expect else "overlap at"
            probs.add(Code.INSTR_004, path + (i,), detail=f"{kind} {what} ({b['min']})", lo=lo, hi=hi)
        if b["min"] > hi or b["max"] < lo:
            probs.add(Code.INSTR_008, path + (i,),
                      detail=f"{what} ({b['min']}–{b['max']}) cannot be reached", lo=lo, hi=hi)
        expect = max(expect, b["max"] + 1)
    if expect != hi + 1:
        probs.add(Code.INSTR_004, path, detail=f"bands end at {expect - 1}", lo=lo, hi=hi)


class _CondContext:
    def __init__(self, data, questions, settings, probs):
        self.data, self.questions, self.settings, self.probs = data, questions, settings, probs

    @staticmethod
    def reads(cond: dict) -> list:
        return _condition_reads(cond)

    def _question(self, qid, path):
        q = self.questions.get(qid)
        if q is None:
            self.probs.add(Code.INSTR_003, path, kind="item or field", id=qid,
                           allowed=format_allowed(self.questions))
        elif q.get("type") == "text":
            self.probs.add(Code.INSTR_001, path, detail=f"{qid} is a text field, which no condition may read")
            return None
        return q

    def _opts(self, q):
        if q.get("type") == "integer":
            return [{"code": v, "value": v} for v in range(q.get("min", 0), q.get("max", -1) + 1)]
        return _options(self.data, q, "scales" if "domain" in q else "field_scales") or []

    def check_cases(self, node, path):
        name = node["by_setting"]
        if name not in self.settings:
            self.probs.add(Code.INSTR_003, path + ("by_setting",), kind="setting", id=name,
                           allowed=format_allowed(self.settings))
            return False
        want, have = set(self.settings[name]["values"]), set(map(str, node["cases"]))
        if want != have:
            self.probs.add(Code.INSTR_001, path + ("cases",),
                           detail=f"cases {sorted(have)} must be exactly the values of {name!r}: {sorted(want)}")
        return True

    def check(self, cond: dict, path: tuple) -> None:
        if "any" in cond or "all" in cond or "count" in cond:
            key = next(k for k in ("any", "all", "count") if k in cond)
            for i, c in enumerate(cond[key]):
                self.check(c, path + (key, i))
        elif "by_setting" in cond:
            if self.check_cases(cond, path):
                for k, c in cond["cases"].items():
                    self.check(c, path + ("cases", k))
        elif "in" in cond:
            q = self._question(cond["field"], path + ("field",))
            if q is not None and q.get("type") == "integer":
                self.probs.add(Code.INSTR_001, path, detail=f"{q['id']} is an integer field: read it with at_least / at_most")
            elif q is not None:
                keys = [_key(o["code"]) for o in self._opts(q)]
                for code in cond["in"]:
                    if _key(code) not in keys:
                        self.probs.add(Code.INSTR_003, path + ("in",), kind=f"code of {q['id']}", id=code,
                                       allowed=format_allowed(keys))
        elif "icd10_in" in cond:
            q = self._question(cond["field"], path + ("field",))
            if q is not None and q.get("type") != "icd10_list":
                self.probs.add(Code.INSTR_001, path, detail=f"{q['id']} is not an icd10_list field")
        elif "never" in cond:
            pass
        elif "score" in cond:
            known = [d["id"] for d in self.data.get("domains", [])] + [s["id"] for s in self.data.get("scores", [])]
            if cond["score"] not in known:
                self.probs.add(Code.INSTR_003, path + ("score",), kind="domain or score", id=cond["score"],
                               allowed=format_allowed(known))
        else:  # at_least / at_most over one field, or at_least over a sum of fields
            for qid in cond.get("sum") or [cond["field"]]:
                q = self._question(qid, path)
                if q is not None and any(self._numeric(o) is None for o in self._opts(q)):
                    self.probs.add(Code.INSTR_001, path,
                                   detail=f"{qid} has options without a numeric value or points")

    @staticmethod
    def _numeric(opt):
        return opt.get("points", opt.get("value"))


# --------------------------------------------------------------------------- building

def build(data: Mapping, path: str, settings: Mapping | None = None) -> m.Instrument:
    """Build a validated definition into a frozen :class:`~assess.model.Instrument` (no I/O)."""
    iid = data["id"]
    declared = {name: m.Setting(name, _text(s["label"]),
                                {str(k): _text(v) for k, v in s.get("values", {}).items()},
                                None if s["default"] is None else str(s["default"]), s["status"], s["basis"],
                                s.get("kind", "choice"))
                for name, s in data.get("settings", {}).items()}
    given, tables = _resolve_settings(iid, declared, settings or {})
    # A setting with no default and no value (e.g. WHODAS coding) still lets the definition be
    # laid out for display, under its first value; scoring refuses it (Instrument.unset).
    values = _setting_values(data, given)

    def opts(q, scales_key):
        out = []
        for o in _options(data, q, scales_key, values):
            out.append(m.Option(o["code"], _key(o["code"]), _text(o["label"]), o.get("points"),
                                o.get("value", o.get("points"))))
        return tuple(out)

    def required(q, default=True):
        """(required always, required unless this condition holds) after the settings in force."""
        req = q.get("required", default)
        if isinstance(req, dict) and "by_setting" in req:
            req = {str(k): v for k, v in req["cases"].items()}[values[req["by_setting"]]]
        if isinstance(req, dict):
            unless = _condition(req["unless"], values)
            return (True, None) if isinstance(unless, m.Never) else (False, unless)
        return req, None

    def skip(q):
        cond = _condition(q["skip_when"], values) if "skip_when" in q else None
        return None if isinstance(cond, m.Never) else cond

    items = tuple(m.Item(q["id"], _text(q["label"]), opts(q, "scales"), required(q)[0],
                         _text(q["description"]) if "description" in q else None, domain=q["domain"],
                         skip_when=skip(q))
                  for q in data["items"])
    def field_options(f):
        if f["type"] == "integer":   # every whole number in range is an option worth itself
            return tuple(m.Option(v, str(v), m.Text(str(v)), None, v) for v in range(f["min"], f["max"] + 1))
        return () if f["type"] in ("icd10_list", "text") else opts(f, "field_scales")

    fields = tuple(m.Field(f["id"], _text(f["label"]), field_options(f),
                           required(f, f["type"] != "text")[0],
                           required_unless=required(f, f["type"] != "text")[1], type=f["type"])
                   for f in data.get("fields", []))
    domains = tuple(m.Domain(d["id"], _text(d["label"]), tuple(i.id for i in items if i.domain == d["id"]))
                    for d in data.get("domains", []))
    reach = _reachable(data, values)
    scores = tuple(derived.build(s, reach, _resolver(values), lambda node: _condition(node, values))
                   for s in data.get("scores", []))
    (band_list,) = _bands(data["levels"], values).values()
    bands = tuple(sorted((m.Band(b["level"], b["min"], b["max"], _text(b["label"])) for b in band_list
                          if "level" in b), key=lambda b: b.level))
    unclassified = tuple(sorted((m.Unclassified(b["min"], b["max"], _text(b["unclassified"]))
                                 for b in band_list if "level" not in b), key=lambda u: u.min))
    other_scales = tuple(m.OtherScale(o["instrument"], frozenset(_key(c) for c in o["codes"]), _text(o["message"]))
                         for o in data.get("other_scales", []))
    rules = []
    for r in data.get("rules", []):
        eff = r["effect"]
        target = eff.get("set_level")
        if isinstance(target, dict):
            target = int(values[target["setting"]])
        rules.append(m.Rule(r["id"], r["clause"], _text(r["label"]), _condition(r["when"], values),
                            eff.get("raise", 0), target, bool(eff.get("flag"))))
    comb = data.get("raise_combination", "max")
    if isinstance(comb, dict):
        comb = comb["cases"][values[comb["by_setting"]]]
    constraints = tuple(m.Constraint(c["id"], _condition(c["when"], values), _text(c["message"]))
                        for c in data.get("constraints", []))
    # An answer given for an item its rule skips is an inconsistency, never silently dropped
    # (data-hygiene §4). The item is read first, so it is the field the error names.
    constraints += tuple(
        m.Constraint(f"skipped_{i.id}", m.AllOf((m.CodeIn(i.id, frozenset(o.key for o in i.options)), i.skip_when)),
                     m.Text(f"{i.id} {i.label.zh} 按本量表规则应跳过（不询问、不计分），却填写了答案；请删除该答案或核对触发跳过的字段。",
                            f"{i.id} is skipped by the instrument's rule but has an answer; remove it or check the field that triggers the skip."))
        for i in items if i.skip_when is not None)
    categories = []
    for cat in data.get("categories", []):
        other = cat.get("otherwise")
        if isinstance(other, dict) and "by_setting" in other:
            other = {str(k): v for k, v in other["cases"].items()}[values[other["by_setting"]]]
        categories.append(m.Category(cat["id"], _text(cat["label"]), cat["clause"],
                                     tuple((c["value"], _text(c["label"]), _condition(c["when"], values))
                                           for c in cat["cases"]),
                                     None if other is None else (other["value"], _text(other["label"]))))
    level_score = data["levels"]["score"]
    for name, table in tables.items():   # an office's table in place of a matrix built from rules
        target = data["settings"][name].get("replaces")
        if target is not None:
            levels = {v for b in bands for v in range(b.min, b.max + 1)}   # values the level bands hold
            scores = tuple(grading_table.replace_cells(table, sc, levels) if sc.id == target else sc for sc in scores)
            given[name] = grading_table.label(table)
    spec = data.get("grading_table")
    if spec is not None and spec["setting"] in tables:
        # An office's grading table (LTC 2021 §5): its grades and combination become derived scores.
        table = tables[spec["setting"]]
        levels = {lv["level"] for lv in spec["levels"]}
        grading_table.validate(table, spec, {i: max(reach[i]) for i in spec["indicators"]}, levels)
        extra, level_score, bands = grading_table.apply(table, spec)
        scores += extra
        unclassified = ()
        given[spec["setting"]] = grading_table.label(table)
    hashed = [data, tables] if tables else data   # an office's table is part of the definition in force
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    return m.Instrument(
        id=iid, version=str(data["version"]), title=_text(data["title"]), direction=data["direction"],
        source=dict(data["source"]), effective_date=data["effective"]["date"], region=data["effective"]["region"],
        notes=tuple(_text(n) for n in data.get("notes", [])), items=items, fields=fields, domains=domains,
        scores=scores, level_score=level_score, bands=bands, rules=tuple(rules),
        raise_combination=comb, constraints=constraints, settings=declared, setting_values=given,
        definition_hash=digest, path=str(path), raw=data, levels_clause=data["levels"].get("clause", ""),
        categories=tuple(categories), unclassified=unclassified, other_scales=other_scales, tables=tables)


def _text(t: Mapping) -> m.Text:
    return m.Text(t["zh"], t.get("en", ""))


def _resolve_settings(iid: str, declared: Mapping[str, m.Setting], given: Mapping) -> tuple[dict, dict]:
    """(setting values, tables given as data): a table setting takes a table, not one of its values."""
    values = {name: s.default for name, s in declared.items()}
    tables = {}
    problems = []
    for name, value in given.items():
        short = name[len(iid) + 1:] if name.startswith(iid + ".") else name
        if short not in declared:
            problems.append(problem(Code.SET_001, where=f"instrument {iid}", name=name,
                                    allowed=format_allowed(f"{iid}.{n}" for n in declared)))
        elif declared[short].kind == "table":
            if isinstance(value, Mapping):
                tables[short] = dict(value)
            elif value is not None:
                problems.append(problem(Code.SET_002, where=f"instrument {iid}", name=f"{iid}.{short}",
                                        value=value, allowed="a table file (YAML or JSON) or its data"))
        elif value is None or str(value) not in declared[short].values:
            problems.append(problem(Code.SET_002, where=f"instrument {iid}", name=f"{iid}.{short}", value=value,
                                    allowed=format_allowed(declared[short].values)))
        else:
            values[short] = str(value)
    if problems:
        raise SettingError(problems)
    return values, tables


def _condition(node: Mapping, values: Mapping) -> m.Condition:
    if "any" in node:
        return m.AnyOf(tuple(_condition(c, values) for c in node["any"]))
    if "all" in node:
        return m.AllOf(tuple(_condition(c, values) for c in node["all"]))
    if "by_setting" in node:
        cases = {str(k): v for k, v in node["cases"].items()}
        return _condition(cases[values[node["by_setting"]]], values)
    if "in" in node:
        return m.CodeIn(node["field"], frozenset(_key(c) for c in node["in"]))
    if "icd10_in" in node:
        return m.Icd10In(node["field"], tuple(tuple(r.split("-")) if "-" in r else (r, r) for r in node["icd10_in"]))
    if "never" in node:
        return m.Never()
    if "count" in node:
        return m.CountBetween(tuple(_condition(c, values) for c in node["count"]),
                              node.get("at_least", 0), node.get("at_most", len(node["count"])))
    if "sum" in node:
        return m.SumAtLeast(tuple(node["sum"]), node["at_least"])
    if "score" in node:
        return m.ScoreBetween(node["score"], node.get("at_least", -(1 << 30)), node.get("at_most", 1 << 30))
    if "at_least" in node and "at_most" in node:
        return m.AllOf((m.ValueAtLeast(node["field"], node["at_least"]), m.ValueAtMost(node["field"], node["at_most"])))
    if "at_most" in node:
        return m.ValueAtMost(node["field"], node["at_most"])
    return m.ValueAtLeast(node["field"], node["at_least"])


def iter_conditions(cond: m.Condition) -> Iterable[m.Condition]:
    """Every atomic condition inside a condition tree, depth first."""
    if isinstance(cond, (m.AnyOf, m.AllOf, m.CountBetween)):
        for c in cond.conditions:
            yield from iter_conditions(c)
    else:
        yield cond
