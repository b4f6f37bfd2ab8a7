"""web/db.py: the deployment's write lock, and web/stores.py's warm-up."""
from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import ANSWERS, ID, RECENT


def _locked_elsewhere(path) -> bool:
    """Whether another process is refused the lock file right now."""
    code = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], check=False).returncode == 3


def test_write_lock_holds_out_other_processes_and_is_reentrant(tmp_path):
    from web.db import WriteLock
    lock = WriteLock(str(tmp_path / "web.db.lock"))
    with lock:
        with lock:                       # a submission holds it across the store's insert and the web table's
            assert _locked_elsewhere(lock.path)
        assert _locked_elsewhere(lock.path)
    assert not _locked_elsewhere(lock.path)


def test_write_lock_is_given_back_when_the_transaction_fails(app):
    from web.db import write, write_lock
    with app.app_context():
        with pytest.raises(sqlite3.OperationalError), write() as conn:
            conn.execute("INSERT INTO no_such_table VALUES (1)")
        fd = os.open(write_lock().path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)      # free again
        finally:
            os.close(fd)


def test_warm_loads_what_the_first_submission_needs(app):
    import assess
    from assess import instrument
    from web import stores
    instrument._load_cached.cache_clear()
    with app.test_request_context():
        stores.warm()
        loaded = instrument._load_cached.cache_info().misses
        res = assess.score_one(assess.load_instrument("gbt42195-2022"), ANSWERS)
        stores.submit("warm-check-1", res, ANSWERS, id_number=ID, assessed_on=RECENT, assessors=["A1", "A2"],
                      organisation="测试评估中心", reason="first", user_id=1)
        assert instrument._load_cached.cache_info().misses == loaded


def _race(app, monkeypatch, first, second):
    """Run ``first()`` in a request; right after it has added its record to the store, run
    ``second()`` in a request on another thread, which gets a second to slip in before ``first``
    writes its mapping. Returns both results."""
    import threading

    from web import stores
    other: dict = {}

    def second_request():
        with app.test_request_context():
            other["result"] = second()

    with app.test_request_context():
        store = stores.get_store()
        add_prepared = store.add_prepared

        def add_then_let_the_other_run(prepared):
            rid = add_prepared(prepared)
            monkeypatch.setattr(store, "add_prepared", add_prepared)
            racer = threading.Thread(target=second_request)
            racer.start()
            racer.join(1.0)
            other["thread"] = racer
            return rid

        monkeypatch.setattr(store, "add_prepared", add_then_let_the_other_run)
        result = first()
    other["thread"].join(30)
    return result, other["result"]


def _submit(sid, answers, cosigner=None):
    import assess
    from web import stores
    res = assess.score_one(assess.load_instrument("gbt42195-2022"), answers)
    return stores.submit(sid, res, answers, id_number=ID, assessed_on=RECENT, assessors=["A1", "A2"],
                         organisation="测试评估中心", reason="first", user_id=1, cosigner_id=cosigner)


def test_a_racing_retry_cannot_map_the_submission_to_another_cosigner(app, monkeypatch):
    """Two requests with one submission id (two tabs, different cosigners): the record and the web's
    mapping are written under one holding of the writer lock, so the mapping names the cosigner of
    the request whose record was stored, however the two interleave."""
    from web import stores
    (rid, stored), second = _race(app, monkeypatch, lambda: _submit("two-tabs-1", ANSWERS, 2),
                                  lambda: _submit("two-tabs-1", ANSWERS, 3))
    assert stored and second == (rid, False)
    with app.test_request_context():
        row = stores.submission(rid)
    assert row["submission_id"] == "two-tabs-1" and row["cosigner_id"] == 2


def test_a_racing_request_with_other_answers_stores_no_second_record(app, monkeypatch):
    """Two requests with one submission id but different answers (an edit sent while the first
    send is still in flight): the second gets the first's record, and the store holds one record,
    not two (the mapping is looked up again under the writer lock)."""
    from sqlalchemy import text

    from web import stores
    edited = dict(ANSWERS, **{"B.1.1": 0 if ANSWERS["B.1.1"] else 5})
    (rid, stored), second = _race(app, monkeypatch, lambda: _submit("edit-race-1", ANSWERS),
                                  lambda: _submit("edit-race-1", edited))
    assert stored and second == (rid, False)
    with app.test_request_context():
        store = stores.get_store()
        with store.engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM records WHERE person_key = :k"),
                             {"k": store.person_key(ID)}).scalar()
    assert n == 1
