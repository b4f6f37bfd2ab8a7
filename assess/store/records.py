"""Building signed record rows, and the statements that add them (inside the writer only)."""
from __future__ import annotations

import datetime as dt
import hashlib
import os

from sqlalchemy.engine import Connection

from . import db, schema, signing
from .errors import StoreCode, store_error

REASONS = ("first", "routine", "change", "review")      # 首次 / 常规 / 状况变化(即时) / 复评
ORIGINS = ("assessment", "import", "rescore")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def new_sig_id() -> int:
    """A random positive 63-bit id for a signed group (made before its rows, which name it)."""
    return int.from_bytes(os.urandom(8), "big") >> 1


def record_id_head(department, instrument, version, assessed_on, origin, supersedes):
    """The hash state and separator around the person key, for :func:`record_id` in bulk."""
    return (hashlib.sha256(f"{department}\x1f".encode()),
            "\x1f".join(("", instrument, version, assessed_on, origin, supersedes or "", "")).encode())


def record_id(department, person_key, instrument, version, assessed_on, origin, supersedes, answers_json) -> str:
    """The natural key: the same assessment imported or added twice gets the same id.

    The first 16 hex digits of the person key, then 16 of SHA-256 over the identity fields: the
    person's records are neighbours in the one index (schema.person_range), and 64 bits tell one
    person's records apart.
    """
    h, mid = record_id_head(department, instrument, version, assessed_on, origin, supersedes)
    h.update(person_key.encode("ascii") + mid + answers_json.encode("utf-8"))
    return person_key[:16] + h.hexdigest()[:16]


def seal(rows: list[dict], signing_key, department: str, key_id: str, created_at: str) -> dict:
    """Add field checks and the group signature to rows (in place); returns the signatures row."""
    sig_id = new_sig_id()
    digests = []
    for i, r in enumerate(rows):
        r["field_digests"], d = signing.seal_parts(signing.payload(r))
        r["sig_id"], r["sig_index"] = sig_id, i
        digests.append(d)
    return group_row(sig_id, signing_key, department, key_id, created_at, b"".join(digests))


def group_row(sig_id, signing_key, department, key_id, created_at, digests: bytes) -> dict:
    man = signing.manifest(department, key_id, created_at, digests)
    return {"sig_id": sig_id, "department": department, "key_id": key_id, "manifest": man, "digests": digests,
            "signature": signing.sign(signing_key, man)}


def context_id(ctx: dict) -> int:
    """The id of a record context (its fields schema.CONTEXT_COLUMNS): a positive 63-bit number from
    SHA-256 of its canonical JSON, so that the same context is stored once."""
    data = signing.canonical({k: ctx[k] for k in schema.CONTEXT_COLUMNS}).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") >> 1


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(context rows, record rows) of full records (dicts with every column of the records view)."""
    ctx, out = {}, []
    for r in rows:
        c = {k: r[k] for k in schema.CONTEXT_COLUMNS}
        cid = context_id(c)
        ctx.setdefault(cid, {"context_id": cid, **c})
        out.append({k: cid if k == "context_id" else r[k] for k in schema.ROW_COLUMNS})
    return list(ctx.values()), out


def insert_records(conn: Connection, rows: list[dict], sig_row: dict) -> int:
    """Insert rows, skipping any whose record_id is already stored; returns how many were new."""
    if not rows:
        return 0
    ctx, rows = split(rows)
    added = db.insert(conn, schema.record_rows, rows, conflict="record_id")
    attach(conn, added, ctx, [sig_row])
    return added


def attach(conn: Connection, added: int, contexts: list[dict], signatures: list[dict]) -> None:
    """The contexts and signature groups of record rows just inserted (same transaction, so the
    rows are never seen without them), only when some row was new: a repeated add (new created_at,
    so a new context; a new sig_id) or an import re-run stores neither without a record."""
    if added:
        db.insert(conn, schema.signatures, signatures)
        db.insert(conn, schema.contexts, contexts, conflict="context_id")


# China has one time zone and no daylight saving. Assessments are dated by the day in China, and
# servers often run on UTC: from 00:00 to 08:00 Beijing time the host's date is still yesterday.
CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "UTC+08:00")


def china_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in China (``now``: an aware datetime, for tests; default the current time)."""
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(CHINA_TIME).date()


def china_time_text(timestamp: str) -> str:
    """A stored ISO timestamp (UTC) as officers read it: '2026-12-08 10:30（北京时间）'."""
    t = dt.datetime.fromisoformat(timestamp)
    t = t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
    return f"{t.astimezone(CHINA_TIME):%Y-%m-%d %H:%M}（北京时间）"


def as_date(value, name: str) -> dt.date:
    """The day of ``value``: a date, a datetime (its day: a datetime does not compare with the
    stored dates) or 'YYYY-MM-DD'; ``name`` is the argument the error names."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a date: give YYYY-MM-DD") from None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise TypeError(f"{name} must be a date, a datetime or 'YYYY-MM-DD', not {value!r} ({type(value).__name__})")


def assessment_day(value, where: str, now: dt.datetime | None = None) -> dt.date:
    """The assessment date of a new record (:func:`as_date`), refused when after today in China (as
    the web forms check it): a record dated ahead would be recognised for longer than its policy's
    maximum age allows."""
    day = as_date(value, "assessed_on")
    today = china_today(now)
    if day > today:
        raise store_error(StoreCode.STORE_014, where, date=day.isoformat(), today=today.isoformat())
    return day
