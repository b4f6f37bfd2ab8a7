"""Accounts, roles, department membership, API tokens and the failed-login limit (web tables).

Roles: ``assessor`` fills and signs assessments for this node's department; ``reviewer`` reads
and revokes that department's records; ``officer`` (department officer, e.g. an insurance
office) looks up recognised grades for its department's purposes; ``admin`` manages accounts and
tokens and sees no personal data. Passwords are hashed by werkzeug (scrypt); tokens are random
and kept only as SHA-256. Page sessions are rows too (the signed cookie holds a random session id),
so logging out ends a session on the server, not only in the browser.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from .db import get_db, write

ROLES = ("assessor", "reviewer", "officer", "admin")
ROLE_ZH = {"assessor": "评估员", "reviewer": "审核员", "officer": "部门经办人", "admin": "管理员"}
MIN_PASSWORD = 10
# A fixed hash to compare against when the user does not exist, so timing does not tell.
_DUMMY = generate_password_hash("not-a-password-" + secrets.token_hex(8))


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    department: str
    organisation: str
    active: bool

    @property
    def role_zh(self) -> str:
        return ROLE_ZH[self.role]


class AccountError(ValueError):
    pass


def _user(row) -> User | None:
    if row is None:
        return None
    return User(row["id"], row["username"], row["display_name"], row["role"], row["department"],
                row["organisation"], bool(row["active"]))


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def create_user(username: str, password: str, role: str, department: str, display_name: str = "",
                organisation: str = "") -> User:
    username = username.strip()
    if role not in ROLES:
        raise AccountError(f"角色必须是 {', '.join(ROLES)} 之一")
    if not username or not username.isascii() or not username.replace("-", "").replace("_", "").isalnum():
        raise AccountError("用户名只能包含字母、数字、-、_")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符")
    if not department:
        raise AccountError("必须指定所属部门")
    try:
        with write() as conn:
            cur = conn.execute(
                "INSERT INTO users (username, display_name, password_hash, role, department, organisation, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (username, display_name or username,
                 generate_password_hash(password, current_app.config["PASSWORD_HASH_METHOD"]), role, department,
                 organisation, now()))
    except sqlite3.IntegrityError:
        raise AccountError(f"用户名 {username} 已存在") from None
    return get_user(cur.lastrowid)


def get_user(user_id) -> User | None:
    return _user(get_db().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone())


def list_users() -> list[User]:
    return [_user(r) for r in get_db().execute("SELECT * FROM users ORDER BY role, username")]


def set_active(user_id: int, active: bool) -> None:
    with write() as conn:
        conn.execute("UPDATE users SET active = ? WHERE id = ?", (int(active), user_id))


# ---------------------------------------------------------------------- passwords and the rate limit
def failures(username: str, address: str, window: int) -> tuple[int, int]:
    since = time.time() - window
    db = get_db()
    by_user = db.execute("SELECT COUNT(*) FROM login_failures WHERE username = ? AND at > ?",
                         (username.lower(), since)).fetchone()[0]
    by_addr = db.execute("SELECT COUNT(*) FROM login_failures WHERE address = ? AND at > ?",
                         (address, since)).fetchone()[0]
    return by_user, by_addr


def locked(username: str, address: str, max_failures: int, window: int) -> bool:
    by_user, by_addr = failures(username, address, window)
    return by_user >= max_failures or by_addr >= 4 * max_failures


def authenticate(username: str, password: str, address: str) -> User | None:
    """The active user with this name and password, or None (and the failure is counted)."""
    row = get_db().execute("SELECT * FROM users WHERE username = ?", (username.strip(),)).fetchone()
    ok = check_password_hash(row["password_hash"] if row else _DUMMY, password)
    if row is None or not ok or not row["active"]:
        with write() as conn:
            conn.execute("INSERT INTO login_failures (username, address, at) VALUES (?, ?, ?)",
                         (username.strip().lower(), address, time.time()))
        return None
    with write() as conn:
        conn.execute("DELETE FROM login_failures WHERE username = ?", (username.strip().lower(),))
    return _user(row)


# ---------------------------------------------------------------------- bearer tokens for systems
def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(user_id: int, label: str = "") -> str:
    """A new token for a user's account; only its digest is kept, so it is shown once."""
    token = "ast_" + secrets.token_urlsafe(32)
    with write() as conn:
        conn.execute("INSERT INTO tokens (user_id, token_hash, label, created_at) VALUES (?, ?, ?, ?)",
                     (user_id, _digest(token), label, now()))
    return token


# What makes a token or a session live; each table keeps only the digest of its secret.
_LIVE = {"tokens": "t.token_hash = ? AND t.revoked_at IS NULL", "sessions": "t.sid_hash = ? AND t.ended_at IS NULL"}


def _holder(table: str, secret: str) -> User | None:
    """The active user holding a live token or session with this secret, or None."""
    row = get_db().execute(f"SELECT u.* FROM {table} t JOIN users u ON u.id = t.user_id "
                           f"WHERE {_LIVE[table]} AND u.active = 1", (_digest(secret),)).fetchone()
    return _user(row)


def token_user(token: str) -> User | None:
    return _holder("tokens", token)


# ---------------------------------------------------------------------- page sessions
def open_session(user_id: int) -> str:
    """A new session id for a login; only its digest is kept."""
    sid = secrets.token_urlsafe(32)
    with write() as conn:
        conn.execute("INSERT INTO sessions (sid_hash, user_id, created_at) VALUES (?, ?, ?)",
                     (_digest(sid), user_id, now()))
    return sid


def session_user(sid: str) -> User | None:
    """The active user of an open session, or None (ended, unknown, or the account deactivated)."""
    return _holder("sessions", sid)


def end_session(sid: str) -> None:
    with write() as conn:
        conn.execute("UPDATE sessions SET ended_at = ? WHERE sid_hash = ? AND ended_at IS NULL", (now(), _digest(sid)))


def list_tokens() -> list[dict]:
    return [dict(r) for r in get_db().execute(
        "SELECT t.id, t.label, t.created_at, t.revoked_at, u.username FROM tokens t JOIN users u "
        "ON u.id = t.user_id ORDER BY t.id")]


def revoke_token(token_id: int) -> None:
    with write() as conn:
        conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now(), token_id))
