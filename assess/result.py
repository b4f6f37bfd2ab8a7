"""The result of scoring one assessment, as callers, the store and other departments read it."""
from __future__ import annotations

from dataclasses import dataclass

from ._version import __version__ as ENGINE_VERSION
from ._reference import STATUS_NAMES, Evaluation


@dataclass(frozen=True)
class RuleFired:
    id: str
    clause: str
    label: str
    reason: str
    effect: str


@dataclass(frozen=True)
class Result:
    """Item points, domain scores, total, levels, the rules that fired and a readable trace."""

    instrument: str
    version: str
    definition_hash: str
    settings: dict
    status: str
    items: dict          # item id → points (None when not answered)
    domains: dict        # domain id, e.g. "B.1" → score (None when a domain item is unanswered)
    scores: dict         # derived score id, e.g. "total" → value
    total: int | None
    level_initial: int | None
    level: int | None
    level_label: str | None
    rules: tuple         # RuleFired, in the instrument's rule order
    problems: tuple      # Problem (warnings and reasons for a missing level)
    trace: tuple         # steps: {"clause", "zh", "en"}
    categories: dict = None   # category id → {"value", "label"} or None (e.g. Katz letter grade)
    level_reason: str | None = None   # why an ok total has no level (a span the band set leaves unlabelled)
    fields: dict = None       # text fields: stored as given, never scored (e.g. the PHQ-9 difficulty question)
    skipped: tuple = ()       # items the instrument's own rule skipped (count 0; e.g. Lawton C–E for men)
    total_label: str = "总分"   # what ``total`` is: the level score's label (a grade table's value is no total)

    @classmethod
    def from_evaluation(cls, ev: Evaluation) -> "Result":
        ins = ev.instrument
        rules = tuple(RuleFired(f.rule.id, f.rule.clause, f.rule.label.zh, f.reason, f.rule.effect)
                      for f in ev.fired)
        return cls(
            instrument=ins.id, version=ins.version, definition_hash=ins.definition_hash,
            settings={f"{ins.id}.{k}": v for k, v in ins.setting_values.items()},
            status=STATUS_NAMES[ev.status], items=dict(ev.item_points), domains=dict(ev.domains),
            scores=dict(ev.scores), total=ev.total, level_initial=ev.level_initial, level=ev.level,
            level_label=ins.band(ev.level).label.zh if ev.level is not None else None,
            rules=rules, problems=tuple(ev.problems), trace=tuple(ev.trace),
            categories={c.id: None if ev.categories.get(c.id) is None
                        else {"value": ev.categories[c.id], "label": c.label_of(ev.categories[c.id]).zh}
                        for c in ins.categories},
            level_reason=ev.level_reason.zh if ev.level_reason is not None else None,
            fields={f.id: ev.answers.get(f.id) for f in ins.fields if f.type == "text"},
            skipped=tuple(ev.skipped),
            total_label=next((x.label.zh for x in (*ins.scores, *ins.domains) if x.id == ins.level_score
                              and getattr(x, "kind", "sum") != "sum"), "总分"))

    def to_dict(self) -> dict:
        return {
            "instrument": self.instrument, "version": self.version, "definition_hash": self.definition_hash,
            "engine_version": ENGINE_VERSION, "settings": dict(self.settings), "status": self.status,
            "items": dict(self.items), "domains": dict(self.domains), "scores": dict(self.scores),
            "total": self.total, "level_initial": self.level_initial, "level": self.level,
            "level_label": self.level_label,
            "rules": [r.__dict__ for r in self.rules],
            "problems": [p.to_dict() for p in self.problems],
            "trace": [dict(s) for s in self.trace],
            **({"categories": dict(self.categories)} if self.categories else {}),
            **({"level_reason": self.level_reason} if self.level_reason else {}),
            **({"fields": dict(self.fields)} if self.fields else {}),
            **({"skipped": list(self.skipped)} if self.skipped else {}),
        }

    def summary_zh(self) -> str:
        """A readable Chinese summary: the result, then the trace that explains it."""
        head = (f"{self.instrument}（{self.version}）  {self.total_label} {self.total}  "
                f"初步等级 {self.level_initial}  最终等级 {self.level} {self.level_label or ''}").rstrip()
        if self.status == "ok" and self.level_reason:
            head = f"{self.instrument}（{self.version}）  {self.total_label} {self.total}  不分级（{self.level_reason}）"
        if self.status != "ok":
            head = f"{self.instrument}（{self.version}）  未评定等级（{self.status}）"
        lines = [head, ""] + [f"  [{s['clause']}] {s['zh']}" for s in self.trace]
        if self.problems:
            lines += ["", "问题："] + [f"  {p.code.name} {p.message}" for p in self.problems]
        return "\n".join(lines)
