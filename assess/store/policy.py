"""Recognition policy: which results a department accepts for which purpose (a YAML data file).

The file is read into plain data, validated against :data:`SCHEMA`, cross-checked (departments,
installed instruments, levels, crosswalks) with every problem gathered, then built into frozen
objects. ``max_age_days`` and ``min_assessors`` have no default on purpose: the reference records
the assessor count and the re-assessment interval of GB/T 42195-2022 as [UNVERIFIED], so each
deployment must write its own choice into its policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from ..errors import AssessError, Problem
from ..instrument import load_instrument
from .errors import StoreCode, store_error

_name = {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"}
_accept = {
    "type": "object", "additionalProperties": False,
    "required": ["instrument", "issuers", "max_age_days", "min_assessors"],
    "properties": {
        "instrument": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "issuers": {"type": "array", "items": _name, "minItems": 1},
        "levels": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "max_age_days": {"type": "integer", "minimum": 1},
        "min_assessors": {"type": "integer", "minimum": 1},
        "crosswalk": {"type": "string"},
    }}
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["policy", "version", "departments", "purposes"],
    "properties": {
        "policy": {"type": "string"}, "version": {"type": "string"}, "note": {"type": "string"},
        "departments": {"type": "object", "propertyNames": _name, "additionalProperties": {"type": "string"},
                        "minProperties": 1},
        "crosswalks": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "from", "to", "levels", "source"],
            "properties": {"id": _name, "from": {"type": "string"}, "to": {"type": "string"},
                           "levels": {"type": "object", "additionalProperties": {"type": "integer"}},
                           "source": {"type": "string", "minLength": 1}}}},
        "purposes": {"type": "object", "propertyNames": _name, "additionalProperties": {
            "type": "object", "propertyNames": _name, "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["label", "accept"],
                "properties": {"label": {"type": "string"},
                               "accept": {"type": "array", "items": _accept, "minItems": 1}}}}},
    }}


@dataclass(frozen=True)
class Crosswalk:
    id: str
    source_instrument: str
    target: str
    levels: dict          # source level → target level
    source: str


@dataclass(frozen=True)
class Accept:
    instrument: str
    versions: tuple | None
    issuers: tuple
    levels: tuple | None
    max_age_days: int
    min_assessors: int
    crosswalk: Crosswalk | None = None


@dataclass(frozen=True)
class Purpose:
    department: str
    id: str
    label: str
    accept: tuple


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    departments: dict
    purposes: dict        # (department, purpose) → Purpose
    path: str

    def purpose(self, department: str, purpose: str) -> Purpose:
        p = self.purposes.get((department, purpose))
        if p is None:
            raise store_error(StoreCode.STORE_007, f"policy {self.name} v{self.version}",
                              detail=f"department {department!r} has no purpose {purpose!r}",
                              allowed=", ".join(f"{d}/{q}" for d, q in self.purposes))
        return p


def load_policy(path) -> Policy:
    where = Path(path).name
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise store_error(StoreCode.STORE_006, where, detail=str(exc).replace("\n", " ")) from exc
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(data)]
    if not problems:
        problems = _cross_check(data)
    if problems:
        raise AssessError([Problem(StoreCode.STORE_006, StoreCode.STORE_006.format(where=where, detail=p), where)
                           for p in problems])  # type: ignore[arg-type]
    return _build(data, str(path))


def _levels(instrument: str) -> set:
    return {b.level for b in load_instrument(instrument).bands}


def _cross_check(data) -> list[str]:
    out, depts = [], set(data["departments"])
    walks = {c["id"]: c for c in data.get("crosswalks", [])}
    for c in walks.values():
        try:
            have = _levels(c["from"])
        except AssessError as exc:
            out.append(f"crosswalk {c['id']}: {exc.problems[0].message}")
            continue
        keys = {int(k) for k in c["levels"] if str(k).lstrip("-").isdigit()}
        if keys != have or len(keys) != len(c["levels"]):
            out.append(f"crosswalk {c['id']}: levels must map exactly the levels {sorted(have)} of {c['from']}")
    for dept, purposes in data["purposes"].items():
        if dept not in depts:
            out.append(f"purposes/{dept}: department not listed under departments")
        for pid, p in purposes.items():
            for i, a in enumerate(p["accept"]):
                where = f"purposes/{dept}/{pid}/accept/{i}"
                for issuer in a["issuers"]:
                    if issuer not in depts:
                        out.append(f"{where}: issuer {issuer!r} is not listed under departments")
                try:
                    ins = load_instrument(a["instrument"])
                except AssessError as exc:
                    out.append(f"{where}: {exc.problems[0].message}")
                    continue
                bad = set(a.get("levels", [])) - {b.level for b in ins.bands}
                if bad:
                    out.append(f"{where}: levels {sorted(bad)} do not exist in {ins.id}")
                cw = a.get("crosswalk")
                if cw is not None and (cw not in walks or walks[cw]["from"] != a["instrument"]):
                    out.append(f"{where}: crosswalk {cw!r} is not defined from {a['instrument']}")
    return out


def _build(data, path) -> Policy:
    walks = {c["id"]: Crosswalk(c["id"], c["from"], c["to"], {int(k): v for k, v in c["levels"].items()},
                                c["source"]) for c in data.get("crosswalks", [])}
    purposes = {}
    for dept, ps in data["purposes"].items():
        for pid, p in ps.items():
            acc = tuple(Accept(a["instrument"], tuple(a["versions"]) if "versions" in a else None,
                               tuple(a["issuers"]), tuple(a["levels"]) if "levels" in a else None,
                               a["max_age_days"], a["min_assessors"],
                               walks.get(a["crosswalk"]) if "crosswalk" in a else None) for a in p["accept"])
            purposes[(dept, pid)] = Purpose(dept, pid, p["label"], acc)
    return Policy(data["policy"], str(data["version"]), dict(data["departments"]), purposes, path)
