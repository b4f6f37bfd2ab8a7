"""Log in and out, role checks for pages and the API, and account administration."""
from __future__ import annotations

import functools

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from . import accounts, stores
from .errors import WebCode, api_error
from .security import end_session, start_session

bp = Blueprint("auth", __name__, url_prefix="/auth")
HOME = {"assessor": "assessor.home", "reviewer": "assessor.records", "officer": "lookup.form",
        "admin": "auth.users"}


def load_user():
    """The logged-in user: the session must be open on the server and its account active."""
    if "user" not in g:
        uid, sid = session.get("uid"), session.get("sid")
        g.user = accounts.session_user(sid) if uid is not None and sid else None
        if g.user is not None and g.user.id != uid:
            g.user = None
        if g.user is None and uid is not None:
            session.clear()
    return g.user


def login_required(*roles):
    """Pages: anonymous → login page; logged in with another role → 403."""
    def deco(view):
        @functools.wraps(view)
        def wrapped(**kw):
            user = load_user()
            if user is None:
                return redirect(url_for("auth.login"))
            if roles and user.role not in roles:
                abort(403, description=f"此页面仅限{'、'.join(accounts.ROLE_ZH[r] for r in roles)}使用。")
            return view(**kw)
        return wrapped
    return deco


def token_required(*roles):
    """API: a bearer token of an active account with one of ``roles``; 401 / 403 otherwise."""
    def deco(view):
        @functools.wraps(view)
        def wrapped(**kw):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            user = accounts.token_user(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
            if user is None:
                return api_error(401, WebCode.WEB_001)
            if roles and user.role not in roles:
                return api_error(403, WebCode.WEB_002, WebCode.WEB_002.format(
                    detail=f"This call needs the role {' or '.join(roles)}; the token's account is {user.role}."))
            g.user = user
            return view(**kw)
        return wrapped
    return deco


def index():
    user = load_user()
    if user is None:
        return redirect(url_for("auth.login"))
    return redirect(url_for(HOME[user.role]))


@bp.route("/login", methods=("GET", "POST"))
def login():
    cfg = current_app.config
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        address = request.remote_addr or "-"
        if accounts.locked(username.lower(), address, cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_WINDOW_SECONDS"]):
            minutes = cfg["LOGIN_WINDOW_SECONDS"] // 60
            current_app.logger.warning("login locked for %r from %s", username, address)
            return render_template("login.html", error=f"登录失败次数过多，请 {minutes} 分钟后再试。"), 429
        user = accounts.authenticate(username, password, address)
        if user is None:
            return render_template("login.html", error="用户名或密码错误。"), 401
        start_session(user.id)
        return redirect(url_for(HOME[user.role]))
    return render_template("login.html", error=None)


@bp.route("/logout", methods=("POST",))
def logout():
    end_session()
    flash("已退出登录。", "info")
    return redirect(url_for("auth.login"))


@bp.route("/users", methods=("GET", "POST"))
@login_required("admin")
def users():
    store = stores.get_store()
    if request.method == "POST":
        f = request.form
        role, dept = f.get("role", ""), f.get("department", "")
        try:
            if role in ("assessor", "reviewer") and dept != store.department:
                raise accounts.AccountError(f"评估员和审核员必须属于本节点的发证部门 {store.department}")
            if dept not in stores.departments():
                raise accounts.AccountError("部门不在互认政策中")
            accounts.create_user(f.get("username", ""), f.get("password", ""), role, dept,
                                 f.get("display_name", "").strip(), f.get("organisation", "").strip())
            flash("账号已创建。", "info")
            return redirect(url_for("auth.users"))
        except accounts.AccountError as exc:
            flash(str(exc), "error")
    return render_template("users.html", users=accounts.list_users(), tokens=accounts.list_tokens(),
                           roles=accounts.ROLE_ZH, departments=stores.departments(), new_token=None), \
        200 if request.method == "GET" else 422


@bp.route("/users/<int:user_id>/active", methods=("POST",))
@login_required("admin")
def set_active(user_id):
    if accounts.get_user(user_id) is None:
        abort(404)
    if user_id == g.user.id:
        abort(400, description="不能停用自己的账号。")
    accounts.set_active(user_id, request.form.get("active") == "1")
    return redirect(url_for("auth.users"))


@bp.route("/users/<int:user_id>/tokens", methods=("POST",))
@login_required("admin")
def issue_token(user_id):
    if accounts.get_user(user_id) is None:
        abort(404)
    token = accounts.issue_token(user_id, request.form.get("label", "").strip())
    return render_template("users.html", users=accounts.list_users(), tokens=accounts.list_tokens(),
                           roles=accounts.ROLE_ZH, departments=stores.departments(), new_token=token)


@bp.route("/tokens/<int:token_id>/revoke", methods=("POST",))
@login_required("admin")
def revoke_token(token_id):
    accounts.revoke_token(token_id)
    flash("令牌已撤销。", "info")
    return redirect(url_for("auth.users"))
