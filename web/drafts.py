"""People registered at this node and assessment drafts (web tables).

A person is found by the store's person key (HMAC of the 公民身份号码); the number itself is kept
only AES-GCM encrypted under the web app's key, for the submission, and shown masked.
"""
from __future__ import annotations

import json
import secrets

from assess import idnumber

from . import stores
from .accounts import now
from .db import get_db, write


class DraftError(ValueError):
    pass


def check_id(id_number: str) -> str:
    chk = idnumber.check(id_number)
    if not chk.ok:
        raise DraftError(f"公民身份号码 {idnumber.mask(id_number)} 无效：{idnumber.REASON_ZH[chk.reason]}"
                         + (f"（校验码应为 {chk.expected_check}）" if chk.expected_check else "") + "。请核对证件。")
    return chk.number


def find_person(id_number: str) -> dict | None:
    number = check_id(id_number)
    row = get_db().execute("SELECT * FROM people WHERE person_key = ?", (stores.person_key(number),)).fetchone()
    return dict(row) if row else None


def register_person(id_number: str, name: str, user_id: int) -> dict:
    number = check_id(id_number)
    name = name.strip()
    if not name:
        raise DraftError("此人尚未登记：请填写姓名后登记。")
    chk = idnumber.check(number)
    pkey = stores.person_key(number)
    with write() as conn:
        conn.execute("INSERT OR IGNORE INTO people (person_key, id_enc, masked, name, sex, birth, created_by, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (pkey, stores.cipher().encrypt(number, pkey), idnumber.mask(number), name[:50], chk.sex,
                      chk.birth.isoformat(), user_id, now()))
    return dict(get_db().execute("SELECT * FROM people WHERE person_key = ?", (pkey,)).fetchone())


def get_person(pid: int) -> dict | None:
    row = get_db().execute("SELECT * FROM people WHERE id = ?", (pid,)).fetchone()
    return dict(row) if row else None


def id_number(person: dict) -> str:
    return stores.cipher().decrypt(person["id_enc"], person["person_key"])


def create_draft(person_id: int, owner_id: int, instrument: str, version: str, assessed_on: str,
                 reason: str) -> str:
    did = secrets.token_hex(16)
    with write() as conn:
        conn.execute("INSERT INTO drafts (id, person_id, owner_id, instrument, version, assessed_on, reason, "
                     "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (did, person_id, owner_id, instrument, version, assessed_on, reason, now()))
    return did


def get_draft(did: str) -> dict | None:
    row = get_db().execute("SELECT * FROM drafts WHERE id = ?", (did,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["answers"] = json.loads(d["answers"])
    return d


def save_answers(did: str, answers: dict) -> str:
    at = now()
    with write() as conn:
        conn.execute("UPDATE drafts SET answers = ?, updated_at = ? WHERE id = ? AND record_id IS NULL",
                     (json.dumps(answers, ensure_ascii=False, sort_keys=True), at, did))
    return at


def mark_submitted(did: str, record_id: str) -> None:
    with write() as conn:
        conn.execute("UPDATE drafts SET record_id = ?, updated_at = ? WHERE id = ?", (record_id, now(), did))


def drafts_of(owner_id: int, open_only: bool = True) -> list[dict]:
    q = ("SELECT d.id, d.instrument, d.version, d.assessed_on, d.updated_at, d.record_id, p.name, p.masked "
         "FROM drafts d JOIN people p ON p.id = d.person_id WHERE d.owner_id = ?"
         + (" AND d.record_id IS NULL" if open_only else "") + " ORDER BY d.updated_at DESC LIMIT 50")
    return [dict(r) for r in get_db().execute(q, (owner_id,))]


def person_drafts(person_id: int) -> list[dict]:
    return [dict(r) for r in get_db().execute(
        "SELECT d.*, u.display_name AS owner FROM drafts d JOIN users u ON u.id = d.owner_id "
        "WHERE d.person_id = ? ORDER BY d.updated_at DESC", (person_id,))]
