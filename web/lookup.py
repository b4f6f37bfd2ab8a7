"""Grade look-up for department officers (e.g. an insurance office): read-only.

The 公民身份号码 comes in a POST body, never in a URL, and is shown masked. The grade shown is
what :func:`assess.recognise` recognises for the officer's department and the chosen purpose,
with its source record and the reason; the store audits reads of other departments' records and
this app logs every look-up.
"""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, flash, g, render_template, request

import assess
from assess import idnumber
from assess.store.records import china_today

from . import stores
from .auth import login_required

bp = Blueprint("lookup", __name__, url_prefix="/lookup")
REASON_ZH = {"recognised": "可以采信", "no_record": "没有评估记录", "revoked": "记录已撤销",
             "signature_invalid": "签名校验失败", "instrument_not_accepted": "评估量表或版本不被采信",
             "issuer_not_accepted": "发证部门不被采信", "level_not_accepted": "该等级不在采信范围",
             "too_few_assessors": "评估员人数不足", "expired": "评估结果已过有效期"}


@bp.route("/", methods=("GET", "POST"))
@login_required("officer")
def form():
    purposes = stores.purposes(g.user.department)
    ctx = {"purposes": purposes, "today": china_today().isoformat(), "rec": None, "masked": None, "reasons": REASON_ZH}
    if request.method == "GET":
        return render_template("lookup.html", **ctx)
    number = request.form.get("id_number", "")
    purpose = request.form.get("purpose", "")
    on = request.form.get("on") or None
    chk = idnumber.check(number)
    if not chk.ok:
        flash(f"公民身份号码 {idnumber.mask(number)} 无效：{idnumber.REASON_ZH[chk.reason]}。请核对证件。", "error")
        return render_template("lookup.html", **ctx), 422
    if purpose not in dict(purposes):
        flash("请选择查询用途。", "error")
        return render_template("lookup.html", **ctx), 422
    try:
        on_date = dt.date.fromisoformat(on) if on else None
    except ValueError:
        flash("日期格式应为 YYYY-MM-DD。", "error")
        return render_template("lookup.html", **ctx), 422
    rec = assess.recognise(chk.number, g.user.department, purpose, on_date, store=stores.get_store(),
                           actor=g.user.username)
    stores.log_lookup(g.user.id, g.user.department, purpose, rec.person_key, rec.reason.value)
    ctx.update(rec=rec, masked=idnumber.mask(chk.number), purpose_label=dict(purposes)[purpose])
    return render_template("lookup.html", **ctx)
