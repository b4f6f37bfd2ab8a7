"""web/worker.py and web/cli.py: the demo served by gunicorn with the single-threaded worker.

One real server process on 127.0.0.1 (as ``python -m web --demo`` runs it): requests on one
kept-alive connection are answered in turn, and a submission retried on it is stored once.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import time
import uuid

import pytest
from conftest import ANSWERS, ID, RECENT, REPO

pytest.importorskip("gunicorn", reason="the web extra is not installed (pip install -e '.[web]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """(port, assessor API token, store config) of a demo server with one single-threaded worker."""
    from web import accounts
    from web.demo import make_app, prepare
    instance = prepare(tmp_path / "demo")
    with make_app(instance).app_context():
        uid = next(u.id for u in accounts.list_users() if u.role == "assessor")
        token = accounts.issue_token(uid, "test")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "web", "--demo", "--dir", str(tmp_path / "demo"), "--port",
                             str(port), "--workers", "1", "--threads", "1"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            assert proc.poll() is None, "the demo server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port, token, tmp_path / "demo" / "store.yaml"
    finally:
        proc.terminate()
        proc.wait(30)


def test_one_connection_serves_requests_in_turn_and_a_retry_is_stored_once(served):
    port, token, store_config = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"submission_id": uuid.uuid4().hex, "instrument": "gbt42195-2022", "answers": ANSWERS,
                       "id_number": ID, "assessed_on": RECENT, "reason": "first", "assessors": ["甲", "乙"]})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers, sockets = [], set()
    for method, path, data in [("GET", "/api/openapi.json", None), ("POST", "/api/submissions", body),
                               ("POST", "/api/submissions", body), ("GET", "/api/nothing", None)]:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        answers.append((resp.status, json.loads(resp.read())))
        assert resp.getheader("Connection", "").lower() != "close"
        sockets.add(id(conn.sock))
    conn.close()
    assert len(sockets) == 1                       # kept alive: every answer came on the first connection
    (s0, spec), (s1, first), (s2, again), (s3, missing) = answers
    assert s0 == 200 and "/api/submissions" in spec["paths"]
    assert s1 == 201 and first["stored"] is True
    assert s2 == 200 and again["stored"] is False and again["record_id"] == first["record_id"]
    assert s3 == 404 and missing["error"]["code"] == "WEB_003"

    from assess.store import Store
    st = Store.from_config(store_config)
    try:
        assert [v.record_id for v in st.verify() if v.ok] == [first["record_id"]]
    finally:
        st.close()


@contextlib.contextmanager
def _accepting_worker(waiting: int, worker_connections: int = 1000):
    """The worker's accept steps alone (no running arbiter), with a listener on 127.0.0.1 and
    ``waiting`` clients connected to it; yields (worker, listener)."""
    import selectors
    from threading import RLock

    from gunicorn.config import Config

    from web.worker import InlineWorker
    worker = object.__new__(InlineWorker)
    worker.cfg, worker.nr_conns, worker.worker_connections, worker.alive = Config(), 0, worker_connections, True
    worker.poller, worker._lock, worker.listeners = selectors.DefaultSelector(), RLock(), {}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(waiting)]
        try:
            yield worker, listener
        finally:
            for key in list(worker.poller.get_map().values()):
                key.fileobj.close()
            worker.poller.close()
            for c in clients:
                c.close()


def test_the_worker_takes_a_waiting_connection_after_each_request():
    """A loop of the single-threaded worker lasts as long as the requests it answers, so between
    requests it takes one more waiting connection (not all: a second worker must get its share)."""
    with _accepting_worker(3) as (worker, listener):
        worker.accept(listener.getsockname(), listener)     # the listener was ready: one taken
        assert worker.nr_conns == 1
        worker.accept_waiting()                              # after a request: one more
        worker.accept_waiting()
        assert worker.nr_conns == 3
        assert len(worker.poller.get_map()) == 3
        worker.accept_waiting()                              # nothing waiting: nothing taken, no error
        assert worker.nr_conns == 3


@pytest.mark.parametrize("stopping", [True, False])
def test_the_worker_takes_no_waiting_connection_when_stopping_or_full(stopping):
    """A stopping worker (SIGTERM, reload) leaves waiting connections to the other workers: its loop
    would end without answering them. A full one (worker_connections) takes none either."""
    with _accepting_worker(2, worker_connections=1000 if stopping else 1) as (worker, listener):
        worker.accept(listener.getsockname(), listener)
        assert worker.nr_conns == 1
        worker.alive = not stopping
        worker.accept_waiting()
        assert worker.nr_conns == 1 and len(worker.poller.get_map()) == 1
