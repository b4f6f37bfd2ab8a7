"""Bulk import of a screening output (the Parquet file ``assess screen`` writes).

Only rows with ``status == ok`` become records; the others are counted by status. Rows whose
identity number (``A.2.8``) or region code fails its check are counted too and never echoed.
The name (``A.2.1``) is not stored: the person key identifies the person.

Idempotent, resumable, atomic per batch: the file is read in batches of a fixed size; each batch
is written in one transaction together with an ``import_batches`` row naming the file (by SHA-256
of its bytes), the batch size and the batch number. A re-run skips the batches already committed,
and the natural key (record_id) makes any overlap a no-op, so a kill -9 leaves whole batches only
and running the import again completes it.

Answers and scores are turned into canonical JSON column-wise with Arrow, so that the per-row
Python work is only the keyed hash, the encryption and the digests.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import idnumber
from .._version import __version__ as ENGINE_VERSION
from ..instrument import load_instrument
from . import db, records, schema, signing
from .errors import StoreCode, store_error

log = logging.getLogger("assess.store")
SIGN_GROUP = 256          # records per signed manifest: small enough to fetch and check per look-up
PAUSE_ENV = "ASSESS_STORE_IMPORT_PAUSE"   # seconds to sleep after each committed batch (tests, demos)
_UNSAFE = r'["\\\x00-\x1f]'


@dataclass
class ImportReport:
    file: str
    file_digest: str
    rows: int = 0
    stored: int = 0
    already: int = 0
    skipped: dict = field(default_factory=dict)      # status or rejection reason → count
    batches: int = 0
    batches_resumed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def add_skipped(self, counts: dict):
        for k, v in counts.items():
            self.skipped[k] = self.skipped.get(k, 0) + v


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_text(col: pa.Array) -> pa.Array:
    """Canonical JSON text of each value of an answer column; "null" for nulls."""
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_floating(t):
        col, t = pc.cast(col, pa.int64()), pa.int64()     # raises on fractional values
    if pa.types.is_integer(t):
        return pc.fill_null(pc.cast(col, pa.string()), "null")
    col = col.cast(pa.string())
    return pc.fill_null(pc.binary_join_element_wise('"', col, '"', ""), "null")


def _icd_list(col: pa.Array) -> pa.Array:
    col = pc.utf8_trim_whitespace(col.cast(pa.string()))
    col = pc.replace_substring_regex(col, r"\s*;\s*", '","')
    empty = pc.fill_null(pc.equal(col, ""), True)
    return pc.if_else(empty, "[]", pc.binary_join_element_wise('["', col, '"]', ""))


def _object(pairs) -> pa.Array:
    """Join (key, JSON text array) pairs, already in sorted key order, into a JSON object per row."""
    parts = ["{"]
    for i, (k, v) in enumerate(pairs):
        parts += [("," if i else "") + json.dumps(k, ensure_ascii=False) + ":", v]
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def _int_text(col) -> pa.Array:
    return pc.fill_null(pc.cast(col, pa.string()), "null")


def import_parquet(store, path, *, instrument: str = "gbt42195-2022", version: str | None = None, settings=None,
                   assessed_on, assessors, organisation: str, reason: str, batch_size: int = 50_000,
                   progress=None) -> ImportReport:
    path = Path(path)
    if reason not in records.REASONS:
        raise store_error(StoreCode.STORE_003, "import", name="reason", fix=f"Use one of {', '.join(records.REASONS)}.")
    assessed_on = dt.date.fromisoformat(str(assessed_on))
    ins = load_instrument(instrument, version=version, settings=settings)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise store_error(StoreCode.STORE_008, path.name, detail=f"not a readable Parquet file ({exc})",
                          fix="Give the output of `assess screen`.") from None
    names = pf.schema_arrow.names
    qids = sorted(q for q in ins._questions if q in names)
    need = ["A.2.8", "region", "source_line", "status", "level", "level_initial", "rules",
            ins.level_score] + [d.id for d in ins.domains] + [s.id for s in ins.scores]
    missing = [c for c in dict.fromkeys(need + [i.id for i in ins.items]) if c not in names]
    if missing:
        raise store_error(StoreCode.STORE_008, path.name, detail=f"columns missing: {', '.join(missing)}",
                          fix="Import the Parquet output of `assess screen` for this instrument.")
    store.check_schema()
    digest = file_digest(path)
    rep = ImportReport(path.name, digest)
    t0 = time.perf_counter()
    with db.read(store.engine) as conn:
        done = {r.batch_no for r in conn.execute(
            schema.import_batches.select().where(schema.import_batches.c.file_digest == digest)
            .where(schema.import_batches.c.batch_size == batch_size))}
    ctx = _Context(store, ins, assessed_on.isoformat(), assessors, organisation, reason, path.name)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    for batch_no, batch in enumerate(pf.iter_batches(batch_size=batch_size, columns=list(dict.fromkeys(
            need + qids)))):
        rep.batches += 1
        rep.rows += batch.num_rows
        if batch_no in done:
            rep.batches_resumed += 1
            continue
        rows, sigs, skipped = ctx.build(batch, qids)
        stored = db.write(store.engine, lambda conn: _write_batch(conn, rows, sigs, {
            "file_digest": digest, "batch_size": batch_size, "batch_no": batch_no, "rows_in": batch.num_rows,
            "skipped": signing.canonical(skipped), "committed_at": records.now()}))
        rep.stored += stored
        rep.already += len(rows) - stored
        rep.add_skipped(skipped)
        log.info("import %s batch %d: %d rows, %d stored, %d skipped", path.name, batch_no, batch.num_rows,
                 stored, sum(skipped.values()))
        if progress:
            progress(rep)
        if pause:
            time.sleep(pause)
    rep.seconds = time.perf_counter() - t0
    return rep


def _write_batch(conn, rows, sigs, batch_row) -> int:
    cols = records.COLUMNS
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    if sigs:
        conn.execute(schema.signatures.insert(), sigs)
    stored = 0
    if rows:
        sql = (f"INSERT INTO records ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))}) "
               f"ON CONFLICT (record_id) DO NOTHING")
        res = conn.exec_driver_sql(sql, rows)
        stored = res.rowcount if res.rowcount is not None and res.rowcount >= 0 else len(rows)
    batch_row.update(stored=stored, already=len(rows) - stored)
    conn.execute(schema.import_batches.insert(), [batch_row])
    return stored


class _Context:
    """What is the same for every row of one import: fields, their digests, keys."""

    def __init__(self, store, ins, assessed_on, assessors, organisation, reason, file_name):
        self.store, self.ins = store, ins
        self.secret, self.cipher = store.secret, store.cipher
        self.priv, self.kid = store.signer
        self.dept, self.created = store.department, records.now()
        const = {"instrument": ins.id, "version": ins.version, "definition_hash": ins.definition_hash,
                 "engine_version": ENGINE_VERSION,
                 "settings": signing.canonical({f"{ins.id}.{k}": v for k, v in ins.setting_values.items()}),
                 "status": "ok", "assessed_on": assessed_on, "assessors": signing.canonical(list(assessors)),
                 "organisation": organisation, "department": self.dept, "reason": reason, "origin": "import",
                 "supersedes": None, "created_at": self.created, "key_id": self.kid}
        self.const = const
        self.template = [signing.field_digest(n, const[n]) if n in const else None for n in signing.FIELDS]
        self.pos = {n: i for i, n in enumerate(signing.FIELDS)}
        self.cache = records.DigestCache()
        self.rid_prefix = f"{self.dept}\x1f".encode()
        self.rid_mid = "\x1f".join(("", ins.id, ins.version, assessed_on, "import", "", "")).encode()
        self.file_json = signing.canonical(file_name)
        self.as_of = dt.date.fromisoformat(assessed_on)
        self.rule_lists = [signing.canonical([r.id for i, r in enumerate(ins.rules) if m >> i & 1])
                           for m in range(1 << len(ins.rules))]

    def build(self, batch: pa.RecordBatch, qids):
        skipped: dict = {}
        status = batch.column("status")
        status = status.cast(pa.string()) if not pa.types.is_dictionary(status.type) else \
            status.dictionary_decode()
        ok = pc.fill_null(pc.equal(status, "ok"), False)
        for v in pc.value_counts(pc.filter(status, pc.invert(ok))).to_pylist():
            skipped[str(v["values"])] = v["counts"]
        batch = batch.filter(ok)
        ids = idnumber.check_array(batch.column("A.2.8"), as_of=self.as_of)
        region = batch.column("region").cast(pa.string())
        region_ok = pc.fill_null(pc.match_substring_regex(region, r"^[0-9]{6}$"), False)
        unsafe = np.zeros(batch.num_rows, bool)
        for q in qids:
            c = batch.column(q)
            if pa.types.is_string(c.type) or pa.types.is_large_string(c.type):
                unsafe |= np.asarray(pc.fill_null(pc.match_substring_regex(c, _UNSAFE), False))
        keep = (ids.reason == idnumber.OK) & np.asarray(region_ok) & ~unsafe
        for r, n in zip(*np.unique(ids.reason[ids.reason != idnumber.OK], return_counts=True)):
            skipped[f"id_number: {idnumber.REASON_ZH[int(r)]}"] = int(n)
        bad_region = int(((ids.reason == idnumber.OK) & ~np.asarray(region_ok)).sum())
        if bad_region:
            skipped["region not 6 digits"] = bad_region
        if int(((ids.reason == idnumber.OK) & np.asarray(region_ok) & unsafe).sum()):
            skipped["answer text not allowed"] = int(((ids.reason == idnumber.OK) & np.asarray(region_ok)
                                                      & unsafe).sum())
        mask = pa.array(keep)
        batch = batch.filter(mask)
        numbers = pc.filter(ids.number, mask).to_pylist()
        ins = self.ins
        answers = _object([(q, _icd_list(batch.column(q)) if getattr(ins.question(q), "type", "") == "icd10_list"
                            else _json_text(batch.column(q))) for q in qids]).to_pylist()
        domains = _object([(d, _int_text(batch.column(d))) for d in sorted(x.id for x in ins.domains)])
        scores = _object([(s, _int_text(batch.column(s))) for s in sorted(x.id for x in ins.scores)])
        rules = pc.take(pa.array(self.rule_lists), pc.cast(batch.column("rules"), pa.int64()))
        result = pc.binary_join_element_wise(
            '{"domains":', domains, ',"level":', _int_text(batch.column("level")),
            ',"level_initial":', _int_text(batch.column("level_initial")), ',"rules":', rules,
            ',"scores":', scores, ',"status":"ok","total":', _int_text(batch.column(ins.level_score)), "}",
            "").to_pylist()
        total = batch.column(ins.level_score).to_pylist()
        level = batch.column("level").to_pylist()
        regions = pc.filter(region, mask).to_pylist()
        sources = pc.binary_join_element_wise('{"file":' + self.file_json + ',"line":',
                                              _json_text(batch.column("source_line")), "}", "").to_pylist()
        return self._rows(numbers, answers, result, total, level, regions, sources) + (skipped,)

    def _rows(self, numbers, answers, result, total, level, regions, sources):
        sha, hd, b64 = hashlib.sha256, hmac.digest, base64.b64encode
        secret, cipher, cache, const = self.secret, self.cipher, self.cache, self.const
        aead = cipher._aead if cipher else None
        tmpl, P = self.template, self.pos
        prefix, mid = self.rid_prefix, self.rid_mid
        n = len(numbers)
        nonces = os.urandom(12 * n)
        rows, digests, sigs = [], [], []
        c = const
        i_rid, i_pk, i_enc, i_reg, i_ans, i_res, i_tot, i_lev, i_src = (
            P["record_id"], P["person_key"], P["id_number_enc"], P["region"], P["answers"], P["result"],
            P["total"], P["level"], P["source"])
        sig_id = None
        for i in range(n):
            if i % SIGN_GROUP == 0:
                if digests:
                    sigs.append(self._sign(sig_id, digests))
                sig_id, digests = os.urandom(16).hex(), []
            nb = numbers[i].encode("ascii")
            pk = hd(secret, nb, "sha256").hex()
            pkb = pk.encode("ascii")
            if aead is not None:
                nonce = nonces[12 * i:12 * i + 12]
                enc = b64(nonce + aead.encrypt(nonce, nb, pkb)).decode("ascii")
                d_enc = sha(b'"' + enc.encode("ascii") + b'"').digest()
            else:
                enc, d_enc = None, cache("id_number_enc", None)
            ans, res = answers[i], result[i]
            ansb = ans.encode("utf-8")
            rid = sha(prefix + pkb + mid + ansb).hexdigest()
            src = sources[i]
            d = list(tmpl)
            d[i_rid] = sha(b'"' + rid.encode("ascii") + b'"').digest()
            d[i_pk] = sha(b'"' + pkb + b'"').digest()
            d[i_enc] = d_enc
            d[i_reg] = cache("region", regions[i])
            d[i_ans] = sha(ansb).digest()
            d[i_res] = sha(res.encode("utf-8")).digest()
            d[i_tot] = cache("total", total[i])
            d[i_lev] = cache("level", level[i])
            d[i_src] = sha(src.encode("utf-8")).digest()
            blob = b"".join(d)
            digests.append(sha(blob).hexdigest())
            rows.append((rid, pk, enc, regions[i], c["instrument"], c["version"], c["definition_hash"],
                         c["engine_version"], c["settings"], ans, res, total[i], level[i], "ok", c["assessed_on"],
                         c["assessors"], c["organisation"], c["department"], c["reason"], c["origin"], None, src,
                         c["created_at"], c["key_id"], blob, sig_id, len(digests) - 1))
        if digests:
            sigs.append(self._sign(sig_id, digests))
        return rows, sigs

    def _sign(self, sig_id, digests):
        man = signing.manifest(self.dept, self.kid, self.created, digests)
        return {"sig_id": sig_id, "department": self.dept, "key_id": self.kid, "manifest": man,
                "signature": signing.sign(self.priv, man)}
