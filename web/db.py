"""The web app's own SQLite database: a handle per request, given back at teardown (flaskr).

Unlike flaskr the connection is not closed at teardown but kept for the next request on the same
thread: opening a SQLite connection and closing the last one (which checkpoints the WAL) cost
more than the rest of a submission. Any transaction left open is rolled back first.
"""
from __future__ import annotations

import sqlite3
import threading
from importlib import resources

from flask import current_app, g

_write_lock = threading.Lock()


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        local = current_app.extensions["web_db"]
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect(current_app.config["DATABASE"])
        g.db = conn
    return g.db


def close_db(_exc=None) -> None:
    conn = g.pop("db", None)
    if conn is not None and conn.in_transaction:
        conn.rollback()


class write:
    """``with write() as conn:`` one immediate transaction, committed or rolled back."""

    def __init__(self, conn: sqlite3.Connection | None = None):
        self.conn = conn or get_db()

    def __enter__(self) -> sqlite3.Connection:
        _write_lock.acquire()        # threads of one process queue in order rather than in SQLite's back-off
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            _write_lock.release()
            raise
        return self.conn

    def __exit__(self, exc_type, *_):
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            _write_lock.release()
        return False


def init_db() -> None:
    sql = resources.files("web").joinpath("schema.sql").read_text(encoding="utf-8")
    conn = get_db()
    conn.execute("PRAGMA journal_mode=WAL")      # kept in the file: set once
    conn.executescript(sql)


def init_app(app) -> None:
    app.extensions["web_db"] = threading.local()
    app.teardown_appcontext(close_db)
    with app.app_context():
        init_db()           # CREATE … IF NOT EXISTS: cheap, and a new instance works at once
