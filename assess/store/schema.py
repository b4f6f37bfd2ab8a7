"""Tables of the results store and their versioned migrations.

Migrations are a short ordered list applied by :func:`migrate` inside the single writer's
transaction and recorded in ``assess_schema``. We chose this over alembic: the schema is small,
the append-only triggers are dialect-specific SQL either way, and one list in one module is less
machinery than alembic's environment and script directory, with no extra dependency.

Every value is text or integer (dates as ISO ``YYYY-MM-DD``, times as ISO UTC, JSON as canonical
text), so a record reads back byte-identical from SQLite and PostgreSQL and its signature holds on
both. Person keys and region codes are text (data-hygiene §2).
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

# The signed fields of a record (signing.FIELDS), then how they are sealed.
#
# One index serves every access path: record_id is the first 16 hex digits of the person key followed
# by 16 hex digits of the hash of the record's identity fields (records.record_id), so the unique
# index on it is the natural key that makes imports idempotent, finds a record by id, and finds all
# records of a person as one range scan (person_range). A 32-character key keeps the index small
# (~40 bytes an entry); a second index on the 64-character person key would double the random index
# writes that dominate bulk import. ``supersedes`` is indexed only where it is set (rescores).
records = Table(
    "records", metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("record_id", String(32), nullable=False),
    Column("person_key", String(64), nullable=False),
    Column("id_number_enc", Text),
    Column("region", String(6)),
    Column("instrument", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("definition_hash", String(64), nullable=False),
    Column("engine_version", String(32), nullable=False),
    Column("settings", Text, nullable=False),
    Column("answers", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("total", Integer),
    Column("level", Integer),
    Column("status", String(16), nullable=False),
    Column("assessed_on", String(10), nullable=False),
    Column("assessors", Text, nullable=False),
    Column("organisation", Text, nullable=False),
    Column("department", String(32), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("supersedes", String(32)),
    Column("source", Text),
    Column("created_at", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("field_digests", LargeBinary, nullable=False),   # CRC-32 per field, FIELDS order (locates changes)
    Column("sig_id", BigInteger, nullable=False),           # the signed group holding this record's digest
    Column("sig_index", Integer, nullable=False),
    Index("ux_records_id", "record_id", unique=True),
    Index("ix_records_supersedes", "supersedes", sqlite_where=text("supersedes IS NOT NULL"),
          postgresql_where=text("supersedes IS NOT NULL")))

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
    Column("file_digest", String(64), primary_key=True),
    Column("batch_size", Integer, primary_key=True),
    Column("batch_no", Integer, primary_key=True),
    Column("rows_in", Integer, nullable=False),
    Column("stored", Integer, nullable=False),
    Column("already", Integer, nullable=False),
    Column("skipped", Text, nullable=False),               # JSON: status / reason → count
    Column("committed_at", String(32), nullable=False))

APPEND_ONLY = ("records", "signatures", "revocations", "rescores", "audit", "import_batches")


def _append_only(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for t in APPEND_ONLY:
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {t}_no_{op.lower()} BEFORE {op} ON {t} BEGIN "
                    f"SELECT RAISE(ABORT, 'assess store: {t} is append-only; supersede or revoke instead'); END")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION assess_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'assess store: %% is append-only; supersede or revoke instead', TG_TABLE_NAME; END $$")
        for t in APPEND_ONLY:
            conn.exec_driver_sql(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                                 f"FOR EACH ROW EXECUTE FUNCTION assess_append_only()")
            conn.exec_driver_sql(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                                 f"FOR EACH STATEMENT EXECUTE FUNCTION assess_append_only()")


def _create(conn: Connection) -> None:
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not schema_table])


# (version, name, function). Append only: never edit or renumber a released migration.
MIGRATIONS = (
    (1, "tables", _create),
    (2, "append-only triggers", _append_only),
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
