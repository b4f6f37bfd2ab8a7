"""What ``assess instruments show`` prints: an instrument as its reader needs to check it against
the standard (items and points, skips, rule inputs, derived scores, bands, rules, settings in force)."""
from __future__ import annotations

from . import model as m
from .instrument import reachable_values


def as_dict(ins: m.Instrument) -> dict:
    return {"id": ins.id, "version": ins.version, "title": ins.title.to_dict(), "direction": ins.direction,
            "source": dict(ins.source), "effective_date": ins.effective_date,
            "notes": [n.to_dict() for n in ins.notes], "settings": ins.describe_settings(),
            "items": [{"id": i.id, "domain": i.domain, "label": i.label.to_dict(),
                       "options": [{"code": o.raw, "points": o.points, "label": o.label.zh} for o in i.options],
                       **({"skip_when": _condition(i.skip_when)} if i.skip_when is not None else {})}
                      for i in ins.items],
            "fields": [{"id": f.id, "type": f.type, "label": f.label.to_dict(), "required": f.required,
                        "codes": f.codes} for f in ins.fields],
            "scores": [{"id": s.id, "kind": s.kind, "label": s.label.to_dict(), "clause": s.clause,
                        "of": list(s.sum), "detail": _score_detail(s)} for s in ins.scores],
            "level_score": ins.level_score,
            "bands": [{"level": b.level, "min": b.min, "max": b.max, "label": b.label.to_dict()} for b in ins.bands],
            "unclassified": [{"min": u.min, "max": u.max, "reason": u.reason.to_dict()} for u in ins.unclassified],
            "rules": [{"id": r.id, "clause": r.clause, "label": r.label.zh, "effect": r.effect} for r in ins.rules]}


def lines(ins: m.Instrument) -> list[str]:
    reach = reachable_values(ins)
    out = [f"{ins.id} v{ins.version}  {ins.title.zh}  ({ins.title.en})",
           f"来源: {ins.source['citation']}",
           f"生效日期: {ins.effective_date or '未核实'}  方向: {ins.direction}", ""]
    for d in ins.domains:
        values = reach.get(d.id) or {0}
        out.append(f"{d.id} {d.label.zh}  ({min(values)}–{max(values)})")
        for i in (i for i in ins.items if i.domain == d.id):
            opts = " · ".join(f"{o.raw}={o.points}" for o in i.options)
            skip = f"   [跳过条件: {_condition(i.skip_when)}]" if i.skip_when is not None else ""
            out.append(f"  {i.id} {i.label.zh}: {opts}{skip}")
    if ins.fields:
        out.append("\n规则输入与记录字段 (fields):")
        for f in ins.fields:
            what = {"icd10_list": "ICD-10 诊断编码", "text": "文本，仅记录不计分"}.get(f.type) or (
                f"整数 {f.codes[0]}–{f.codes[-1]}" if f.type == "integer" else " · ".join(str(c) for c in f.codes))
            out.append(f"  {f.id} {f.label.zh}: {what}{'' if f.required else '（非必填）'}")
    if ins.scores:
        out.append("\n派生分数 (scores):")
        for s in ins.scores:
            out.append(f"  {s.id} {s.label.zh} [{s.kind}{' ' + s.clause if s.clause else ''}]: {_score_detail(s)}")
    out.append(f"\n等级 (按 {ins.level_score}):")
    out += [f"  {b.level} {b.label.zh}: {b.min}–{b.max}" for b in ins.bands]
    out += [f"  不分级 {u.min}–{u.max}: {u.reason.zh}" for u in ins.unclassified]
    out.append("\n规则:")
    out += [f"  {r.id} [{r.clause}] {r.label.zh} ({r.effect})" for r in ins.rules]
    out.append("\n设置 (settings):")
    for s in ins.describe_settings():
        mark = "" if s["value"] == s["default"] or s["value"] is None else "  (changed)"
        value = s["value"] if s["value"] is not None else "未提供 (not given)"
        out.append(f"  {s['name']} = {value}{mark}   [{s['status']}; allowed: {', '.join(s['allowed'])};"
                   f" default {s['default'] if s['default'] is not None else 'none'}]")
    return out


def _score_detail(s: m.Score) -> str:
    if s.kind == "sum":
        return " + ".join(s.sum)
    if s.kind in ("max", "min"):
        return " 与 ".join(s.sum) + (" 取较大者" if s.kind == "max" else " 取较小者")
    if s.kind == "weighted":
        return " + ".join(f"{w}×{p}" for p, w in zip(s.sum, s.weights))
    if s.kind == "bands":
        return f"{s.sum[0]}: " + " · ".join(
            f"{lo}–{hi}→{v}" + (f" {s.value_labels[v].zh}" if v in s.value_labels else "") for lo, hi, v in s.bands)
    if s.kind == "matrix":
        decided = sum(c is not None for c in s.cells)
        return (f"{' × '.join(f'{p} {lo}–{hi}' for p, (lo, hi) in zip(s.sum, s.axes))} 组合表，{len(s.cells)} 格"
                + (f"（{len(s.cells) - decided} 格不判定）" if decided < len(s.cells) else ""))
    return " · ".join(f"情形{k + 1}→{v}" for k, (v, _) in enumerate(s.cases)) + \
        (f" · 其余→{s.otherwise}" if s.otherwise is not None else "")


def _condition(cond) -> str:
    if isinstance(cond, (m.AnyOf, m.AllOf)):
        sep = " 或 " if isinstance(cond, m.AnyOf) else " 且 "
        return "(" + sep.join(_condition(c) for c in cond.conditions) + ")"
    if isinstance(cond, m.CodeIn):
        return f"{cond.field} ∈ {{{', '.join(sorted(cond.keys))}}}"
    return repr(cond)
