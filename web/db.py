"""The web app's own SQLite database: a handle per request, given back at teardown (flaskr).

Unlike flaskr the connection is not closed at teardown but kept for the next request on the same
thread: opening a SQLite connection and closing the last one (which checkpoints the WAL) cost
more than the rest of a submission. Any transaction left open is rolled back first.

Writes, here and to the store, take the deployment's :class:`WriteLock` first.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from importlib import resources

from flask import current_app, g


class WriteLock:
    """One writer at a time across the threads and the worker processes of a deployment.

    Threads queue on a lock, processes on ``flock`` of one lock file: both wake the next writer as soon
    as the holder lets go, where SQLite's busy handler polls with sleeps of up to 100 ms (two gunicorn
    workers writing through it gave a p99 of 350–400 ms in bench/test_web_load.py). Re-entrant, so a
    submission holds it once across the store's insert and the web table's.
    """

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._fd = self._pid = None

    def __enter__(self):
        self._lock.acquire()
        if self._depth == 0:
            try:
                if self._pid != os.getpid():         # a forked worker opens its own description
                    self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *_):
        self._depth -= 1
        try:
            if self._depth == 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()
        return False


def write_lock() -> WriteLock:
    return current_app.extensions["web_write_lock"]


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
        self.lock = write_lock()

    def __enter__(self) -> sqlite3.Connection:
        self.lock.__enter__()        # writers queue here in order rather than in SQLite's back-off
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.__exit__()
            raise
        return self.conn

    def __exit__(self, exc_type, *_):
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.__exit__()
        return False


def init_db() -> None:
    sql = resources.files("web").joinpath("schema.sql").read_text(encoding="utf-8")
    conn = get_db()
    conn.execute("PRAGMA journal_mode=WAL")      # kept in the file: set once
    conn.executescript(sql)


def init_app(app) -> None:
    app.extensions["web_db"] = threading.local()
    app.extensions["web_write_lock"] = WriteLock(app.config["DATABASE"] + ".lock")
    app.teardown_appcontext(close_db)
    with app.app_context():
        init_db()           # CREATE … IF NOT EXISTS: cheap, and a new instance works at once
