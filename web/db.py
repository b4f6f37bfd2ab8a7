"""The web app's own SQLite database: one connection per request, closed at teardown (flaskr)."""
from __future__ import annotations

import sqlite3
from importlib import resources

from flask import current_app, g


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(_exc=None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


class write:
    """``with write() as conn:`` one immediate transaction, committed or rolled back."""

    def __init__(self, conn: sqlite3.Connection | None = None):
        self.conn = conn or get_db()

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *_):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def init_db() -> None:
    sql = resources.files("web").joinpath("schema.sql").read_text(encoding="utf-8")
    get_db().executescript(sql)


def init_app(app) -> None:
    app.teardown_appcontext(close_db)
    with app.app_context():
        init_db()           # CREATE … IF NOT EXISTS: cheap, and a new instance works at once
