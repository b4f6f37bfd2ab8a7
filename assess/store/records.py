"""Building signed record rows, and the statements that add them (inside the writer only)."""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from . import schema, signing

REASONS = ("first", "routine", "change", "review")      # 首次 / 常规 / 状况变化(即时) / 复评
ORIGINS = ("assessment", "import", "rescore")
COLUMNS = signing.FIELDS + ("field_digests", "sig_id", "sig_index")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def record_id(department, person_key, instrument, version, assessed_on, origin, supersedes, answers_json) -> str:
    """The natural key: the same assessment imported or added twice gets the same id."""
    return hashlib.sha256("\x1f".join((department, person_key, instrument, version, assessed_on, origin,
                                       supersedes or "", answers_json)).encode("utf-8")).hexdigest()


class DigestCache:
    """Field digests of values that repeat across rows (levels, dates, settings …)."""

    def __init__(self):
        self._d = {}

    def __call__(self, name, value) -> bytes:
        k = (name, value)
        d = self._d.get(k)
        if d is None:
            d = signing.field_digest(name, value)
            if len(self._d) < 100_000:
                self._d[k] = d
        return d


def seal(rows: list[dict], signing_key, department: str, key_id: str, created_at: str,
         cache: DigestCache | None = None, varying=signing.FIELDS) -> dict:
    """Add field digests and the group signature to rows (in place); returns the signatures row.

    Fields not named in ``varying`` are the same in every row; their digests come from the cache.
    """
    cache = cache or DigestCache()
    fd = signing.field_digest
    vary = set(varying)
    sig_id = uuid.uuid4().hex
    digests = []
    for i, r in enumerate(rows):
        blob = b"".join(fd(n, r[n]) if n in vary else cache(n, r[n]) for n in signing.FIELDS)
        r["field_digests"], r["sig_id"], r["sig_index"] = blob, sig_id, i
        digests.append(signing.record_digest(blob))
    man = signing.manifest(department, key_id, created_at, digests)
    return {"sig_id": sig_id, "department": department, "key_id": key_id, "manifest": man,
            "signature": signing.sign(signing_key, man)}


def insert_records(conn: Connection, rows: list[dict], sig_row: dict) -> int:
    """Insert rows, skipping any whose record_id is already stored; returns how many were new."""
    if not rows:
        return 0
    conn.execute(insert(schema.signatures), [sig_row])
    ins = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(schema.records)
    res = conn.execute(ins.on_conflict_do_nothing(index_elements=["record_id"]), rows)
    return res.rowcount if res.rowcount is not None and res.rowcount >= 0 else len(rows)
