"""The HTML screening report: one self-contained file, charts embedded as base64 PNG.

Charts use a CJK font when one is installed (Debian: ``apt-get install fonts-noto-cjk``); without
one they fall back to English labels instead of printing empty boxes.
"""
from __future__ import annotations

import base64
import html
import io
from functools import lru_cache

import numpy as np

from ..errors import Code
from .stats import NO_REGION

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Source Han Sans SC", "SimHei", "Microsoft YaHei", "PingFang SC")
LEVEL_COLOURS = ("#2e7d32", "#9ccc65", "#ffca28", "#fb8c00", "#c62828")
NO_LEVEL_COLOUR = "#9e9e9e"
MAX_REGIONS = 40


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    from matplotlib import font_manager
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in CJK_FONTS if f in installed), None)


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    font = cjk_font()
    plt.rcParams["font.family"] = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _t(zh: str, en: str) -> str:
    return zh if cjk_font() else en


def charts(summary) -> dict:
    plt = _plt()
    st = summary.stats
    ins = st.instrument
    levels = st.level_rows()
    out = {}

    fig, ax = plt.subplots(figsize=(7, 3.4))
    names = [f"{lv} {label}" if cjk_font() else f"level {lv}" for lv, label, _, _ in levels]
    counts = [c for _, _, c, _ in levels]
    colours = [NO_LEVEL_COLOUR if lv == "—" else LEVEL_COLOURS[i % len(LEVEL_COLOURS)] for i, (lv, *_) in enumerate(levels)]
    bars = ax.barh(names[::-1], counts[::-1], color=colours[::-1])
    for b, (_, _, c, pct) in zip(bars, levels[::-1]):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {c:,}（{pct:.1f}%）" if cjk_font()
                else f" {c:,} ({pct:.1f}%)", va="center", fontsize=9)
    ax.set_xlabel(_t("人数", "people"))
    ax.set_title(_t("最终等级分布", "Final level"))
    ax.margins(x=0.25)
    out["levels"] = _png(fig)

    regions = sorted(st.regions.items(), key=lambda kv: -kv[1].sum())[:MAX_REGIONS]
    if regions:
        fig, ax = plt.subplots(figsize=(8, 0.32 * len(regions) + 1.4))
        labels = [_t(r, "(blank)") if r == NO_REGION else r for r, _ in regions][::-1]
        shares = np.array([v / max(1, v.sum()) * 100 for _, v in regions])[::-1]
        left = np.zeros(len(regions))
        for lv in range(shares.shape[1]):
            ax.barh(labels, shares[:, lv], left=left, color=LEVEL_COLOURS[lv % 5], label=names[lv])
            left += shares[:, lv]
        ax.set_xlim(0, 100)
        ax.set_xlabel(_t("占比（%）", "share (%)"))
        ax.set_title(_t("各行政区划的等级构成", "Levels by region"))
        ax.legend(ncol=5, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.0 / max(4, len(regions))))
        out["regions"] = _png(fig)

    ids = [d.id for d in ins.domains] + [s.id for s in ins.scores]
    fig, axes = plt.subplots(1, len(ids), figsize=(2.6 * len(ids), 2.6))
    for ax, sid in zip(np.atleast_1d(axes), ids):
        counts = st.scores[sid]
        ax.bar(np.arange(counts.size), counts, width=1.0, color="#5c6bc0")
        lab = next((d.label.zh for d in ins.domains if d.id == sid), None) or next(
            (s.label.zh for s in ins.scores if s.id == sid), sid)
        ax.set_title(f"{sid} {lab}" if cjk_font() else sid, fontsize=9)
        ax.set_xlim(-0.5, counts.size - 0.5)
        ax.tick_params(labelsize=7)
    fig.suptitle(_t("得分分布", "Score distributions"))
    out["scores"] = _png(fig)

    if st.errors or st.warnings:
        codes = sorted(set(st.errors) | set(st.warnings))
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(codes) + 1.2))
        vals = [st.errors.get(c, 0) + st.warnings.get(c, 0) for c in codes]
        colours = ["#c62828" if c in st.errors else "#f9a825" for c in codes]
        tick = [f"{c} {Code[c].title}" for c in codes]
        ax.barh(tick[::-1], vals[::-1], color=colours[::-1])
        ax.set_xlabel(_t("问题数", "problems"))
        ax.set_title(_t("拒绝与警告（按错误代码）", "Rejects and warnings by code"))
        out["problems"] = _png(fig)
    return out


def write_report(summary, path) -> None:
    st = summary.stats
    ins = st.instrument
    pics = charts(summary)
    e = html.escape
    rows = "".join(f"<tr><td>{lv}</td><td>{e(label)}</td><td class=n>{c:,}</td><td class=n>{pct:.1f}%</td></tr>"
                   for lv, label, c, pct in st.level_rows())
    reg_rows = []
    for code, v in sorted(st.regions.items()):
        tot = max(1, int(v.sum()))
        cells = "".join(f"<td class=n>{int(x):,}<br><small>{100 * x / tot:.1f}%</small></td>" for x in v)
        reg_rows.append(f"<tr><td>{e(code)}</td><td class=n>{int(v.sum()):,}</td>{cells}</tr>")
    prob_rows = "".join(
        f"<tr><td>{c}</td><td>{e(Code[c].title)}</td><td>{sev}</td><td class=n>{n:,}</td></tr>"
        for counter, sev in ((st.errors, "拒绝 error"), (st.warnings, "警告 warning"))
        for c, n in sorted(counter.items()))
    img = lambda key: f'<img src="data:image/png;base64,{pics[key]}">' if key in pics else ""  # noqa: E731
    level_heads = "".join(f"<th>{b.level}</th>" for b in sorted(ins.bands, key=lambda b: b.level))
    doc = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>老年人能力评估筛查报告</title>
<style>body{{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em}}
.n{{text-align:right}}.big{{font-size:1.3em}}img{{max-width:100%}}</style></head><body>
<h1>老年人能力评估筛查报告</h1>
<p>{e(ins.title.zh)}（{e(ins.id)} v{e(ins.version)}）· 输入格式 {e(summary.source_kind)} · 用时 {summary.seconds:.1f} 秒</p>
<p class=big>读取 <b>{st.rows_read:,}</b> 行 = 已评分 <b>{st.scored:,}</b> 行 + 已拒绝 <b>{st.rejected:,}</b> 行；
警告 {sum(st.warnings.values()):,} 条</p>
<h2>最终等级</h2>{img("levels")}
<table><tr><th>等级</th><th>名称</th><th>人数</th><th>占比</th></tr>{rows}</table>
<h2>各行政区划</h2>{img("regions")}
<table><tr><th>区划代码</th><th>人数</th>{level_heads}</tr>{"".join(reg_rows)}</table>
<h2>得分分布</h2>{img("scores")}
<h2>拒绝与警告</h2>{img("problems")}
<table><tr><th>代码</th><th>含义</th><th>类别</th><th>条数</th></tr>{prob_rows}</table>
<p>逐条明细见 {e(str(summary.rejects.name))}（行号、列、取值、代码、说明；公民身份号码已遮盖）。</p>
</body></html>"""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
