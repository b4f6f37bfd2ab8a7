"""web: the Flask front end of assess (tablet forms, insurance look-up, JSON API).

Built in the flaskr style: :func:`create_app` reads the instance folder's ``config.py`` (or a
test mapping), registers one blueprint per audience, and opens a per-request handle on the web
app's own SQLite database (accounts, drafts, submissions), closed at teardown. Scoring and records
go through :mod:`assess` and :mod:`assess.store` only; no view scores, grades or writes SQL.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets

from flask import Flask

INSTANCE_ENV = "ASSESS_WEB_INSTANCE"

DEFAULTS = {
    "SECRET_KEY": None,                  # required: config.py in the instance folder sets it
    "DATABASE": None,                    # default: <instance>/web.db
    "STORE_CONFIG": None,                # the store's deployment file (store.yaml); default $ASSESS_STORE_CONFIG
    "DEFAULT_INSTRUMENT": "gbt42195-2022",   # preselected on the tablet
    "ASSESSORS_REQUIRED": 2,             # assessors who must sign a tablet submission
    "SESSION_IDLE_MINUTES": 30,          # a session unused this long expires
    "SESSION_MAX_HOURS": 10,             # and any session expires this long after login
    "LOGIN_MAX_FAILURES": 5,             # failed logins per user name (or 4x per address) …
    "LOGIN_WINDOW_SECONDS": 900,         # … within this window lock further attempts
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,      # set True behind HTTPS (then HSTS is sent too)
    "SESSION_COOKIE_NAME": "assess_session",
    "PASSWORD_HASH_METHOD": "scrypt",    # werkzeug's default; tests use a cheap one
    "MAX_CONTENT_LENGTH": 256 * 1024,
    "JSON_AS_ASCII": False,
}


def create_app(test_config=None) -> Flask:
    """Build the app. ``test_config`` (a mapping) replaces the instance folder's config.py."""
    instance = os.environ.get(INSTANCE_ENV)
    app = Flask(__name__, instance_path=os.path.abspath(instance) if instance else None,
                instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        raise RuntimeError(f"{app.instance_path}/config.py must set SECRET_KEY "
                           f"(e.g. SECRET_KEY = {secrets.token_hex(32)!r}); `python -m web init` writes one.")
    app.config["DATABASE"] = app.config["DATABASE"] or os.path.join(app.instance_path, "web.db")
    app.config["STORE_CONFIG"] = app.config["STORE_CONFIG"] or os.environ.get("ASSESS_STORE_CONFIG")
    app.permanent_session_lifetime = dt.timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    app.json.ensure_ascii = False
    os.makedirs(app.instance_path, exist_ok=True)

    from . import auth, db, errors, security, stores
    db.init_app(app)
    stores.init_app(app)
    security.init_app(app)
    errors.init_app(app)

    from . import api, assessor, lookup
    app.register_blueprint(auth.bp)
    app.register_blueprint(assessor.bp)
    app.register_blueprint(lookup.bp)
    app.register_blueprint(api.bp)
    app.add_url_rule("/", endpoint="index", view_func=auth.index)
    return app
