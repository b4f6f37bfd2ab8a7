"""Recognition (互认): the grade a department may rely on for a purpose, or why there is none.

The candidate is the newest record of the person, assessed on or before the date asked, that is
neither superseded nor revoked (a revoked record never counted, so the one before it is next).
Only what the issuer signed supersedes or revokes (:func:`standing`): a row added to the database
by other means is ignored here and reported by ``verify``.
That one record is then checked, in this order: signature and field digests, instrument (and
version) accepted for the purpose, issuing department accepted, level accepted, assessor count,
age. An older record is never used in place of a newer one that fails a check: a newer assessment
means the older grade no longer describes the person. Every read of a record issued by another
department writes an audit row (who, when, person key, purpose): through the single writer after
the read on SQLite, right after the read, in autocommit, on PostgreSQL.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
from dataclasses import dataclass

from . import db, schema, signing
from .records import as_date, china_time_text, china_today, now


class Reason(str, enum.Enum):
    RECOGNISED = "recognised"
    NO_RECORD = "no_record"
    REVOKED = "revoked"
    SIGNATURE_INVALID = "signature_invalid"
    INSTRUMENT_NOT_ACCEPTED = "instrument_not_accepted"
    ISSUER_NOT_ACCEPTED = "issuer_not_accepted"
    LEVEL_NOT_ACCEPTED = "level_not_accepted"
    TOO_FEW_ASSESSORS = "too_few_assessors"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Recognition:
    """The answer of :func:`assess.recognise`. Truthy only when a grade may be relied on."""

    recognised: bool
    reason: Reason
    detail: str
    department: str
    purpose: str
    on: str
    person_key: str
    level: int | None = None          # the grade to rely on (after the crosswalk, if one applies)
    scale: str | None = None          # the instrument, or the crosswalk's target scale
    record: dict | None = None        # the source record (summary), also when it is not recognised
    crosswalk: str | None = None
    detail_zh: str = ""               # ``detail`` in Chinese, for officers (the web's look-up shows it)

    def __bool__(self):
        return self.recognised

    def __str__(self):
        if self.recognised:
            return f"recognised: level {self.level} ({self.scale}) from record {self.record['record_id']} " \
                   f"— {self.detail}"
        return f"no recognisable result: {self.reason.value} — {self.detail}"

    def to_dict(self) -> dict:
        return {"recognised": self.recognised, "reason": self.reason.value, "detail": self.detail,
                "detail_zh": self.detail_zh,
                "department": self.department, "purpose": self.purpose, "on": self.on,
                "person_key": self.person_key, "level": self.level, "scale": self.scale,
                "crosswalk": self.crosswalk, "record": self.record}


SUMMARY = ("record_id", "instrument", "version", "department", "organisation", "assessed_on", "total", "level",
           "status", "reason", "origin", "supersedes", "created_at")


def summary(rec) -> dict:
    out = {k: rec[k] for k in SUMMARY}
    out["assessors"] = len(json.loads(rec["assessors"]))
    return out


# A person's records as one range scan of the record_id index (schema.person_range), newest first,
# each with its revocation (if any) as ``revoked_<column>``.
REVOCATION_COLUMNS = tuple(c.name for c in schema.revocations.columns if c.name != "record_id")
PERSON_ROWS = (f"SELECT {', '.join('r.' + c.name for c in schema.records.columns)}, "
               + ", ".join(f"v.{n} AS revoked_{n}" for n in REVOCATION_COLUMNS)
               + " FROM records r LEFT OUTER JOIN revocations v ON v.record_id = r.record_id "
               "WHERE r.record_id >= :lo AND r.record_id < :hi AND r.person_key = :pkey "
               "ORDER BY r.assessed_on DESC, r.seq DESC")
SIGNATURE = f"SELECT {', '.join(c.name for c in schema.signatures.columns)} FROM signatures WHERE sig_id = :sig_id"


def _person_rows(store, conn, pkey):
    return db.query(conn, PERSON_ROWS, {"lo": pkey[:16], "hi": pkey[:16] + "g", "pkey": pkey})


def _signature(store, conn, rec):
    if store.manifests.get(rec["sig_id"]) is not None:
        return None      # checked before; verify_record reads the cache
    rows = db.query(conn, SIGNATURE, {"sig_id": rec["sig_id"]})
    return rows[0] if rows else None


def standing_of(store, conn, rec) -> tuple[bool, dict | None]:
    """Whether one stored record is superseded, and its revocation when one counts: :func:`standing`
    over its person's records (the web's record page)."""
    superseded, revoked = standing(store, conn, _person_rows(store, conn, rec["person_key"]))
    return rec["record_id"] in superseded, revoked.get(rec["record_id"])


def _verdict(store, conn, rec) -> signing.Verdict:
    return signing.verify_record(rec, _signature(store, conn, rec), store.public_keys, store.manifests)


def revocation_of(rec) -> dict | None:
    """The revocation row joined to a person's record (PERSON_ROWS), or None."""
    if rec["revoked_revocation_id"] is None:
        return None
    return {"record_id": rec["record_id"], **{n: rec[f"revoked_{n}"] for n in REVOCATION_COLUMNS}}


def standing(store, conn, rows) -> tuple[set, dict]:
    """(ids superseded, revocation detail by id) of a person's records, counting only what the
    issuer signed: anyone who can write to the database can add rows, but not sign them.

    A supersedes link counts when the superseding record verifies and was issued by the department
    that issued the record it replaces (and concerns the same person); a revocation,
    when signing.check_revocation accepts it. Returns the superseded ids and, for each record whose
    revocation counts, its detail; a revocation that does not count is ignored (verify reports it).
    """
    by_id = {r["record_id"]: r for r in rows}
    superseded = set()
    for r in rows:
        old = by_id.get(r["supersedes"]) if r["supersedes"] else None
        if old is not None and (old["department"], old["person_key"]) == (r["department"], r["person_key"]) \
                and _verdict(store, conn, r).ok:
            superseded.add(old["record_id"])
    revoked = {}
    for r in rows:
        rev = revocation_of(r)
        if rev is not None and not signing.check_revocation(rev, store.public_keys, r["department"]):
            revoked[r["record_id"]] = rev
    return superseded, revoked


def _check(store, conn, rec, purpose, on: dt.date):
    """(Reason, detail, detail in Chinese, accept rule) for one candidate record."""
    verdict = _verdict(store, conn, rec)
    if not verdict.ok:
        return Reason.SIGNATURE_INVALID, verdict.reason, f"签名校验失败：{verdict.reason_zh}", None
    rules = [a for a in purpose.accept if a.instrument == rec["instrument"]]
    inst, dept, level, day = rec["instrument"], rec["department"], rec["level"], rec["assessed_on"]
    if not rules:
        accepted = ", ".join(sorted({a.instrument for a in purpose.accept}))
        return (Reason.INSTRUMENT_NOT_ACCEPTED, f"{inst} is not accepted (accepted: {accepted})",
                f"不采信 {inst} 的结果（采信：{accepted}）", None)
    first = None
    assessors = len(json.loads(rec["assessors"]))
    age = (on - dt.date.fromisoformat(day)).days
    for a in rules:
        if a.versions is not None and rec["version"] not in a.versions:
            versions = ", ".join(a.versions)
            why = (Reason.INSTRUMENT_NOT_ACCEPTED, f"{inst} version {rec['version']} is not accepted "
                                                   f"(accepted: {versions})",
                   f"不采信 {inst} {rec['version']} 版的结果（采信版本：{versions}）")
        elif dept not in a.issuers:
            issuers = ", ".join(a.issuers)
            why = (Reason.ISSUER_NOT_ACCEPTED, f"results issued by {dept} are not accepted (accepted: {issuers})",
                   f"不采信 {dept} 出具的结果（采信：{issuers}）")
        elif a.levels is not None and level not in a.levels:
            levels = ", ".join(map(str, a.levels))
            why = (Reason.LEVEL_NOT_ACCEPTED, f"level {level} is not accepted (accepted: {levels})",
                   f"等级 {level} 不在采信范围内（采信等级：{levels}）")
        elif assessors < a.min_assessors:
            why = (Reason.TOO_FEW_ASSESSORS, f"{assessors} assessor(s); the policy requires {a.min_assessors}",
                   f"评估员 {assessors} 名，政策要求至少 {a.min_assessors} 名")
        elif age > a.max_age_days:
            why = (Reason.EXPIRED, f"assessed {day}, {age} days before {on.isoformat()}; "
                                   f"the policy accepts at most {a.max_age_days} days",
                   f"评估于 {day}，至 {on.isoformat()} 已 {age} 天，政策最长采信 {a.max_age_days} 天")
        else:
            policy = f"{store.policy.name} v{store.policy.version}"
            return (Reason.RECOGNISED, f"assessed {day} by {dept} ({rec['organisation']}), {age} days old, "
                                       f"policy {policy}",
                    f"{dept}（{rec['organisation']}）于 {day} 评估，至 {on.isoformat()} 已 {age} 天，依据政策 {policy}",
                    a)
        first = first or why
    return (*first, None)


def _audit_rows(store, reader, action, purpose, pkey, rows, outcome, actor) -> list[dict]:
    """Audit rows for the records read that another department issued. The asking department is
    what the caller says; the node (the store's own department, its config and keys) is who really
    read. So a record is "another department's" when it is either's, and a node asking for another
    department is named in the actor: the nhsa node cannot read mca's records unaudited by asking
    as mca, nor the mca node pass its reads off as nhsa's."""
    at = now()
    node = store.department
    who = actor or store.actor
    if node and node != reader:
        who = f"{who} @ {node}"
    return [{"at": at, "actor": who, "department": reader, "action": action, "purpose": purpose,
             "person_key": pkey, "record_id": r["record_id"], "record_department": r["department"],
             "outcome": outcome} for r in rows if r["department"] != reader or (node and r["department"] != node)]


def _audit(store, rows) -> None:
    if rows:
        # A store write like any other: under the deployment's writer lock (Store.write_lock), not
        # in SQLite's busy back-off behind the writers that hold it.
        store._write(lambda conn: db.insert(conn, schema.audit, rows))


@contextlib.contextmanager
def _session(store):
    """The look-up's connection, and where its audit rows go.

    SQLite: a read transaction, then the audit rows through the single writer (readers never
    write; BEGIN IMMEDIATE for every look-up would queue look-ups behind imports). PostgreSQL:
    autocommit, so a look-up is two round trips (its read, then its audit rows) instead of four
    with BEGIN and COMMIT. Each statement is atomic, and every table read is append-only, so a
    read sees whole records, their signatures and revocations as committed; if the audit insert
    fails, the look-up raises and returns nothing, as before.
    """
    pending: list = []
    if store.engine.dialect.name == "sqlite":
        with db.read(store.engine) as conn:
            yield conn, pending
        _audit(store, pending)
    else:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn, pending
            if pending:
                db.insert(conn, schema.audit, pending)


def recognise(store, id_number, department: str, purpose: str, on=None, actor=None) -> Recognition:
    store.ready()
    p = store.policy.purpose(department, purpose)
    on = as_date(on or china_today(), "on")
    pkey = store.person_key(id_number)
    base = dict(department=department, purpose=purpose, on=on.isoformat(), person_key=pkey)
    with _session(store) as (conn, audit):
        rows = _person_rows(store, conn, pkey)
        superseded, revoked = standing(store, conn, rows)
        live = [r for r in rows if r["record_id"] not in superseded and r["assessed_on"] <= on.isoformat()]
        candidates = [r for r in live if r["record_id"] not in revoked]
        if not candidates:
            if live:
                rec, rev = live[0], revoked[live[0]["record_id"]]
                out = Recognition(False, Reason.REVOKED, f"record of {rec['assessed_on']} revoked by "
                                  f"{rev['department']} on {rev['created_at']}: {rev['reason']}",
                                  detail_zh=f"{rec['assessed_on']} 的评估记录已由 {rev['department']} 于 "
                                            f"{china_time_text(rev['created_at'])} 撤销：{rev['reason']}",
                                  record=summary(rec), **base)
                read = live
            else:
                later = len([r for r in rows if r["assessed_on"] > on.isoformat()])
                out = Recognition(False, Reason.NO_RECORD, "no record of this person" if not rows else
                                  f"no current record assessed on or before {on.isoformat()}"
                                  + (f" ({later} later)" if later else ""),
                                  detail_zh="没有此人的评估记录" if not rows else
                                  f"没有 {on.isoformat()} 当日或之前评估的有效记录"
                                  + (f"（之后另有 {later} 条）" if later else ""), **base)
                read = []
        else:
            rec = candidates[0]
            reason, detail, detail_zh, rule = _check(store, conn, rec, p, on)
            level, scale, cw = rec["level"], rec["instrument"], None
            if rule is not None and rule.crosswalk is not None:
                level, scale, cw = rule.crosswalk.levels[rec["level"]], rule.crosswalk.target, rule.crosswalk.id
                detail += f"; level {rec['level']} → {level} by crosswalk {cw} ({rule.crosswalk.source})"
                detail_zh += f"；按对照表 {cw}（{rule.crosswalk.source}）等级 {rec['level']} 对应为 {level}"
            ok = reason is Reason.RECOGNISED
            out = Recognition(ok, reason, detail, level=level if ok else None, scale=scale if ok else None,
                              record=summary(rec), crosswalk=cw if ok else None, detail_zh=detail_zh, **base)
            read = [rec]
        audit += _audit_rows(store, department, "recognise", purpose, pkey, read, out.reason.value, actor)
    return out


def lookup(store, id_number, department: str, purpose: str, actor=None) -> list[dict]:
    """Every record of a person with its state (current, superseded, revoked) and verification."""
    store.ready()
    store.policy.purpose(department, purpose)
    pkey = store.person_key(id_number)
    out = []
    with _session(store) as (conn, audit):
        rows = _person_rows(store, conn, pkey)
        superseded, revoked = standing(store, conn, rows)
        for r in rows:
            v = _verdict(store, conn, r)
            state = "revoked" if r["record_id"] in revoked else \
                "superseded" if r["record_id"] in superseded else "current"
            out.append({**summary(r), "state": state, "verified": v.ok, "verify_detail": v.reason})
        audit += _audit_rows(store, department, "lookup", purpose, pkey, rows, "read", actor)
    return out
