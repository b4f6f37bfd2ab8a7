"""Tables of the results store and their versioned migrations.

Migrations are a short ordered list applied by :func:`migrate` inside the single writer's
transaction and recorded in ``assess_schema``. We chose this over alembic: the schema is small,
the append-only triggers are dialect-specific SQL either way, and one list in one module is less
machinery than alembic's environment and script directory, with no extra dependency.

Every value is text or integer (dates as ISO ``YYYY-MM-DD``, times as ISO UTC, JSON as canonical
text), so a record reads back byte-identical from SQLite and PostgreSQL and its signature holds on
both. Person keys and region codes are text (data-hygiene §2).

Layout 3 (migration 3) stores a record in two tables, ``contexts`` (what an import or an add holds
constant) and ``record_rows``; ``records`` is a view joining them with the columns the wide table
of layout 2 had, so every reader selects records as before. The signed digest and the field check
list are over the record's values, not over how they are stored, so the migration moves layout-2
rows without touching a signature.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text,
                        UniqueConstraint, and_, inspect, text)
from sqlalchemy.engine import Connection

from .errors import StoreCode, store_error

metadata = MetaData()
Id = BigInteger().with_variant(Integer(), "sqlite")   # SQLite only autoincrements INTEGER PRIMARY KEY

schema_table = Table(
    "assess_schema", metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("applied_at", String(32), nullable=False))

# The signed fields of a record (signing.FIELDS), then how they are sealed: the columns of the
# ``records`` view, which readers (recognise, verify, web/) select from as from a table.
def _record_columns(constant: bool):
    """The record's columns; ``constant`` ones (the same for a whole import) or the per-record ones."""
    cols = [("instrument", String(64), False), ("version", String(32), False),
            ("definition_hash", String(64), False), ("engine_version", String(32), False),
            ("settings", Text, False), ("status", String(16), False), ("assessed_on", String(10), False),
            ("assessors", Text, False), ("organisation", Text, False), ("department", String(32), False),
            ("reason", String(16), False), ("origin", String(16), False), ("created_at", String(32), False),
            ("key_id", String(16), False)] if constant else [
        ("record_id", String(32), False), ("person_key", String(64), False), ("id_number_enc", Text, True),
        ("region", String(6), True), ("answers", Text, False), ("result", Text, False), ("total", Integer, True),
        ("level", Integer, True), ("supersedes", String(32), True), ("source", Text, True),
        ("field_digests", LargeBinary, False),    # CRC-32 per field, FIELDS order (locates changes)
        ("sig_id", BigInteger, False),            # the signed group holding this record's digest
        ("sig_index", Integer, False)]
    return [Column(n, t, nullable=null) for n, t, null in cols]


VIEW_ORDER = ("seq", "record_id", "person_key", "id_number_enc", "region", "instrument", "version", "definition_hash",
              "engine_version", "settings", "answers", "result", "total", "level", "status", "assessed_on",
              "assessors", "organisation", "department", "reason", "origin", "supersedes", "source", "created_at",
              "key_id", "field_digests", "sig_id", "sig_index")


def _ordered(cols):
    by = {c.name: c for c in cols}
    return [by[n] for n in VIEW_ORDER if n in by]


# Layout 2 (migrations 1–2): one wide row per record. Migration 3 moves these rows into
# contexts + record_rows and drops the table; kept here only so migrations 1–3 replay exactly.
_v1 = MetaData()
records_v1 = Table(
    "records", _v1,
    *_ordered([Column("seq", Id, primary_key=True, autoincrement=True)] + _record_columns(True)
              + _record_columns(False)),
    Index("ux_records_id", "record_id", unique=True),
    Index("ix_records_supersedes", "supersedes", sqlite_where=text("supersedes IS NOT NULL"),
          postgresql_where=text("supersedes IS NOT NULL")))

# Layout 3 (migration 3). The fields an import or a single add holds constant (signing.CONTEXT_FIELDS
# but supersedes) are stored once, in ``contexts``; a record row holds the rest and its context's id,
# SHA-256 of the context's canonical JSON (records.context_id), so identical contexts are one row.
# Bulk import was bound by the width of the row (28 columns, ~1.1 kB): now 15 columns, ~0.8 kB.
#
# One index serves every access path: record_id is the first 16 hex digits of the person key followed
# by 16 hex digits of the hash of the record's identity fields (records.record_id), so the unique
# index on it is the natural key that makes imports idempotent, finds a record by id, and finds all
# records of a person as one range scan (person_range). A 32-character key keeps the index small
# (~40 bytes an entry); a second index on the 64-character person key would double the random index
# writes that dominate bulk import. ``supersedes`` is indexed only where it is set (rescores).
contexts = Table(
    "contexts", metadata,
    Column("context_id", BigInteger, primary_key=True, autoincrement=False),
    *_record_columns(True))

record_rows = Table(
    "record_rows", metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("context_id", BigInteger, nullable=False),
    *_record_columns(False),
    Index("ux_record_rows_id", "record_id", unique=True),
    Index("ix_record_rows_supersedes", "supersedes", sqlite_where=text("supersedes IS NOT NULL"),
          postgresql_where=text("supersedes IS NOT NULL")))
CONTEXT_COLUMNS = tuple(c.name for c in contexts.columns if c.name != "context_id")
ROW_COLUMNS = tuple(c.name for c in record_rows.columns if c.name != "seq")

# Every record as one row with all its fields (a view: readers and web/ select from it like a table).
_views = MetaData()
records = Table("records", _views, *_ordered([Column("seq", Id, primary_key=True)] + _record_columns(True)
                                             + _record_columns(False)))
_RECORDS_VIEW = ("CREATE VIEW records AS SELECT " + ", ".join(
    ("c." if n in CONTEXT_COLUMNS else "r.") + n for n in VIEW_ORDER)
    + " FROM record_rows r JOIN contexts c ON c.context_id = r.context_id")

# One Ed25519 signature per group of records: over a small manifest that commits (SHA-256) to the
# group's concatenated 32-byte record digests, stored in ``digests``.
signatures = Table(
    "signatures", metadata,
    Column("sig_id", BigInteger, primary_key=True, autoincrement=False),
    Column("department", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("digests", LargeBinary, nullable=False),
    Column("signature", String(128), nullable=False))


def person_range(person_key: str):
    """The condition selecting a person's records through the record_id index."""
    lo = person_key[:16]
    return and_(records.c.record_id >= lo, records.c.record_id < lo + "g", records.c.person_key == person_key)

revocations = Table(
    "revocations", metadata,
    Column("revocation_id", String(64), primary_key=True),
    Column("record_id", String(32), nullable=False, unique=True),
    Column("department", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False))

rescores = Table(
    "rescores", metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("old_record_id", String(64), nullable=False),
    Column("new_record_id", String(64), nullable=False),
    Column("before", Text, nullable=False),
    Column("after", Text, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("actor", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("old_record_id", "new_record_id"))

audit = Table(
    "audit", metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    Column("actor", Text, nullable=False),
    Column("department", String(32), nullable=False),      # the reading department
    Column("action", String(16), nullable=False),          # recognise | lookup
    Column("purpose", String(64), nullable=False),
    Column("person_key", String(64), nullable=False),
    Column("record_id", String(64), nullable=False),
    Column("record_department", String(32), nullable=False),
    Column("outcome", String(32), nullable=False),
    Index("ix_audit_person", "person_key"))

import_batches = Table(
    "import_batches", metadata,
    Column("file_digest", String(64), primary_key=True),  # the import's key (importer.import_key), not the file's alone
    Column("batch_size", Integer, primary_key=True),
    Column("batch_no", Integer, primary_key=True),
    Column("rows_in", Integer, nullable=False),
    Column("stored", Integer, nullable=False),
    Column("already", Integer, nullable=False),
    Column("skipped", Text, nullable=False),               # JSON: status / reason → count
    Column("committed_at", String(32), nullable=False))

APPEND_ONLY = ("contexts", "record_rows", "signatures", "revocations", "rescores", "audit", "import_batches")
_V1_TABLES = ("records", "signatures", "revocations", "rescores", "audit", "import_batches")


def _append_only(conn: Connection, tables=_V1_TABLES) -> None:
    if conn.dialect.name == "sqlite":
        for t in tables:
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {t}_no_{op.lower()} BEFORE {op} ON {t} BEGIN "
                    f"SELECT RAISE(ABORT, 'assess store: {t} is append-only; supersede or revoke instead'); END")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION assess_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'assess store: %% is append-only; supersede or revoke instead', TG_TABLE_NAME; END $$")
        for t in tables:
            conn.exec_driver_sql(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                                 f"FOR EACH ROW EXECUTE FUNCTION assess_append_only()")
            conn.exec_driver_sql(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                                 f"FOR EACH STATEMENT EXECUTE FUNCTION assess_append_only()")


def _create(conn: Connection) -> None:
    _v1.create_all(conn)
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name in _V1_TABLES])


def _split_records(conn: Connection) -> None:
    """Layout 3: move every layout-2 row into contexts + record_rows (same values, so every
    signature still holds), drop the wide table with its triggers, and make ``records`` a view."""
    from .records import context_id
    metadata.create_all(conn, tables=[contexts, record_rows])
    cols = ", ".join(CONTEXT_COLUMNS)
    ctx = [dict(r) for r in conn.exec_driver_sql(f"SELECT DISTINCT {cols} FROM records").mappings()]
    if ctx:
        conn.execute(contexts.insert(), [{"context_id": context_id(c), **c} for c in ctx])
        on = " AND ".join(f"c.{n} = r.{n}" for n in CONTEXT_COLUMNS)
        row_cols = ", ".join(("c." if n == "context_id" else "r.") + n for n in ROW_COLUMNS)
        conn.exec_driver_sql(f"INSERT INTO record_rows (seq, {', '.join(ROW_COLUMNS)}) SELECT r.seq, {row_cols} "
                             f"FROM records r JOIN contexts c ON {on} ORDER BY r.seq")
        if conn.dialect.name == "postgresql":       # the sequence continues after the moved rows
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('record_rows', 'seq'), "
                                 "(SELECT MAX(seq) FROM record_rows))")
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER records_no_update")
        conn.exec_driver_sql("DROP TRIGGER records_no_delete")
    conn.exec_driver_sql("DROP TABLE records")      # PostgreSQL drops its triggers with it
    conn.exec_driver_sql(_RECORDS_VIEW)
    _append_only(conn, ("contexts", "record_rows"))


# (version, name, function). Append only: never edit or renumber a released migration.
MIGRATIONS = (
    (1, "tables", _create),
    (2, "append-only triggers", _append_only),
    (3, "records split into contexts and record rows (layout 3)", _split_records),
)
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("assess_schema"):
        return 0
    return conn.execute(text("SELECT COALESCE(MAX(version), 0) FROM assess_schema")).scalar_one()


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet applied (call inside the writer's transaction)."""
    metadata.create_all(conn, tables=[schema_table])
    have = current_version(conn)
    if have > LATEST:
        raise store_error(StoreCode.STORE_002, found=have, known=LATEST)
    done = []
    for version, name, fn in MIGRATIONS:
        if version > have:
            fn(conn)
            conn.execute(schema_table.insert().values(
                version=version, name=name, applied_at=dt.datetime.now(dt.timezone.utc).isoformat()))
            done.append(f"{version} {name}")
    return done


def check_current(conn: Connection, where: str) -> None:
    have = current_version(conn)
    if have == 0:
        raise store_error(StoreCode.STORE_001, where, found=0)
    if have > LATEST:
        raise store_error(StoreCode.STORE_002, where, found=have, known=LATEST)
    if have < LATEST:
        raise store_error(StoreCode.STORE_001, where, found=f"{have} < {LATEST}")
