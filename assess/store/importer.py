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
Python work is only the keyed hash, the encryption, the record id, the record digest and the
field checks (hash states of the parts every row shares are computed once). That work runs in
worker processes when asked (``workers``) while this process writes the previous batch: the
database write and the hashing each take about half of the time. Workers get the secrets through a pipe, never through the environment or argv, and
nothing they do is logged. SQLite gets a large page cache for the import (the one index takes
random writes); PostgreSQL gets each batch by COPY into a temporary table, then one INSERT … ON
CONFLICT DO NOTHING.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import itertools
import logging
import multiprocessing
import os
import struct
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import idnumber
from .._version import __version__ as ENGINE_VERSION
from ..instrument import load_instrument
from . import db, keys, records, schema, signing
from .errors import StoreCode, store_error

log = logging.getLogger("assess.store")
SIGN_GROUP = 256          # records per signed manifest: small enough to fetch and check per look-up
PAUSE_ENV = "ASSESS_STORE_IMPORT_PAUSE"   # seconds to sleep after each committed batch (tests, demos)
WORKERS_AUTO_ROWS = 200_000                 # files this large get worker processes by default
SQLITE_IMPORT_CACHE_KIB = 1_000_000         # page cache of the importing connection (the index stays in memory)
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
                   assessed_on, assessors, organisation: str, reason: str, batch_size: int = 100_000,
                   workers: int | None = 0, progress=None) -> ImportReport:
    """Import the status-ok rows of ``path``.

    ``workers`` processes hash and encrypt while this one writes: 0 (the default) does it all here;
    None picks two for files of 200 000 rows or more. On a shared 2-core machine workers cost ~10 µs
    a row of pickling and gained nothing (the other core was busy); they pay off only with idle
    cores. Workers are spawned, so a script that asks for them needs the ``__main__`` guard.
    """
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
    ctx = _Context(store.secret, store.cipher.key if store.cipher else None, store.department, store.signer[1],
                   records.now(), ins.id, ins.version, ins.definition_hash,
                   signing.canonical({f"{ins.id}.{k}": v for k, v in ins.setting_values.items()}),
                   assessed_on.isoformat(), signing.canonical(list(assessors)), organisation, reason, path.name,
                   [(q, getattr(ins.question(q), "type", "") == "icd10_list") for q in qids],
                   sorted(x.id for x in ins.domains), sorted(x.id for x in ins.scores), ins.level_score,
                   [r.id for r in ins.rules])
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if pf.metadata.num_rows >= WORKERS_AUTO_ROWS else 0
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    batches = pf.iter_batches(batch_size=batch_size, columns=list(dict.fromkeys(need + qids)))
    todo = ((no, b) for no, b in enumerate(batches) if _count(rep, no, b, no in done))
    # spawn, not fork: a forked child must not inherit the parent's open database connections.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=(ctx,)) if workers else None
    priv, sqlite = store.signer[0], store.engine.dialect.name == "sqlite"
    try:
        if sqlite:
            db.write(store.engine, lambda conn: conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}"))
        t_wait = time.perf_counter()
        for batch_no, n_in, (cols, groups, skipped) in _built(todo, ctx, pool, workers):
            t_write = time.perf_counter()
            sigs = [records.group_row(sig_id, priv, ctx.dept, ctx.kid, ctx.created, d) for sig_id, d in groups]
            rows = ctx.rows(cols)
            stored = db.write(store.engine, lambda conn: _write_batch(conn, rows, sigs, {
                "file_digest": digest, "batch_size": batch_size, "batch_no": batch_no, "rows_in": n_in,
                "skipped": signing.canonical(skipped), "committed_at": records.now()}))
            rep.stored += stored
            rep.already += len(rows) - stored
            rep.add_skipped(skipped)
            log.info("import %s batch %d: %d rows, %d stored, %d skipped; %.2f s building, %.2f s writing",
                     path.name, batch_no, n_in, stored, sum(skipped.values()), t_write - t_wait,
                     time.perf_counter() - t_write)
            t_wait = time.perf_counter()
            if progress:
                progress(rep)
            if pause:
                time.sleep(pause)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        if sqlite:
            db.write(store.engine, lambda conn: conn.exec_driver_sql("PRAGMA cache_size=-2000"))
    rep.seconds = time.perf_counter() - t0
    return rep


def _count(rep, batch_no, batch, done) -> bool:
    rep.batches += 1
    rep.rows += batch.num_rows
    rep.batches_resumed += done
    return not done


def _built(todo, ctx, pool, workers):
    """(batch number, rows in, built batch) in order; with a pool, up to workers + 1 batches ahead."""
    if pool is None:
        for no, b in todo:
            yield no, b.num_rows, ctx.build(b)
        return
    ahead = []
    for no, b in todo:
        ahead.append((no, b.num_rows, pool.submit(_build_in_worker, b)))
        if len(ahead) > workers:
            no_, n, fut = ahead.pop(0)
            yield no_, n, fut.result()
    for no_, n, fut in ahead:
        yield no_, n, fut.result()


_worker_ctx = None


def _init_worker(ctx):
    global _worker_ctx
    _worker_ctx = ctx


def _build_in_worker(batch):
    return _worker_ctx.build(batch)


def _write_batch(conn, rows, sigs, batch_row) -> int:
    cols = ", ".join(records.COLUMNS)
    if sigs:
        conn.execute(schema.signatures.insert(), sigs)
    stored = 0
    if rows and conn.dialect.name == "sqlite":
        sql = (f"INSERT INTO records ({cols}) VALUES ({', '.join('?' * len(records.COLUMNS))}) "
               f"ON CONFLICT (record_id) DO NOTHING")
        stored = conn.exec_driver_sql(sql, rows).rowcount
    elif rows:
        # COPY is several times faster than a multi-row INSERT; the temporary table lives for this
        # transaction only, so a kill leaves nothing behind.
        conn.exec_driver_sql(f"CREATE TEMP TABLE assess_import ON COMMIT DROP AS SELECT {cols} FROM records "
                             f"WITH NO DATA")
        with conn.connection.dbapi_connection.cursor() as cur:
            with cur.copy(f"COPY assess_import ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        stored = conn.exec_driver_sql(f"INSERT INTO records ({cols}) SELECT {cols} FROM assess_import "
                                      f"ON CONFLICT (record_id) DO NOTHING").rowcount
    batch_row.update(stored=stored, already=len(rows) - stored)
    conn.execute(schema.import_batches.insert(), [batch_row])
    return stored




class _Context:
    """What is the same for every row of one import: fields, hash states, keys (picklable for workers)."""

    def __init__(self, secret, id_key, dept, kid, created, instrument, version, definition_hash, settings_json,
                 assessed_on, assessors_json, organisation, reason, file_name, questions, domains, scores,
                 level_score, rule_ids):
        self.secret, self.id_key, self.dept, self.kid, self.created = secret, id_key, dept, kid, created
        self.questions, self.domains, self.scores, self.level_score = questions, domains, scores, level_score
        self.const = {"instrument": instrument, "version": version, "definition_hash": definition_hash,
                      "engine_version": ENGINE_VERSION, "settings": settings_json, "status": "ok",
                      "assessed_on": assessed_on, "assessors": assessors_json, "organisation": organisation,
                      "department": dept, "reason": reason, "origin": "import", "supersedes": None,
                      "created_at": created, "key_id": kid}
        self.file_json = signing.canonical(file_name)
        self.as_of = dt.date.fromisoformat(assessed_on)
        self.rule_lists = [signing.canonical([r for i, r in enumerate(rule_ids) if m >> i & 1])
                           for m in range(1 << len(rule_ids))]
        self._ready = False

    def _prepare(self):
        """Unpicklable state (hash objects, the cipher), made once per process."""
        if self._ready:
            return
        parts = [signing.field_json(n, self.const[n]) for n in signing.CONTEXT_FIELDS]
        self.digest_head = hashlib.sha256(("[" + ",".join(parts) + ",").encode("utf-8"))
        self.checks_head = b"".join(signing.field_check(p) for p in parts)
        self.rid_head, self.rid_mid = records.record_id_head(self.dept, self.const["instrument"],
                                                             self.const["version"], self.const["assessed_on"],
                                                             "import", None)
        self.hmac = keys.PersonKeyer(self.secret)
        self.aead = AESGCM(self.id_key) if self.id_key else None
        self._ready = True

    def build(self, batch: pa.RecordBatch):
        """(varying columns, signed groups as (sig_id, digests), skipped counts) of one batch."""
        self._prepare()
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
        for q, _ in self.questions:
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
        numbers = pc.filter(ids.number, mask).cast(pa.binary()).to_pylist()
        answers = _object([(q, _icd_list(batch.column(q)) if icd else _json_text(batch.column(q)))
                           for q, icd in self.questions])
        domains = _object([(d, _int_text(batch.column(d))) for d in self.domains])
        scores = _object([(s, _int_text(batch.column(s))) for s in self.scores])
        rules = pc.take(pa.array(self.rule_lists), pc.cast(batch.column("rules"), pa.int64()))
        total_t, level_t = _int_text(batch.column(self.level_score)), _int_text(batch.column("level"))
        result = pc.binary_join_element_wise(
            '{"domains":', domains, ',"level":', level_t, ',"level_initial":', _int_text(batch.column("level_initial")),
            ',"rules":', rules, ',"scores":', scores, ',"status":"ok","total":', total_t, "}", "")
        region = pc.filter(region, mask)
        sources = pc.binary_join_element_wise('{"file":' + self.file_json + ',"line":',
                                              _json_text(batch.column("source_line")), "}", "")
        # Everything after id_number_enc in the digest payload, and the checks of those fields.
        tail = pc.binary_join_element_wise(',"', region, '",', answers, ",", result, ",", total_t, ",", level_t, ",",
                                           sources, "]", "").cast(pa.binary()).to_pylist()
        crc = zlib.crc32
        small = {}
        for name, arr in (("r", pc.binary_join_element_wise('"', region, '"', "")), ("t", total_t), ("l", level_t)):
            for v in pc.unique(arr).to_pylist():
                small[name, v] = crc(v.encode())
        c_reg = [small["r", f'"{v}"'] for v in region.to_pylist()]
        c_tot = [small["t", v] for v in total_t.to_pylist()]
        c_lev = [small["l", v] for v in level_t.to_pylist()]
        cols = {"region": region.to_pylist(), "answers": answers.to_pylist(), "result": result.to_pylist(),
                "total": batch.column(self.level_score).to_pylist(), "level": batch.column("level").to_pylist(),
                "source": sources.to_pylist()}
        cols.update(self._crypto(numbers, tail, cols, c_reg, c_tot, c_lev))
        digests = cols.pop("_digests")
        groups = [(sig_id, b"".join(digests[i:i + SIGN_GROUP]))
                  for i, sig_id in zip(range(0, len(numbers), SIGN_GROUP), cols.pop("_groups"))]
        return cols, groups, skipped

    def _crypto(self, numbers, tail, cols, c_reg, c_tot, c_lev):
        """The per-row loop: person key, encrypted number, record id, record digest, field checks."""
        pkey, aead, b64 = self.hmac.hex_digest, self.aead, base64.b64encode
        d_head, r_head, r_mid, c_head = self.digest_head, self.rid_head, self.rid_mid, self.checks_head
        crc, pack = zlib.crc32, struct.Struct(">9I").pack
        answers, result, sources = cols["answers"], cols["result"], cols["source"]
        n = len(numbers)
        nonces = os.urandom(12 * n)
        c_null = crc(b"null")
        rids, pks, encs, checks, digests, sig_ids, sig_idx = [], [], [], [], [], [], []
        groups = [records.new_sig_id() for _ in range(0, n, SIGN_GROUP)]
        for i in range(n):
            pk = pkey(numbers[i])
            if aead is not None:
                nonce = nonces[12 * i:12 * i + 12]
                enc = b64(nonce + aead.encrypt(nonce, numbers[i], pk))
                encj = b'"' + enc + b'"'
            else:
                enc, encj = None, b"null"
            ansb = answers[i].encode("utf-8")
            h = r_head.copy()
            h.update(pk + r_mid + ansb)
            rid = pk[:16] + h.hexdigest()[:16].encode("ascii")
            ridj, pkj = b'"' + rid + b'"', b'"' + pk + b'"'
            h = d_head.copy()
            h.update(ridj + b"," + pkj + b"," + encj)
            h.update(tail[i])
            digests.append(h.digest())
            checks.append(c_head + pack(crc(ridj), crc(pkj), crc(encj) if enc is not None else c_null, c_reg[i],
                                        crc(ansb), crc(result[i].encode("utf-8")), c_tot[i], c_lev[i],
                                        crc(sources[i].encode("utf-8"))))
            rids.append(rid.decode("ascii"))
            pks.append(pk.decode("ascii"))
            encs.append(None if enc is None else enc.decode("ascii"))
            sig_ids.append(groups[i // SIGN_GROUP])
            sig_idx.append(i % SIGN_GROUP)
        return {"record_id": rids, "person_key": pks, "id_number_enc": encs, "field_digests": checks,
                "sig_id": sig_ids, "sig_index": sig_idx, "_digests": digests, "_groups": groups}

    def rows(self, cols) -> list[tuple]:
        """Row tuples in records.COLUMNS order."""
        n = len(cols["record_id"])
        const = [itertools.repeat(self.const[f], n) for f in signing.CONTEXT_FIELDS]
        return list(zip(*const, *(cols[f] for f in signing.ROW_FIELDS), cols["field_digests"], cols["sig_id"],
                        cols["sig_index"]))
