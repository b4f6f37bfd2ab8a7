"""Errors at the web boundary (STYLE §7): one JSON body for every API route, flash-and-render for pages.

:func:`api_error` is the only builder of the JSON error body::

    {"error": {"status": 422, "code": "RESP_003", "title": "...", "message": "...",
               "problems": [{"code": "RESP_003", "title": "...", "message": "...", "item": "B.1.1"}]}}

``code`` is an assess code (``RESP_002``, ``STORE_005`` …) when the library raised one, else a
``WEB_`` code from :class:`WebCode`. Codes are stable and never reused.
"""
from __future__ import annotations

import enum

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from assess.errors import AssessError, CodeCatalogue


class WebCode(CodeCatalogue, enum.Enum):
    WEB_001 = ("authentication required", "Send 'Authorization: Bearer <token>' with a valid, unrevoked token.")
    WEB_002 = ("not allowed for this role", "{detail} Ask an administrator for an account with the right role.")
    WEB_003 = ("not found", "{detail}")
    WEB_004 = ("malformed request", "{detail}")
    WEB_005 = ("too many failed logins", "Too many failed logins; try again in {minutes} minutes.")
    WEB_006 = ("CSRF token missing or wrong", "The form has expired or was not sent by this site; reload and retry.")
    WEB_007 = ("method not allowed", "{detail}")
    WEB_008 = ("internal error", "The server failed; the error was logged. Retry, then report it.")
    WEB_009 = ("session expired", "The session has expired; log in again.")
    WEB_010 = ("request too large", "The request body is larger than {limit} bytes.")


# HTTP status for an assess code's family: bad input is 422, a missing record 404.
_STATUS = {"STORE_009": 404, "INSTR_006": 404, "STORE_001": 503, "STORE_002": 503, "STORE_003": 503,
           "STORE_004": 503, "STORE_006": 503, "STORE_010": 403, "STORE_011": 409}


def status_for(exc: AssessError) -> int:
    return _STATUS.get(exc.code.name, 422)


def api_error(status: int, code, message: str | None = None, problems=None):
    """The one JSON error response: ``code`` is a WebCode, an assess Code or an AssessError."""
    if isinstance(code, AssessError):
        problems = [p.to_dict() for p in code.problems]
        message = message or problems[0]["message"]
        code = code.code
    body = {"status": status, "code": code.name, "title": code.title,
            "message": message if message is not None else code.format(),
            "problems": problems if problems is not None else []}
    resp = jsonify({"error": body})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="assess"'
    return resp


_HTTP = {400: WebCode.WEB_004, 401: WebCode.WEB_001, 403: WebCode.WEB_002, 404: WebCode.WEB_003,
         405: WebCode.WEB_007, 413: WebCode.WEB_010}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.is_json


def init_app(app) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            code = _HTTP.get(exc.code, WebCode.WEB_004)
            detail = exc.description or ""
            msg = code.format(detail=detail, limit=app.config["MAX_CONTENT_LENGTH"]) if "{" in code.value[1] \
                else code.format()
            return api_error(exc.code or 500, code, msg)
        return render_template("error.html", status=exc.code, title=exc.name, message=exc.description), exc.code

    @app.errorhandler(AssessError)
    def assess_error(exc: AssessError):
        status = status_for(exc)
        if wants_json():
            return api_error(status, exc)
        return render_template("error.html", status=status, title=exc.code.name,
                               message="；".join(p.message for p in exc.problems)), status

    @app.errorhandler(Exception)
    def internal(exc: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return api_error(500, WebCode.WEB_008)
        return render_template("error.html", status=500, title="服务器错误", message=WebCode.WEB_008.format()), 500
