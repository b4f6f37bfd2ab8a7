"""JSON API for systems: score, submit, look up a recognised grade. Bearer tokens only.

Every error, from every route here, is the one body built by :func:`web.errors.api_error`.
The OpenAPI description is served at ``/api/openapi.json``.
"""
from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, current_app, g, jsonify, request

import assess
from assess import idnumber
from assess.store import records as store_records

from . import forms, stores
from .auth import token_required
from .errors import WebCode, api_error
from .openapi import spec

bp = Blueprint("api", __name__, url_prefix="/api")
_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@bp.errorhandler(BadRequest)
def _bad(exc: BadRequest):
    return api_error(exc.status, WebCode.WEB_004, str(exc))


def _body(*required: str) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object (Content-Type: application/json).", 400)
    absent = [k for k in required if body.get(k) in (None, "")]
    if absent:
        raise BadRequest(f"Missing field(s): {', '.join(absent)}.")
    return body


def _instrument(body):
    settings = body.get("settings") or None
    if settings is not None and not isinstance(settings, dict):
        raise BadRequest("settings must be an object of NAME: VALUE.")
    ins = assess.load_instrument(str(body["instrument"]), body.get("version") or None)
    return ins.with_settings(settings) if settings else ins


def _answers(body) -> dict:
    if not isinstance(body.get("answers"), dict):
        raise BadRequest('answers must be an object: {"B.1.1": 4, …}.')
    return body["answers"]


@bp.route("/openapi.json")
def openapi():
    return jsonify(spec())


@bp.route("/instruments")
@token_required()
def instruments():
    return jsonify([{"id": r.id, "version": r.version, "title": r.title, "title_en": r.title_en,
                     "effective_date": r.effective_date} for r in forms.instruments()])


@bp.route("/score", methods=("POST",))
@token_required()
def score():
    body = _body("instrument", "answers")
    res = assess.score_one(_instrument(body), _answers(body), allow_incomplete=bool(body.get("allow_incomplete")))
    return jsonify(res.to_dict())


@bp.route("/submissions", methods=("POST",))
@token_required("assessor")
def submit():
    body = _body("submission_id", "instrument", "answers", "id_number", "assessed_on", "assessors", "reason")
    sid = str(body["submission_id"])
    if not _SUBMISSION_ID.match(sid):
        raise BadRequest("submission_id must be 8–64 characters of A–Z, a–z, 0–9, '-' or '_' (a UUID will do).")
    assessors = body["assessors"]
    need = current_app.config["ASSESSORS_REQUIRED"]
    if (not isinstance(assessors, list) or not all(isinstance(a, str) and a.strip() for a in assessors)
            or len({a.strip() for a in assessors}) < need):
        raise BadRequest(f"assessors must list at least {need} different people who signed.")
    if body["reason"] not in store_records.REASONS:
        raise BadRequest(f"reason must be one of {', '.join(store_records.REASONS)}.")
    try:
        on = dt.date.fromisoformat(str(body["assessed_on"]))
    except ValueError:
        raise BadRequest("assessed_on must be a date, YYYY-MM-DD.") from None
    if on > store_records.china_today():
        raise BadRequest("assessed_on is in the future.")
    res = assess.score_one(_instrument(body), _answers(body))
    rid, new = stores.submit(sid, res, body["answers"], id_number=str(body["id_number"]), assessed_on=on.isoformat(),
                             assessors=[a.strip() for a in assessors],
                             organisation=str(body.get("organisation") or g.user.organisation or g.user.department),
                             reason=body["reason"], user_id=g.user.id)
    out = {"record_id": rid, "stored": new, "id_number_masked": idnumber.mask(str(body["id_number"])),
           "level": res.level, "level_label": res.level_label, "total": res.total, "result": res.to_dict()}
    return jsonify(out), 201 if new else 200


@bp.route("/recognitions", methods=("POST",))
@token_required("officer")
def recognitions():
    body = _body("id_number", "purpose")
    on = body.get("on")
    if on is not None:
        try:
            on = dt.date.fromisoformat(str(on))
        except ValueError:
            raise BadRequest("on must be a date, YYYY-MM-DD.") from None
    rec = assess.recognise(str(body["id_number"]), g.user.department, str(body["purpose"]), on,
                           store=stores.get_store(), actor=g.user.username)
    stores.log_lookup(g.user.id, g.user.department, str(body["purpose"]), rec.person_key, rec.reason.value)
    out = rec.to_dict()
    out["id_number_masked"] = idnumber.mask(str(body["id_number"]))
    return jsonify(out)
