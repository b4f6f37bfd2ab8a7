"""Bulk import: only status-ok rows, canonical JSON, idempotent, resumable after kill -9."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

import assess
from assess.store import records, signing
from store_helpers import screening_frame, write_parquet

KW = dict(assessed_on="2025-03-01", assessors=["甲", "乙"], organisation="测试机构", reason="routine")


def count(store, table="records"):
    with store.engine.connect() as c:
        return c.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_import_stores_ok_rows_only_and_is_idempotent(store, tmp_path):
    df = screening_frame(300, bad_every=10)
    df.loc[5, "A.2.8"] = df.loc[5, "A.2.8"][:-1] + ("0" if df.loc[5, "A.2.8"][-1] != "0" else "1")
    df.loc[7, "region"] = "33010"
    path = write_parquet(df, tmp_path / "out.parquet")
    ok = int((df["status"] == "ok").sum())
    rep = store.import_parquet(path, batch_size=64, **KW)
    assert rep.rows == 300 and rep.skipped["incomplete"] == 30
    rejected = {k: v for k, v in rep.skipped.items() if k != "incomplete"}
    assert rejected == {"id_number: 校验码不符": 1, "region not 6 digits": 1}
    assert rep.stored == ok - 2 == count(store)
    assert count(store, "contexts") == 1          # the fields the import holds constant, stored once
    again = store.import_parquet(path, batch_size=64, **KW)
    assert (again.stored, again.batches_resumed) == (0, again.batches)
    signatures = count(store, "signatures")
    other_batches = store.import_parquet(path, batch_size=100, **KW)      # same rows, new batch boundaries
    assert other_batches.stored == 0 and other_batches.already == ok - 2
    assert count(store) == ok - 2 and count(store, "contexts") == 1
    assert count(store, "signatures") == signatures          # nothing new to sign: no signature rows
    assert all(v.ok for v in store.verify())


def test_worker_processes_build_the_same_records(store, tmp_path):
    path = write_parquet(screening_frame(300, seed=6), tmp_path / "w.parquet")
    rep = store.import_parquet(path, batch_size=64, workers=1, **KW)
    assert rep.stored == count(store) > 0
    again = store.import_parquet(path, batch_size=100, workers=0, **KW)     # same record ids in this process
    assert again.stored == 0 and again.already == rep.stored
    assert all(v.ok for v in store.verify())


def test_workers_by_default_only_for_large_files(store, tmp_path, monkeypatch):
    """workers=None (the CLI's default): two processes from WORKERS_AUTO_ROWS rows on, none below."""
    from assess.store import importer
    made = []

    class Pool(importer.ProcessPoolExecutor):
        def __init__(self, n, **kw):
            made.append(n)
            super().__init__(n, **kw)
    bound = importer.WORKERS_AUTO_ROWS
    monkeypatch.setattr(importer, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(importer, "WORKERS_AUTO_ROWS", 200)
    small = store.import_parquet(write_parquet(screening_frame(150, seed=8), tmp_path / "s.parquet"), batch_size=64,
                                 workers=None, **KW)
    assert made == [] and small.stored > 0
    big = store.import_parquet(write_parquet(screening_frame(300, seed=9), tmp_path / "b.parquet"), batch_size=64,
                               workers=None, **KW)
    assert made == ([2] if os.cpu_count() >= 2 else []) and big.stored > 0
    assert small.stored + big.stored == count(store) and all(v.ok for v in store.verify())
    from assess.store.cli import import_cmd
    help_text = next(p.help for p in import_cmd.params if p.name == "workers")
    assert f"{bound:,} rows" in help_text          # the help says the bound in force


def test_imported_record_matches_the_scorer(store, tmp_path):
    df = screening_frame(40, seed=3)
    store.import_parquet(write_parquet(df, tmp_path / "o.parquet"), **KW)
    with store.engine.connect() as c:
        recs = [dict(r) for r in c.execute(text("SELECT * FROM records ORDER BY seq")).mappings()]
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    assert len(recs) == len(ok)
    for rec, (_, row) in zip(recs, ok.iterrows()):
        for name in signing.JSON_FIELDS:
            if rec[name] is not None:
                assert signing.canonical(json.loads(rec[name])) == rec[name]
        answers = json.loads(rec["answers"])
        assert "A.2.8" not in answers and "A.2.1" not in answers
        res = assess.score_one("gbt42195-2022", answers)
        result = json.loads(rec["result"])
        assert (res.total, res.level, res.level_initial) == (rec["total"], rec["level"], result["level_initial"])
        assert result["domains"] == res.domains and result["rules"] == [r.id for r in res.rules]
        assert rec["person_key"] == store.person_key(row["A.2.8"])
        assert store.decrypt_id(rec) == row["A.2.8"]
        assert json.loads(rec["source"]) == {"file": "o.parquet", "line": int(row["source_line"])}


def test_missing_columns(store, tmp_path):
    df = screening_frame(5).drop(columns=["region"])
    with pytest.raises(assess.AssessError) as e:
        store.import_parquet(write_parquet(df, tmp_path / "o.parquet"), **KW)
    assert e.value.code.name == "STORE_008" and "region" in str(e.value)


def test_kill_9_mid_import_then_resume(store, tmp_path):
    n, batch = 6000, 200
    path = write_parquet(screening_frame(n, seed=5), tmp_path / "big.parquet")
    cfg = tmp_path / "store.yaml"
    cfg.write_text(yaml.safe_dump({"url": store.url, "department": store.department,
                                   "keys_dir": str(store.keys_dir), "keep_id_number": "encrypted"}))
    cmd = [sys.executable, "-c", "from assess.cli import main; main()", "store", "--config", str(cfg), "import", str(path),
           "--assessed-on", KW["assessed_on"], "--organisation", KW["organisation"], "--reason", "routine",
           "--assessor", "甲", "--assessor", "乙", "--batch-size", str(batch)]
    env = {**os.environ, "ASSESS_STORE_IMPORT_PAUSE": "0.05"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and count(store, "import_batches") < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = count(store, "import_batches")
    assert 3 <= done < n // batch, "the import finished before it was killed"
    with store.engine.connect() as c:      # only whole batches: stored rows equal what the batch rows say
        stored = c.execute(text("SELECT SUM(stored) FROM import_batches")).scalar_one()
    assert count(store) == stored
    assert all(v.ok for v in store.verify())
    env.pop("ASSESS_STORE_IMPORT_PAUSE")
    out = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, check=True)
    rep = json.loads(out.stdout)
    assert rep["batches_resumed"] >= done and rep["batches"] == n // batch
    ok = n - sum(rep["skipped"].values())
    assert count(store) == ok == stored + rep["stored"]
    again = json.loads(subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    assert again["stored"] == 0 and count(store) == ok


def test_bulk_rows_match_the_per_record_definitions(make_store, tmp_path):
    """Column-wise building gives the record id, person key, checks and digest the one-record code gives;
    nulls (an unclassified level) and numbers not kept come through as NULL."""
    store = make_store("mca", keep="none")
    df = screening_frame(80, seed=4)
    ok = df.index[df["status"] == "ok"]
    df["level"] = df["level"].astype("Int64")
    df.loc[ok[0], "level"] = None
    rep = store.import_parquet(write_parquet(df, tmp_path / "n.parquet"), batch_size=30, **KW)
    assert rep.stored == len(ok)
    with store.engine.connect() as c:
        recs = [dict(r) for r in c.execute(text("SELECT * FROM records ORDER BY seq")).mappings()]
    assert recs[0]["level"] is None and json.loads(recs[0]["result"])["level"] is None
    for rec, line in zip(recs, ok):
        assert rec["id_number_enc"] is None and rec["person_key"] == store.person_key(df.loc[line, "A.2.8"])
        assert rec["record_id"] == records.record_id("mca", rec["person_key"], rec["instrument"], rec["version"],
                                                     rec["assessed_on"], "import", None, rec["answers"])
        assert bytes(rec["field_digests"]) == signing.seal_parts(signing.payload(rec))[0]
    assert all(v.ok for v in store.verify())


def test_an_import_leaves_no_large_wal_file(store, tmp_path):
    """SQLite: the import ends by copying its WAL into the database and cutting the file to zero
    bytes (it used to keep its size, up to ~1 GiB); with a reader in the WAL it leaves the file for
    SQLite to reuse, after waiting about a second, and the rows are stored all the same."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("a WAL file is SQLite's")
    wal = Path(store.engine.url.database + "-wal")
    first = store.import_parquet(write_parquet(screening_frame(200, seed=11), tmp_path / "a.parquet"), **KW)
    assert first.stored > 0 and wal.stat().st_size == 0
    with store.engine.connect() as reader, reader.begin():
        reader.exec_driver_sql("SELECT COUNT(*) FROM records").fetchall()   # a read transaction holds the WAL
        t0 = time.perf_counter()
        second = store.import_parquet(write_parquet(screening_frame(200, seed=12), tmp_path / "b.parquet"), **KW)
        waited = time.perf_counter() - t0
    assert second.stored > 0 and wal.stat().st_size > 0 and waited < 30
    assert count(store) == first.stored + second.stored


def test_the_wal_checkpoint_never_raises_and_restores_the_busy_timeout(tmp_path, caplog):
    """_truncate_wal also runs while an import's error propagates: on a connection still inside a
    transaction SQLite refuses the checkpoint, which is logged, not raised; either way the
    connection gets its usual busy timeout back (a pooled connection left at one second would make
    a concurrent Store.add fail with "database is locked")."""
    import sqlite3

    from assess.store import db, importer
    raw = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE t (a)")
    importer._truncate_wal(raw)
    assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("INSERT INTO t VALUES (1)")
    with caplog.at_level("WARNING", logger="assess.store"):
        importer._truncate_wal(raw)     # SQLite: "database table is locked"
    assert "WAL checkpoint skipped" in caplog.text
    assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS
    raw.execute("ROLLBACK")
    raw.close()


def test_a_superset_file_adds_only_its_new_records_and_all_verify(store, tmp_path):
    """A batch with some records stored before and some new: only the new rows are added, every
    signature group of the batch is stored with them, and every record verifies."""
    df = screening_frame(200, seed=13)
    store.import_parquet(write_parquet(df.iloc[:120], tmp_path / "part.parquet"), **KW)
    before, signatures = count(store), count(store, "signatures")
    rep = store.import_parquet(write_parquet(df, tmp_path / "all.parquet"), **KW)
    ok_rest = int((df.iloc[120:]["status"] == "ok").sum())
    assert rep.stored == ok_rest > 0 and rep.already == before and count(store) == before + ok_rest
    assert count(store, "signatures") > signatures
    assert all(v.ok for v in store.verify())


def test_another_import_of_the_same_file_is_not_taken_for_a_resumed_one(make_store, tmp_path):
    """The resume key is the file with the import's parameters and department: another import of the
    same file writes its batches (it was reported "already committed" and stored nothing)."""
    mca = make_store("mca")
    path = write_parquet(screening_frame(120, seed=21), tmp_path / "same.parquet")
    first = mca.import_parquet(path, batch_size=50, **KW)
    assert first.stored > 0 and first.batches_resumed == 0
    again = mca.import_parquet(path, batch_size=50, **KW)                  # the same import: resumed, idempotent
    assert (again.stored, again.batches_resumed) == (0, again.batches)
    later = mca.import_parquet(path, batch_size=50, **{**KW, "assessed_on": "2025-09-01"})
    assert later.batches_resumed == 0 and later.stored == first.stored
    nhsa = make_store("nhsa")
    other = nhsa.import_parquet(path, batch_size=50, **KW)
    assert other.batches_resumed == 0 and other.stored == first.stored
    # Same assessments (same record ids: department, date, answers) under another organisation: every
    # batch is read again and reports its records as already stored, not as a resumed batch.
    relabelled = mca.import_parquet(path, batch_size=50, **{**KW, "organisation": "另一机构"})
    assert relabelled.batches_resumed == 0 and (relabelled.stored, relabelled.already) == (0, first.stored)
    assert count(mca) == 3 * first.stored and all(v.ok for v in mca.verify())


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """Running, not only a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"),
                    reason="reads the process tree from Linux's /proc")
def test_kill_9_of_an_import_ends_its_worker_processes(store, tmp_path):
    """The workers hold the person-key secret and the id-number key: they must not outlive a killed import."""
    path = write_parquet(screening_frame(6000, seed=5), tmp_path / "big.parquet")
    cfg = tmp_path / "store.yaml"
    cfg.write_text(yaml.safe_dump({"url": store.url, "department": store.department,
                                   "keys_dir": str(store.keys_dir), "keep_id_number": "encrypted"}))
    cmd = [sys.executable, "-c", "from assess.cli import main; main()", "store", "--config", str(cfg), "import", str(path),
           "--assessed-on", KW["assessed_on"], "--organisation", KW["organisation"], "--reason", "routine",
           "--assessor", "甲", "--batch-size", "200", "--workers", "2"]
    env = {**os.environ, "ASSESS_STORE_IMPORT_PAUSE": "0.05"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and count(store, "import_batches") < 2:
        time.sleep(0.02)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert workers, "the import started no worker process"
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)]
