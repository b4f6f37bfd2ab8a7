"""Engines and the single writer.

Every write to the store goes through :func:`write`: one connection, one transaction, begun with
``BEGIN IMMEDIATE`` on SQLite (so two writers queue on the lock instead of failing half-way), then
committed, or rolled back if anything raises. Readers use :func:`read`, a plain deferred
transaction that never writes. SQLite runs in WAL mode (readers do not block the writer) with
``synchronous=NORMAL``: a crash loses at most the last commits, never consistency.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url

T = TypeVar("T")
_WRITE = "assess_write"
BUSY_TIMEOUT_MS = 60_000


def sqlite_url(path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite store URL (None for PostgreSQL or an in-memory database)."""
    u = make_url(url if "://" in url else sqlite_url(url))
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    return Path(u.database)


def make_engine(url: str) -> Engine:
    """An engine for a store URL: ``sqlite:///path.db`` or ``postgresql+psycopg://…``; a bare path is SQLite."""
    if "://" not in url:
        url = sqlite_url(url)
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite":
        engine = create_engine(u, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None       # we issue BEGIN ourselves (pysqlite's own is deferred)
            cur = dbapi_conn.cursor()
            # Pages stay 4 kB: 16 kB pages made bulk import ~7 % cheaper a row but wrote four times the
            # bytes for each single-record transaction (Store.add p99 ~4.8 instead of ~1.5 ms).
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           f"busy_timeout={BUSY_TIMEOUT_MS}"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")
        return engine
    return create_engine(u, pool_pre_ping=True)


def write(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run ``fn(conn)`` in one write transaction; commit on return, roll back on any exception."""
    with engine.connect() as conn:
        return transaction(conn, fn)


def transaction(conn: Connection, fn: Callable[[Connection], T]) -> T:
    """:func:`write` on a connection already open (a bulk import keeps one for all its batches)."""
    conn.execution_options(**{_WRITE: True})
    with conn.begin():
        return fn(conn)


_INSERTS: dict = {}
_QUERIES: dict = {}


def query(conn: Connection, sql: str, params: dict) -> list[dict]:
    """Rows of a fixed SQL text with ``:name`` parameters, run by the driver without compiling
    (the look-up path runs a few statements per call; SQLAlchemy's cache key alone costs ~0.1 ms each)."""
    key = (conn.dialect.name, sql)
    driver_sql = _QUERIES.get(key)
    if driver_sql is None:
        driver_sql = sql if conn.dialect.name == "sqlite" else re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)
        _QUERIES[key] = driver_sql
    return [dict(r) for r in conn.exec_driver_sql(driver_sql, params).mappings()]


def insert(conn: Connection, table, rows: list[dict], conflict: str | None = None) -> int:
    """Insert rows (dicts with the same keys) with SQL made once per table, dialect and columns.

    The driver's own statement: SQLAlchemy compiles a Core insert of a wide table on every call
    (about 2 ms, most of a single web submission); rows whose ``conflict`` column value is already
    stored are skipped. Returns the number of rows added.
    """
    if not rows:
        return 0
    cols = tuple(rows[0])
    key = (conn.dialect.name, table.name, cols, conflict)
    sql = _INSERTS.get(key)
    if sql is None:
        mark = ":{}" if conn.dialect.name == "sqlite" else "%({})s"
        sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join(mark.format(c) for c in cols)})"
               + (f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else ""))
        _INSERTS[key] = sql
    n = conn.exec_driver_sql(sql, rows if len(rows) > 1 else rows[0]).rowcount
    return n if n is not None and n >= 0 else len(rows)


@contextlib.contextmanager
def read(engine: Engine):
    """A read-only transaction (nothing here writes; audit rows go through :func:`write`)."""
    with engine.connect() as conn:
        with conn.begin():
            yield conn
