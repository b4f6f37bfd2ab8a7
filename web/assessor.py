"""Tablet pages for assessors (find or register a person, fill a form one domain per step, sign and
submit) and for reviewers (the department's records, the printable result, revocation)."""
from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

import assess
from assess.errors import AnswerError, AssessError
from assess.store import records as store_records

from . import accounts, drafts, forms, stores
from .auth import login_required
from .errors import WebCode, api_error

bp = Blueprint("assessor", __name__, url_prefix="/assess")
REASON_ZH = {"first": "首次评估", "routine": "常规评估", "change": "状况变化评估", "review": "复评"}


def running(ins, answers: dict) -> dict:
    """The running scores shown while answering: assess.score_one with incomplete answers allowed."""
    try:
        res = assess.score_one(ins, answers, allow_incomplete=True)
    except AnswerError as exc:
        return {"status": "invalid", "domains": {}, "total": None, "level": None, "level_label": None,
                "problems": [p.to_dict() for p in exc.problems]}
    return {"status": res.status, "domains": res.domains, "total": res.total, "level": res.level,
            "level_label": res.level_label,
            "problems": [p.to_dict() for p in res.problems if p.code.name != "RESP_003"],
            "missing": sum(1 for p in res.problems if p.code.name == "RESP_003")}


def _draft(did: str) -> dict:
    d = drafts.get_draft(did)
    if d is None or d["owner_id"] != g.user.id:
        abort(404, description="没有这份评估草稿。")
    return d


def _instrument(d):
    return assess.load_instrument(d["instrument"], d["version"])


@bp.route("/")
@login_required("assessor")
def home():
    return render_template("assessor_home.html", drafts=drafts.drafts_of(g.user.id),
                           done=[d for d in drafts.drafts_of(g.user.id, open_only=False) if d["record_id"]][:10])


@bp.route("/people", methods=("POST",))
@login_required("assessor")
def find_person():
    number, name = request.form.get("id_number", ""), request.form.get("name", "")
    try:
        person = drafts.find_person(number) or drafts.register_person(number, name, g.user.id)
    except drafts.DraftError as exc:
        flash(str(exc), "error")
        return render_template("assessor_home.html", drafts=drafts.drafts_of(g.user.id), done=[]), 422
    return redirect(url_for("assessor.person", pid=person["id"]))


@bp.route("/people/<int:pid>")
@login_required("assessor")
def person(pid):
    p = drafts.get_person(pid)
    if p is None:
        abort(404, description="没有此人的登记。")
    return render_template("person.html", person=p, drafts=drafts.person_drafts(pid),
                           instruments=forms.instruments(), reasons=REASON_ZH,
                           default_instrument=current_app.config["DEFAULT_INSTRUMENT"],
                           today=store_records.china_today().isoformat())


@bp.route("/people/<int:pid>/drafts", methods=("POST",))
@login_required("assessor")
def new_draft(pid):
    if drafts.get_person(pid) is None:
        abort(404)
    iid, _, version = request.form.get("instrument", "").partition("@")
    reason = request.form.get("reason", "")
    try:
        on = dt.date.fromisoformat(request.form.get("assessed_on", ""))
    except ValueError:
        on = None
    if on is None or on > store_records.china_today() or reason not in store_records.REASONS:
        flash("请填写评估日期（不晚于今天）并选择评估原因。", "error")
        return redirect(url_for("assessor.person", pid=pid))
    ins = assess.load_instrument(iid, version or None)     # unknown instrument → INSTR_006 page
    did = drafts.create_draft(pid, g.user.id, ins.id, ins.version, on.isoformat(), reason)
    return redirect(url_for("assessor.step", did=did, n=0))


def _render_step(d, ins, n, status=200):
    steps = forms.steps(ins)
    person = drafts.get_person(d["person_id"])
    ctx = {"draft": d, "ins": ins, "steps": steps, "n": n, "person": person, "forms": forms, "run": running(ins, d["answers"]),
               "dmax": forms.domain_max(ins), "tmax": forms.score_max(ins, ins.level_score), "reasons": REASON_ZH,
               "required": current_app.config["ASSESSORS_REQUIRED"], "highlight": status == 422 or request.args.get("check") == "1"}
    if n >= len(steps):
        ctx["missing"] = [(s, q) for s in steps for q in forms.missing(s, d["answers"])]
        return render_template("review.html", **ctx), status
    return render_template("step.html", step=steps[n], **ctx), status


@bp.route("/drafts/<did>/step/<int:n>", methods=("GET", "POST"))
@login_required("assessor")
def step(did, n):
    d = _draft(did)
    if d["record_id"]:
        return redirect(url_for("assessor.record", rid=d["record_id"]))
    ins = _instrument(d)
    steps = forms.steps(ins)
    if n > len(steps):
        abort(404)
    if request.method == "GET":
        return _render_step(d, ins, n)
    if n == len(steps):
        abort(405)
    s = steps[n]
    d["answers"] = forms.merge(d["answers"], forms.parse(s, request.form), ins)
    drafts.save_answers(did, d["answers"])
    action = request.form.get("action", "next")
    if action == "prev":
        return redirect(url_for("assessor.step", did=did, n=max(n - 1, 0)))
    if action == "save":
        flash("已保存。", "info")
        return redirect(url_for("assessor.step", did=did, n=n))
    gaps = forms.missing(s, d["answers"])
    if gaps:
        # Post/redirect/get: reloading the page must never re-post a stale copy of the answers.
        flash("以下必答项尚未回答：" + "、".join(f"{q.id} {q.label.zh}" for q in gaps), "error")
        return redirect(url_for("assessor.step", did=did, n=n, check=1))
    return redirect(url_for("assessor.step", did=did, n=n + 1))


@bp.route("/drafts/<did>/answers", methods=("POST",))
@login_required("assessor")
def autosave(did):
    """The tablet's autosave: merge the answers sent, keep them, and return the running scores."""
    d = _draft(did)
    if d["record_id"]:
        return api_error(409, WebCode.WEB_004, "This draft was already submitted.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("answers"), dict):
        return api_error(400, WebCode.WEB_004, 'Send {"answers": {"B.1.1": "4", …}}.')
    ins = _instrument(d)
    answers = forms.merge(d["answers"], body["answers"], ins)
    saved_at = drafts.save_answers(did, answers)
    return jsonify({"saved_at": saved_at, "running": running(ins, answers)})


@bp.route("/drafts/<did>/submit", methods=("POST",))
@login_required("assessor")
def submit(did):
    d = _draft(did)
    if d["record_id"]:
        return redirect(url_for("assessor.record", rid=d["record_id"]))
    ins = _instrument(d)
    n = len(forms.steps(ins))
    cfg = current_app.config
    try:
        result = assess.score_one(ins, d["answers"])
    except AnswerError as exc:
        for p in exc.problems:
            flash(f"{p.code.name}：{p.message}", "error")
        return _render_step(d, ins, n, 422)
    if request.form.get("confirm") != "1":
        flash("请勾选确认声明。", "error")
        return _render_step(d, ins, n, 422)
    signers = [g.user]
    if cfg["ASSESSORS_REQUIRED"] > 1:
        name, address = request.form.get("cosigner", "").strip(), request.remote_addr or "-"
        if accounts.locked(name.lower(), address, cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_WINDOW_SECONDS"]):
            flash("第二评估员登录失败次数过多，请稍后再试。", "error")
            return _render_step(d, ins, n, 429)
        co = accounts.authenticate(name, request.form.get("cosigner_password", ""), address)
        if co is None or co.role != "assessor" or co.department != g.user.department or co.id == g.user.id:
            flash("第二评估员签名无效：须为本部门另一位评估员，并输入其本人密码。", "error")
            return _render_step(d, ins, n, 422)
        signers.append(co)
    person = drafts.get_person(d["person_id"])
    rid, _new = stores.submit(did, result, d["answers"], id_number=drafts.id_number(person),
                              assessed_on=d["assessed_on"], assessors=[f"{u.display_name}（{u.username}）"
                                                                       for u in signers],
                              organisation=g.user.organisation or g.user.department, reason=d["reason"],
                              user_id=g.user.id, cosigner_id=signers[1].id if len(signers) > 1 else None)
    drafts.mark_submitted(did, rid)
    current_app.logger.info("submitted draft %s… as record %s… by %s", did[:8], rid[:12], g.user.username)
    flash("评估结果已签名保存。", "info")
    return redirect(url_for("assessor.record", rid=rid))


@bp.route("/records")
@login_required("reviewer")
def records():
    return render_template("records.html", rows=stores.recent_submissions(g.user.department))


def _may_read(sub, rec) -> bool:
    if g.user.role == "reviewer":
        return rec["department"] == g.user.department
    return sub is not None and g.user.id in (sub["user_id"], sub["cosigner_id"])


@bp.route("/records/<rid>")
@login_required("assessor", "reviewer")
def record(rid):
    rec = stores.get_record(rid)
    sub = stores.submission(rid)
    if rec is None or not _may_read(sub, rec):
        abort(404, description="没有这条评估记录，或您无权查看。")
    ins = assess.load_instrument(rec["instrument"], rec["version"])
    return render_template("record.html", rec=rec, res=rec["result"], sub=sub, ins=ins, steps=forms.steps(ins),
                           forms=forms, dmax=forms.domain_max(ins), tmax=forms.score_max(ins, ins.level_score),
                           reasons=REASON_ZH)


@bp.route("/records/<rid>/revoke", methods=("POST",))
@login_required("reviewer")
def revoke(rid):
    rec = stores.get_record(rid)
    if rec is None or rec["department"] != g.user.department:
        abort(404)
    reason = request.form.get("reason", "").strip()
    if not reason:
        flash("请填写撤销原因。", "error")
        return redirect(url_for("assessor.record", rid=rid))
    try:
        stores.revoke(rid, reason, actor=g.user.username)
        flash("记录已撤销。", "info")
    except AssessError as exc:
        flash("；".join(p.message for p in exc.problems), "error")
    return redirect(url_for("assessor.record", rid=rid))
