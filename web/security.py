"""CSRF tokens, security headers and session expiry, applied to every request.

CSRF: a random token per session, sent back in a hidden ``csrf_token`` field (forms) or an
``X-CSRF-Token`` header (the tablet's autosave calls), compared in constant time before any
unsafe method. The JSON API under ``/api/`` takes bearer tokens only, never the session cookie,
so it has no CSRF surface and is exempt; its requests do not even open the session (:class:`SessionInterface`).
"""
from __future__ import annotations

import hmac
import secrets
import time

from flask import abort, current_app, flash, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from . import accounts
from .errors import WebCode, api_error, wants_json

SAFE = ("GET", "HEAD", "OPTIONS")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions for pages; the JSON API under ``/api/`` neither reads nor sets the cookie.

    The API authenticates by bearer token only, so a session cookie sent with an API call is ignored
    rather than decoded (which cost a tenth of a millisecond a call: a new signing serializer each time).
    """

    def open_session(self, app, request):
        if request.path.startswith("/api/"):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if request.path.startswith("/api/"):
            return
        super().save_session(app, session, response)


def csrf_token() -> str:
    tok = session.get("csrf")
    if tok is None:
        tok = session["csrf"] = secrets.token_urlsafe(32)
    return tok


def _csrf_ok() -> bool:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    have = session.get("csrf")
    return bool(have) and bool(sent) and hmac.compare_digest(str(sent), have)


def start_session(user_id: int) -> None:
    """A fresh session for a login: a server-side session id, a new CSRF token, login and last-seen times."""
    session.clear()
    session.permanent = True
    now = time.time()
    session.update(uid=user_id, sid=accounts.open_session(user_id), csrf=secrets.token_urlsafe(32),
                   login_at=now, seen_at=now)


def end_session() -> None:
    """End the session on the server (a copy of the cookie stops working) and clear the cookie."""
    if session.get("sid"):
        accounts.end_session(session["sid"])
    session.clear()


def _expired() -> bool:
    now, cfg = time.time(), current_app.config
    return (now - session.get("seen_at", 0) > cfg["SESSION_IDLE_MINUTES"] * 60
            or now - session.get("login_at", 0) > cfg["SESSION_MAX_HOURS"] * 3600)


def before_request():
    g.expired = False
    if request.path.startswith("/api/") or request.endpoint == "static":
        return None
    if "uid" in session:
        if _expired():
            end_session()
            g.expired = True
            if wants_json():
                return api_error(401, WebCode.WEB_009)
            flash("登录已过期，请重新登录。", "error")
            return redirect(url_for("auth.login"))
        session["seen_at"] = time.time()
    if request.method not in SAFE and not _csrf_ok():
        if wants_json():
            return api_error(400, WebCode.WEB_006)
        abort(400, description="表单已过期或来源不明（CSRF 校验失败），请返回刷新页面后重试。")
    return None


# Sent with every response unless a view set its own.
HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
           ("Referrer-Policy", "no-referrer"), ("Cross-Origin-Opener-Policy", "same-origin"),
           ("Cross-Origin-Resource-Policy", "same-origin"),
           ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"))
_HEADER_KEYS = tuple((name.lower(), name, value) for name, value in HEADERS)


def after_request(resp):
    h = resp.headers
    have = {k.lower() for k, _ in h.items()}    # one pass, where a setdefault each scanned the headers again
    h.extend([(name, value) for key, name, value in _HEADER_KEYS if key not in have])
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"          # pages hold personal data: never cache them
    if current_app.config["SESSION_COOKIE_SECURE"]:
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return resp


def init_app(app) -> None:
    app.session_interface = SessionInterface()
    app.before_request(before_request)
    app.after_request(after_request)
    app.jinja_env.globals["csrf_token"] = csrf_token
