"""The :class:`Store`: a deployment's settings, keys and database, and the operations on records."""
from __future__ import annotations

import getpass
import json
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import yaml
from sqlalchemy import and_, select
from sqlalchemy.orm import aliased

from .. import idnumber
from .._version import __version__ as ENGINE_VERSION
from ..result import Result
from ..score import resolve, score_one
from . import db, keys, records, schema, signing
from .errors import StoreCode, store_error
from .policy import Policy, load_policy


class PreparedRecord(NamedTuple):
    row: dict        # the record's columns
    sig: dict        # its signed group (of one)


log = logging.getLogger("assess.store")
CONFIG_ENV = "ASSESS_STORE_CONFIG"


class Store:
    """One department's handle on a results store.

    Deployment settings (all required, none has a default): ``url``, ``department`` (this
    node's issuing department), ``keys_dir`` (person-key secret, id-number key, this department's
    signing key; ``public/`` holds the trusted departments' public keys) and ``keep_id_number``
    (``encrypted`` or ``none``). ``policy`` (recognition policy file) is needed only to recognise.
    """

    def __init__(self, url: str, *, department: str, keys_dir, keep_id_number: str, policy=None,
                 public_keys_dir=None, actor: str | None = None):
        if keep_id_number not in keys.KEEP_ID_NUMBER:
            raise store_error(StoreCode.STORE_003, "store settings", name="keep_id_number",
                              fix="Set it to 'encrypted' or 'none'.")
        self.url, self.department, self.keys_dir = url, department, Path(keys_dir)
        self.keep_id_number = keep_id_number
        self.public_keys_dir = Path(public_keys_dir) if public_keys_dir else self.keys_dir / "public"
        self.actor = actor or getpass.getuser()
        self._policy = policy if isinstance(policy, Policy) or policy is None else None
        self._policy_path = None if isinstance(policy, Policy) or policy is None else policy
        self._engine = None
        self._schema_checked = False
        self._secret = self._cipher = self._signer = self._public = None
        self.manifests = signing.ManifestCache()
        # A deployment's own writer lock (web/ sets its cross-process one), held only around a write
        # transaction: records are built and signed before it is taken.
        self.write_lock = nullcontext()

    # ------------------------------------------------------------------ set-up
    @classmethod
    def from_config(cls, path=None) -> "Store":
        path = path or os.environ.get(CONFIG_ENV)
        if not path:
            raise store_error(StoreCode.STORE_003, "store", name=CONFIG_ENV,
                              fix="Give --config FILE or set ASSESS_STORE_CONFIG to the deployment's store.yaml.")
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise store_error(StoreCode.STORE_004, str(path), detail="cannot read the store config",
                              fix=str(exc).splitlines()[0]) from None
        for name in ("url", "department", "keys_dir", "keep_id_number"):
            if not data.get(name):
                raise store_error(StoreCode.STORE_003, str(path), name=name,
                                  fix="Every deployment must choose it; there is no default.")
        base = path.parent

        def rel(p):
            return None if p is None else str(p if Path(p).is_absolute() else base / p)
        url = data["url"]
        if "://" not in url:
            url = db.sqlite_url(rel(url))
        return cls(url, department=data["department"], keys_dir=rel(data["keys_dir"]),
                   keep_id_number=data["keep_id_number"], policy=rel(data.get("policy")),
                   public_keys_dir=rel(data.get("public_keys_dir")), actor=data.get("actor"))

    @property
    def engine(self):
        if self._engine is None:
            self._engine = db.make_engine(self.url)
        return self._engine

    def close(self):
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def init(self) -> list[str]:
        """Create missing key files for this department and apply pending schema migrations."""
        made = keys.create_keys(self.keys_dir, self.department, id_number_key=self.keep_id_number == "encrypted")
        done = self._write(schema.migrate)
        self._schema_checked = True
        return [f"key file {p}" for p in made] + [f"migration {m}" for m in done]

    def check_schema(self):
        """STORE_001 unless the store is initialised and current; a missing SQLite file is not created."""
        where = self.url.split("@")[-1]
        path = db.sqlite_file(self.url)
        if path is not None and not path.exists():
            raise store_error(StoreCode.STORE_001, str(path), found="0: no database file")
        with db.read(self.engine) as conn:
            schema.check_current(conn, where)
        self._schema_checked = True

    def ready(self):
        """:meth:`check_schema`, once per handle: every operation but ``init`` needs an initialised store
        (opening a missing SQLite file would create an empty one and fail on its first table)."""
        if not self._schema_checked:
            self.check_schema()

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            if self._policy_path is None:
                raise store_error(StoreCode.STORE_003, "store settings", name="policy",
                                  fix="Name the recognition policy file in the store config.")
            self._policy = load_policy(self._policy_path)
        return self._policy

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = keys.load_secret(self.keys_dir, keys.PERSON_SECRET)
        return self._secret

    @property
    def cipher(self):
        if self.keep_id_number == "none":
            return None
        if self._cipher is None:
            self._cipher = keys.IdCipher(keys.load_secret(self.keys_dir, keys.ID_NUMBER_KEY))
        return self._cipher

    @property
    def signer(self):
        if self._signer is None:
            priv = keys.load_signing_key(self.keys_dir, self.department)
            self._signer = (priv, keys.key_id(priv.public_key()))
        return self._signer

    @property
    def public_keys(self) -> dict:
        if self._public is None:
            self._public = keys.load_public_keys(self.public_keys_dir)
        return self._public

    def person_key(self, id_number: str) -> str:
        return keys.person_key(self.secret, keys.normalise(id_number))

    # ------------------------------------------------------------------ writing records
    def _row(self, *, pkey, enc, region, ins, result: dict, answers_json, assessed_on, assessors, organisation,
             reason, origin, supersedes, source, created_at, key_id) -> dict:
        rid = records.record_id(self.department, pkey, ins.id, ins.version, assessed_on, origin, supersedes,
                                answers_json)
        return {"record_id": rid, "person_key": pkey, "id_number_enc": enc, "region": region,
                "instrument": ins.id, "version": ins.version, "definition_hash": ins.definition_hash,
                "engine_version": ENGINE_VERSION,
                "settings": signing.canonical({f"{ins.id}.{k}": v for k, v in ins.setting_values.items()}),
                "answers": answers_json, "result": signing.canonical(result), "total": result.get("total"),
                "level": result.get("level"), "status": result["status"], "assessed_on": assessed_on,
                "assessors": signing.canonical(list(assessors)), "organisation": organisation,
                "department": self.department, "reason": reason, "origin": origin, "supersedes": supersedes,
                "source": None if source is None else signing.canonical(source), "created_at": created_at,
                "key_id": key_id}

    def add(self, result: Result, answers: dict, *, id_number: str, assessed_on, assessors, organisation: str,
            reason: str, region: str | None = None, supersedes: str | None = None, settings=None) -> str:
        """Store one scored assessment (status ok only) signed by this department; returns its record id."""
        return self.add_prepared(self.prepare_add(
            result, answers, id_number=id_number, assessed_on=assessed_on, assessors=assessors,
            organisation=organisation, reason=reason, region=region, supersedes=supersedes, settings=settings))

    def prepare_add(self, result: Result, answers: dict, *, id_number: str, assessed_on, assessors,
                    organisation: str, reason: str, region: str | None = None, supersedes: str | None = None,
                    settings=None) -> PreparedRecord:
        """The record :meth:`add` stores, built and signed, without touching the database: a caller that
        holds the writer lock across several writes (web/) prepares outside it."""
        if result.status != "ok":
            raise store_error(StoreCode.STORE_008, "add", detail=f"result status is {result.status}",
                              fix="Only complete results (status ok) are stored.")
        if reason not in records.REASONS:
            raise store_error(StoreCode.STORE_003, "add", name="reason", fix=f"Use one of {', '.join(records.REASONS)}.")
        ins = resolve(result.instrument, settings or {k.split(".", 1)[1]: v for k, v in result.settings.items()})
        norm = keys.normalise(id_number, "add")
        pkey = keys.person_key(self.secret, norm)
        enc = self.cipher.encrypt(norm, pkey) if self.cipher else None
        priv, kid = self.signer
        ans = signing.canonical({k: v for k, v in answers.items() if k not in ("A.2.8", "A.2.1")})
        day = records.assessment_day(assessed_on, "add")
        row = self._row(pkey=pkey, enc=enc, region=region, ins=ins, result=result.to_dict(), answers_json=ans,
                        assessed_on=day.isoformat(), assessors=assessors, organisation=organisation,
                        reason=reason, origin="assessment", supersedes=supersedes, source=None,
                        created_at=records.now(), key_id=kid)
        return PreparedRecord(row, records.seal([row], priv, self.department, kid, row["created_at"]))

    def add_prepared(self, prepared: PreparedRecord) -> str:
        """Store a record from :meth:`prepare_add` (skipped when the same record is stored); its id."""
        row, sig = prepared
        self.ready()

        def do(conn):
            if row["supersedes"] is not None:
                self._check_supersedes(conn, row)
            return records.insert_records(conn, [row], sig)
        self._write(do)
        log.info("stored record %s for person %s…", row["record_id"][:12], row["person_key"][:12])
        return row["record_id"]

    def _write(self, fn):
        with self.write_lock:
            return db.write(self.engine, fn)

    def _get(self, conn, record_id):
        r = conn.execute(select(schema.records).where(schema.records.c.record_id == record_id)).mappings().first()
        if r is None:
            raise store_error(StoreCode.STORE_009, "store", record_id=record_id)
        return r

    def _check_supersedes(self, conn, row) -> None:
        """A record supersedes only a stored record of the same person that this department issued
        (recognition honours no other link: recognise.standing)."""
        old = self._get(conn, row["supersedes"])
        if old["department"] != self.department:
            raise store_error(StoreCode.STORE_010, "add", record_id=old["record_id"], issuer=old["department"],
                              action="supersede")
        if old["person_key"] != row["person_key"]:
            raise store_error(StoreCode.STORE_013, "add", record_id=old["record_id"])

    def revoke(self, record_id: str, reason: str) -> str:
        """Revoke a record this department issued (a signed revocation row; the record stays)."""
        priv, kid = self.signer
        self.ready()

        def do(conn):
            r = self._get(conn, record_id)
            if r["department"] != self.department:
                raise store_error(StoreCode.STORE_010, "revoke", record_id=record_id, issuer=r["department"],
                                  action="revoke")
            old = conn.execute(select(schema.revocations)
                               .where(schema.revocations.c.record_id == record_id)).mappings().first()
            if old is not None:
                # One revocation per record (a unique column): a forged one cannot be outvoted, only reported.
                why = signing.check_revocation(old, self.public_keys, r["department"])
                if why:
                    raise store_error(StoreCode.STORE_012, "revoke", record_id=record_id, detail=why)
                raise store_error(StoreCode.STORE_011, "revoke", record_id=record_id)
            row = {"record_id": record_id, "department": self.department, "reason": reason,
                   "actor": self.actor, "created_at": records.now(), "key_id": kid}
            payload = signing.revocation_payload(row)
            row["revocation_id"] = signing.record_digest(payload.encode())
            row["signature"] = signing.sign(priv, payload)
            db.insert(conn, schema.revocations, [row])
            return row["revocation_id"]
        return self._write(do)

    def current(self, conn, where=True) -> list[dict]:
        """The records matching ``where`` that are neither superseded nor revoked, by the rules of
        recognition (recognise.standing): only signed revocations and verified links count."""
        from .recognise import REVOCATION_COLUMNS, standing
        r, s, v = schema.records, aliased(schema.records), schema.revocations
        revoked = [v.c[n].label(f"revoked_{n}") for n in REVOCATION_COLUMNS]
        rows = [dict(x) for x in conn.execute(
            select(r, *revoked).outerjoin(v, v.c.record_id == r.c.record_id).where(where)).mappings()]
        successors = [dict(x) for x in conn.execute(     # the records naming one of those as superseded
            select(s, *revoked).select_from(s.join(r, r.c.record_id == s.c.supersedes)
                                            .outerjoin(v, v.c.record_id == s.c.record_id)).where(where)).mappings()]
        seen = {x["record_id"] for x in rows}
        superseded, gone = standing(self, conn, rows + [x for x in successors if x["record_id"] not in seen])
        return [x for x in rows if x["record_id"] not in superseded and x["record_id"] not in gone]

    def rescore(self, instrument: str, version: str | None = None, settings=None, record_ids=None) -> list[dict]:
        """Re-score this department's current records of an instrument from their raw answers.

        Every record whose definition, settings or engine differ gets a new record that supersedes
        it, and a ``rescores`` row with the values before and after. Returns those rows.
        """
        from ..instrument import load_instrument
        self.ready()
        ins = load_instrument(instrument, version=version, settings=settings)
        priv, kid = self.signer
        created = records.now()
        cond = and_(schema.records.c.department == self.department, schema.records.c.instrument == ins.id)
        if record_ids:
            cond = and_(cond, schema.records.c.record_id.in_(list(record_ids)))
        with db.read(self.engine) as conn:
            if record_ids:
                self._check_found(conn, record_ids, "rescore", mine=True)
            old = self.current(conn, cond)
        new_rows, logs = [], []
        settings_json = signing.canonical({f"{ins.id}.{k}": v for k, v in ins.setting_values.items()})
        for o in old:
            if (o["definition_hash"], o["settings"], o["engine_version"]) == (ins.definition_hash, settings_json,
                                                                              ENGINE_VERSION):
                continue
            res = score_one(ins, json.loads(o["answers"]), allow_incomplete=True)
            d = res.to_dict()
            before = {"version": o["version"], "definition_hash": o["definition_hash"], "total": o["total"],
                      "level": o["level"], "level_initial": json.loads(o["result"]).get("level_initial"),
                      "status": o["status"]}
            after = {"version": ins.version, "definition_hash": ins.definition_hash, "total": res.total,
                     "level": res.level, "level_initial": res.level_initial, "status": res.status}
            if res.status != "ok":
                log.warning("record %s… does not score under %s v%s (%s); not superseded",
                            o["record_id"][:12], ins.id, ins.version, res.status)
                continue
            row = self._row(pkey=o["person_key"], enc=o["id_number_enc"], region=o["region"], ins=ins, result=d,
                            answers_json=o["answers"], assessed_on=o["assessed_on"],
                            assessors=json.loads(o["assessors"]), organisation=o["organisation"],
                            reason=o["reason"], origin="rescore", supersedes=o["record_id"],
                            source=json.loads(o["source"]) if o["source"] else None, created_at=created, key_id=kid)
            new_rows.append(row)
            logs.append({"old_record_id": o["record_id"], "new_record_id": row["record_id"],
                         "before": signing.canonical(before), "after": signing.canonical(after),
                         "changed": int((before["total"], before["level"]) != (after["total"], after["level"])),
                         "actor": self.actor, "created_at": created})
        if new_rows:
            sig = records.seal(new_rows, priv, self.department, kid, created)

            def do(conn):
                records.insert_records(conn, new_rows, sig)
                db.insert(conn, schema.rescores, logs)
            self._write(do)
        log.info("rescored %d of %d current %s records", len(new_rows), len(old), ins.id)
        return logs

    # ------------------------------------------------------------------ verification
    def verify(self, record_ids=None):
        """Verify records (all, or the ids given) against the trusted public keys, then their
        revocations; yields Verdicts (``kind`` record or revocation), records first."""
        r, sig_t, v = schema.records, schema.signatures, schema.revocations
        q = select(r).order_by(r.c.seq)
        rq = select(v, r.c.department.label("issuer")).outerjoin(r, r.c.record_id == v.c.record_id) \
            .order_by(v.c.created_at, v.c.revocation_id)
        if record_ids:
            q, rq = q.where(r.c.record_id.in_(list(record_ids))), rq.where(v.c.record_id.in_(list(record_ids)))
        self.ready()
        with db.read(self.engine) as conn:
            if record_ids:
                self._check_found(conn, record_ids, "verify")
            for rec in conn.execute(q).mappings():
                sig = conn.execute(select(sig_t).where(sig_t.c.sig_id == rec["sig_id"])).mappings().first()
                yield signing.verify_record(rec, sig, self.public_keys, self.manifests)
            for rev in conn.execute(rq).mappings():
                why = signing.check_revocation(rev, self.public_keys, rev["issuer"])
                yield signing.Verdict(rev["record_id"], not why, [], why, kind="revocation")

    def _check_found(self, conn, record_ids, where: str, mine: bool = False) -> None:
        """STORE_009 for the first of ``record_ids`` not stored (a command on nothing is a mistake);
        with ``mine``, STORE_010 for one this department did not issue."""
        r = schema.records
        ids = list(dict.fromkeys(record_ids))
        found = dict(conn.execute(select(r.c.record_id, r.c.department).where(r.c.record_id.in_(ids))).all())
        missing = [x for x in ids if x not in found]
        if missing:
            raise store_error(StoreCode.STORE_009, where, record_id=missing[0])
        others = [x for x in ids if found[x] != self.department]
        if mine and others:
            raise store_error(StoreCode.STORE_010, where, record_id=others[0], issuer=found[others[0]],
                              action=where)

    def decrypt_id(self, rec) -> str | None:
        """The identity number of a record, for its own department's authorised use only."""
        if rec["id_number_enc"] is None or self.cipher is None:
            return None
        return self.cipher.decrypt(rec["id_number_enc"], rec["person_key"])

    # ------------------------------------------------------------------ reading
    def recognise(self, id_number, department, purpose, on=None, actor=None):
        """:func:`assess.recognise` asked through this node (audited as such when it asks for another department)."""
        from .recognise import recognise
        return recognise(self, id_number, department, purpose, on=on, actor=actor)

    def lookup(self, id_number, department, purpose, actor=None):
        """Every record of a person, asked through this node (audited as :meth:`recognise` is)."""
        from .recognise import lookup
        return lookup(self, id_number, department, purpose, actor=actor)

    def import_parquet(self, path, **kw):
        from .importer import import_parquet
        return import_parquet(self, path, **kw)

    def audit_rows(self, person_id: str | None = None, limit: int | None = None) -> list[dict]:
        self.ready()
        q = select(schema.audit).order_by(schema.audit.c.seq)
        if person_id is not None:
            q = q.where(schema.audit.c.person_key == self.person_key(person_id))
        if limit:
            q = q.limit(limit)
        with db.read(self.engine) as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


def masked(number) -> str:
    return idnumber.mask(number)
