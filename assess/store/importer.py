"""Bulk import of a screening output (the Parquet file ``assess screen`` writes).

Only rows with ``status == ok`` become records; the others are counted by status. Rows whose
identity number (``A.2.8``) or region code fails its check are counted too and never echoed.
The name (``A.2.1``) is not stored: the person key identifies the person.

Idempotent, resumable, atomic per batch: the file is read in batches of a fixed size; each batch
is written in one transaction together with an ``import_batches`` row naming the import (by
:func:`import_key`: SHA-256 of the file's bytes, this department and the import's parameters), the
batch size and the batch number. A re-run of the same import skips the batches already committed,
and the natural key (record_id) makes any overlap a no-op, so a kill -9 leaves whole batches only
and running the import again completes it. The same file imported with other parameters or by
another department is another import: its batches are all written.

Each batch is built column-wise (:mod:`.bulk`: Arrow for the canonical JSON, numpy for hex,
base64 and check lists, one C-level call per row and primitive for the keyed hash, AES-GCM,
SHA-256 and CRC-32) and handed to the database in one executemany or COPY, on a writer thread that keeps
one connection for the whole import: while SQLite inserts batch k without the GIL, this thread
builds batch k + 1. ``workers`` processes can do the building instead; a built batch is numpy and
Arrow arrays, cheap to pickle. Workers get the secrets through a pipe, never through the
environment or argv, and nothing they do is logged. SQLite gets a large page cache for the import
(the one index takes random writes); PostgreSQL gets each batch by COPY (into a temporary table,
then INSERT … ON CONFLICT DO NOTHING, when some of its records are stored already).
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..instrument import load_instrument
from . import bulk, db, records, schema, signing
from .errors import StoreCode, store_error

log = logging.getLogger("assess.store")
SIGN_GROUP = bulk.SIGN_GROUP
PAUSE_ENV = "ASSESS_STORE_IMPORT_PAUSE"   # seconds to sleep after each committed batch (tests, demos)
# Files this large get two worker processes when workers=None (the CLI's default) on a machine with
# two cores or more. Measured with SQLite on two cores: 3 M rows 104 s without workers, 88 s with
# two; 200 k rows 7.4 s without, 8.6 s with (the workers' start-up is not paid back).
WORKERS_AUTO_ROWS = 1_000_000
SQLITE_IMPORT_CACHE_KIB = 1_000_000         # page cache of the importing connection (the index stays in memory)
# WAL pages the importing connection lets accumulate before it checkpoints (~1 GiB of 4 kB pages,
# SQLite's default is 1000). Each batch dirties index pages all over the record_id index; at 12 M
# records a 100 000-row batch rewrites ~250 MB of them, and checkpointing after every batch copied
# each into the database file again. Checkpointing every few batches copies a page once for all.
SQLITE_IMPORT_CHECKPOINT_PAGES = 262_144
SQLITE_TRUNCATE_WAIT_MS = 1000


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


# The import's parameters that name it for resuming, beside the file and the department (bulk.Builder.const).
RESUME_FIELDS = ("instrument", "version", "definition_hash", "settings", "assessed_on", "assessors", "organisation",
                 "reason")


def import_key(file_sha256: str, builder) -> str:
    """The resume key of an import (``import_batches.file_digest``): the file and everything the
    import holds constant but its time and signing key, so only a re-run of the same import resumes."""
    return signing.record_digest(signing.canonical({
        "file_sha256": file_sha256, "department": builder.dept, **{k: builder.const[k] for k in RESUME_FIELDS}})
        .encode("utf-8"))


def import_parquet(store, path, *, instrument: str = "gbt42195-2022", version: str | None = None, settings=None,
                   assessed_on, assessors, organisation: str, reason: str, batch_size: int = 100_000,
                   workers: int | None = 0, progress=None) -> ImportReport:
    """Import the status-ok rows of ``path``.

    ``workers`` processes build batches while this one writes: 0 (the default) builds here, on the
    thread that is not writing; None (the CLI's default) picks two for files of WORKERS_AUTO_ROWS
    rows or more. Workers are spawned, so a script that asks for them needs the ``__main__`` guard.
    """
    path = Path(path)
    if reason not in records.REASONS:
        raise store_error(StoreCode.STORE_003, "import", name="reason", fix=f"Use one of {', '.join(records.REASONS)}.")
    assessed_on = records.assessment_day(assessed_on, f"import {path.name}")
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
    builder = bulk.Builder(store.secret, store.cipher.key if store.cipher else None, store.department,
                           store.signer[1], records.now(), ins.id, ins.version, ins.definition_hash,
                           signing.canonical({f"{ins.id}.{k}": v for k, v in ins.setting_values.items()}),
                           assessed_on.isoformat(), signing.canonical(list(assessors)), organisation, reason,
                           path.name, [(q, getattr(ins.question(q), "type", "") == "icd10_list") for q in qids],
                           sorted(x.id for x in ins.domains), sorted(x.id for x in ins.scores), ins.level_score,
                           [r.id for r in ins.rules])
    resume = import_key(digest, builder)
    with db.read(store.engine) as conn:
        done = {r.batch_no for r in conn.execute(
            schema.import_batches.select().where(schema.import_batches.c.file_digest == resume)
            .where(schema.import_batches.c.batch_size == batch_size))}
    if workers is None:
        workers = 2 if pf.metadata.num_rows >= WORKERS_AUTO_ROWS and (os.cpu_count() or 1) >= 2 else 0
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    batches = pf.iter_batches(batch_size=batch_size, columns=list(dict.fromkeys(need + qids)))
    todo = ((no, b) for no, b in enumerate(batches) if _count(rep, no, b, no in done))
    # spawn, not fork: a forked child must not inherit the parent's open database connections.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=(builder,)) if workers else None
    priv, sqlite = store.signer[0], store.engine.dialect.name == "sqlite"

    def write(batch_no, n_in, built):
        """One batch and its import_batches row in one transaction (on the writer thread)."""
        t, cpu = time.perf_counter(), time.thread_time()
        sigs = [records.group_row(sig_id, priv, builder.dept, builder.kid, builder.created, d)
                for sig_id, d in built.groups]

        def do(c):
            stored = bulk.write(c, builder, built, sigs)
            db.insert(c, schema.import_batches, [{
                "file_digest": resume, "batch_size": batch_size, "batch_no": batch_no, "rows_in": n_in,
                "stored": stored, "already": built.n - stored, "skipped": signing.canonical(built.skipped),
                "committed_at": records.now()}])
            return stored
        return db.transaction(conn, do), time.perf_counter() - t, time.thread_time() - cpu

    def committed(batch_no, n_in, built, fut):
        stored, secs, cpu = fut.result()
        rep.stored += stored
        rep.already += built.n - stored
        rep.add_skipped(built.skipped)
        log.info("import %s batch %d: %d rows, %d stored, %d skipped; %.2f s writing (%.2f s CPU)", path.name,
                 batch_no, n_in, stored, sum(built.skipped.values()), secs, cpu)
        if progress:
            progress(rep)
        if pause:
            time.sleep(pause)

    # One connection for the whole import; a writer thread commits batch k (the database steps each
    # row without the GIL) while this thread builds batch k + 1. One write in flight at a time.
    with store.engine.connect() as conn, ThreadPoolExecutor(1, thread_name_prefix="assess-import") as writer:
        if sqlite:      # outside any transaction: on the driver's connection
            raw = conn.connection.dbapi_connection
            raw.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
            raw.execute(f"PRAGMA wal_autocheckpoint={SQLITE_IMPORT_CHECKPOINT_PAGES}")
        queue = []
        try:
            for batch_no, n_in, built in _built(todo, builder, pool, workers):
                queue.append((batch_no, n_in, built, writer.submit(write, batch_no, n_in, built)))
                if len(queue) > 1:
                    committed(*queue.pop(0))
            while queue:
                committed(*queue.pop(0))
        finally:
            for *_, fut in queue:           # after an error: let a running write end before closing
                fut.cancel()
            wait([fut for *_, fut in queue])
            if pool:
                pool.shutdown(cancel_futures=True)
            if sqlite:
                raw.execute("PRAGMA cache_size=-2000")
                raw.execute("PRAGMA wal_autocheckpoint=1000")
                _truncate_wal(raw)
    rep.seconds = time.perf_counter() - t0
    return rep


def _truncate_wal(raw) -> None:
    """Copy the WAL into the database and cut the WAL file to zero bytes: after a large import it
    would otherwise keep its size (up to SQLITE_IMPORT_CHECKPOINT_PAGES, ~1 GiB) on disk. PASSIVE
    first copies the pages without blocking anyone; TRUNCATE, which keeps new writers waiting while
    it runs, then has almost nothing left to copy and waits at most a second for readers to leave
    the WAL (a store in use keeps its WAL, which SQLite reuses from the start). Never raises: it
    also runs while an import's own error propagates."""
    try:
        raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
        raw.execute(f"PRAGMA busy_timeout={SQLITE_TRUNCATE_WAIT_MS}")
        try:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # busy (a reader stays) is a row, not an error
        finally:
            raw.execute(f"PRAGMA busy_timeout={db.BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:    # e.g. the connection still inside a failed transaction
        log.warning("import: WAL checkpoint skipped (%s)", exc)


def _count(rep, batch_no, batch, done) -> bool:
    rep.batches += 1
    rep.rows += batch.num_rows
    rep.batches_resumed += done
    return not done


def _built(todo, builder, pool, workers):
    """(batch number, rows in, built batch) in order; with a pool, up to workers + 1 batches ahead."""
    if pool is None:
        for no, b in todo:
            yield no, b.num_rows, builder.build(b)
        return
    ahead = []
    for no, b in todo:
        ahead.append((no, b.num_rows, pool.submit(_build_in_worker, b)))
        if len(ahead) > workers:
            no_, n, fut = ahead.pop(0)
            yield no_, n, fut.result()
    for no_, n, fut in ahead:
        yield no_, n, fut.result()


_worker_builder = None


def _init_worker(builder):
    global _worker_builder
    _worker_builder = builder
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="assess-import-parent", daemon=True).start()


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """End this worker when the import that started it is gone (kill -9 ends the parent without a
    word to its pool): a worker holds the person-key secret and the id-number key in memory, and
    would otherwise wait for work for ever. Orphans are adopted by another process (a new ppid)."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _build_in_worker(batch):
    return _worker_builder.build(batch)
