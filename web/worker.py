"""gunicorn for the web app: the worker for ``--threads 1`` (gthread's kept-alive connections, answered
on its loop's thread), and an access log that computes only the fields it prints.

gunicorn's ``gthread`` worker hands every request from its loop to a thread pool and back. With
the store's writes serialised anyway, the extra threads bought no throughput on the 2-core demo
machine, only cost: each hand-off and each SQLite call (which lets go of the GIL) switched
threads, about 0.3–0.5 ms of CPU per submission in bench/test_web_load.py, and waiting
for the GIL widened the latency tail. Here the loop answers a request itself as soon as its
connection is readable, then goes back to waiting, so one process is one thread; use more
processes (``--workers``) for more cores.

As with gunicorn's ``sync`` worker, a client that starts a request and then stalls holds the
worker: for at most :data:`READ_TIMEOUT_S` a read. Facing slow networks directly, put a proxy that
buffers requests (nginx) in front, or serve with ``--threads`` above 1 (gthread).
"""
from __future__ import annotations

import datetime as dt
from concurrent import futures

from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

READ_TIMEOUT_S = 5.0
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'    # path only: no query string, no headers


class InlineWorker(ThreadWorker):
    """``gthread`` with the request handled in place of being queued for a pool thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.listeners = {}              # listening socket -> its address, as gthread's loop passes them

    def accept(self, server, listener):
        self.listeners[listener] = server
        super().accept(server, listener)

    def enqueue_req(self, conn):
        conn.init()
        conn.sock.settimeout(READ_TIMEOUT_S)
        done = futures.Future()          # gthread's bookkeeping (keep-alive, close) runs on its result
        done.set_result(self.handle(conn))
        self._wrap_future(done, conn)
        self.accept_waiting()

    def accept_waiting(self):
        """Take one waiting connection, if any (called after each request).

        gthread accepts one a loop, and a loop here lasts as long as the requests it answers (50
        kept-alive assessors: ~80 ms), so the 50th tablet to connect waited 3 s. Taking every waiting
        connection at once instead let the worker that woke first take the whole burst (49 or 50 of
        the bench's 50, the other worker idle). One a request: the bench's 50 split 23-27 a worker,
        19-31 at worst.

        Nothing is taken once the worker is stopping (SIGTERM, a reload, ``max_requests``: its loop
        ends without reading it, and the client would get no answer where another worker would
        have given one) nor at ``worker_connections``, which gthread's loop respects too.
        """
        if not self.alive or self.nr_conns >= self.worker_connections:
            return
        for listener, server in self.listeners.items():
            super().accept(server, listener)


class AccessLogger(Logger):
    """gunicorn's logger; for our access line it computes just that line's fields.

    gunicorn's ``atoms`` formats the time and copies every request header, response header and
    environ entry for any format (about 40 µs a request); ours names six fields.
    """

    def atoms(self, resp, req, environ, request_time):
        if self.cfg.access_log_format != ACCESS_LOG_FORMAT:
            return super().atoms(resp, req, environ, request_time)
        status = resp.status
        return {"h": environ.get("REMOTE_ADDR", "-"), "m": environ.get("REQUEST_METHOD"),
                "U": environ.get("PATH_INFO"), "s": status.split(None, 1)[0] if isinstance(status, str) else status,
                "B": getattr(resp, "sent", None), "M": request_time // dt.timedelta(milliseconds=1)}
