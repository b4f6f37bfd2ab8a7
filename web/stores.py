"""The assess store as the web app uses it, plus the few operations its API does not have yet.

``get_store`` opens the deployment's store once per process. ``submit`` adds an idempotency key
around :meth:`assess.store.Store.add` (a tablet that retries after a dropped connection must not
store twice); ``get_record`` reads one record by id with its signature verified (the store has
no such reader). Both are candidates to move into ``assess.store`` (see the web README notes).
"""
from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path

from flask import current_app

import assess
from assess import idnumber
from assess.store import Store, keys, schema
from assess.store.recognise import standing_of
from assess.store import db as store_db

from .accounts import now
from .db import get_db, write, write_lock

_lock = threading.Lock()
WEB_KEY = "web-id.key"       # AES key for id numbers kept with drafts (instance folder, mode 600)


def init_app(app) -> None:
    app.extensions["assess_store"] = None
    app.extensions["assess_web_cipher"] = None


def get_store() -> Store:
    ext = current_app.extensions
    if ext["assess_store"] is None:
        with _lock:
            if ext["assess_store"] is None:
                store = Store.from_config(current_app.config["STORE_CONFIG"])
                store.write_lock = write_lock()     # the store's writes queue with the web's own
                ext["assess_store"] = store
    return ext["assess_store"]


def warm() -> None:
    """Do at start what the first submission would otherwise pay for (1–2 s in a fresh worker): open
    the store and its keys, and load the default instrument both as the form scores it and as
    ``Store.add`` resolves it again from the result's settings (a second cache entry in assess)."""
    from assess.score import resolve
    store = get_store()
    store.secret, store.cipher, store.signer            # noqa: B018 (loaded on first use)
    with store.engine.connect():
        pass
    ins = assess.load_instrument(current_app.config["DEFAULT_INSTRUMENT"])
    resolve(ins.id, dict(ins.setting_values))
    cipher()


def departments() -> dict:
    return dict(get_store().policy.departments)


def purposes(department: str) -> list[tuple[str, str]]:
    return [(pid, p.label) for (dept, pid), p in get_store().policy.purposes.items() if dept == department]


def cipher() -> keys.IdCipher:
    ext = current_app.extensions
    if ext["assess_web_cipher"] is None:
        path = Path(current_app.instance_path) / WEB_KEY
        if not path.exists():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(os.urandom(32).hex().encode())
            except FileExistsError:
                pass          # another worker made it first
        ext["assess_web_cipher"] = keys.IdCipher(keys.load_secret(path.parent, WEB_KEY))
    return ext["assess_web_cipher"]


def person_key(id_number: str) -> str:
    return get_store().person_key(id_number)


def masked(id_number: str) -> str:
    return idnumber.mask(id_number)


def submit(submission_id: str, result, answers: dict, *, id_number: str, assessed_on: str, assessors: list,
           organisation: str, reason: str, user_id: int, cosigner_id: int | None = None) -> tuple[str, bool]:
    """Store one scored assessment exactly once per ``submission_id``: (record id, newly stored).
    A later request with the same id gets the first request's record, whatever it sends."""
    db = get_db()
    row = _mapped(db, submission_id)
    if row is not None:
        return row["record_id"], False
    store = get_store()
    # The record is built and signed before the deployment's writer lock is taken; under the lock
    # the mapping is looked up again (a concurrent request with the same id may have stored its
    # record meanwhile, with other answers, so another record id) and held across both inserts, so
    # one submission id never stores two records and its mapping names the stored request's record.
    prepared = store.prepare_add(result, answers, id_number=id_number, assessed_on=assessed_on,
                                 assessors=assessors, organisation=organisation, reason=reason)
    with write_lock():
        row = _mapped(db, submission_id)
        if row is not None:
            return row["record_id"], False
        rid = store.add_prepared(prepared)
        with write(db) as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO submissions (submission_id, record_id, department, user_id, cosigner_id, "
                "person_key, masked, level, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (submission_id, rid, store.department, user_id, cosigner_id, prepared.row["person_key"],
                 idnumber.mask(id_number), result.level, now()))
    return rid, cur.rowcount == 1


def _mapped(db, submission_id: str):
    return db.execute("SELECT record_id FROM submissions WHERE submission_id = ?", (submission_id,)).fetchone()


def submission(record_id: str) -> dict | None:
    row = get_db().execute("SELECT * FROM submissions WHERE record_id = ? ORDER BY created_at LIMIT 1",
                           (record_id,)).fetchone()
    return dict(row) if row else None


def recent_submissions(department: str, limit: int = 100) -> list[dict]:
    return [dict(r) for r in get_db().execute(
        "SELECT s.*, u.display_name AS assessor FROM submissions s LEFT JOIN users u ON u.id = s.user_id "
        "WHERE s.department = ? ORDER BY s.created_at DESC LIMIT ?", (department, limit))]


def get_record(record_id: str) -> dict | None:
    """One stored record (parsed), its verification and whether it is revoked or superseded."""
    store = get_store()
    r = schema.records
    with store_db.read(store.engine) as conn:
        rec = conn.execute(r.select().where(r.c.record_id == record_id)).mappings().first()
        if rec is None:
            return None
        rec = dict(rec)
        # Only what the issuer signed counts, by the rules assess.recognise applies (standing).
        superseded, revoked = standing_of(store, conn, rec)
    verdict = next(iter(store.verify([record_id])))
    out = {k: rec[k] for k in ("record_id", "instrument", "version", "definition_hash", "engine_version",
                               "assessed_on", "organisation", "department", "reason", "origin", "created_at",
                               "total", "level", "status")}
    out.update(result=json.loads(rec["result"]), answers=json.loads(rec["answers"]),
               assessors=json.loads(rec["assessors"]), settings=json.loads(rec["settings"]),
               verified=verdict.ok, verify_detail=verdict.reason_zh or verdict.reason, superseded=superseded,
               revoked=dict(revoked) if revoked else None)
    return out


def revoke(record_id: str, reason: str, actor: str) -> str:
    """Revoke a record of this department, with the person who did it as the store's actor."""
    store = copy.copy(get_store())      # Store.revoke takes its actor from the handle
    store.actor = actor
    return store.revoke(record_id, reason)        # its write takes the writer lock (get_store)


def log_lookup(user_id: int, department: str, purpose: str, person_key_: str, outcome: str) -> None:
    """The web app's own log of every look-up (the store audits reads of other departments' records)."""
    with write() as conn:
        conn.execute("INSERT INTO lookups (at, user_id, department, purpose, person_key, outcome) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (now(), user_id, department, purpose, person_key_, outcome))
