"""gunicorn's threaded worker, serving a keep-alive connection's next request on the thread
that answered the last one when it follows at once and the worker has threads to spare.

gunicorn's gthread hands every request of a kept-alive connection through three threads: the
main thread's poller sees the socket readable and queues it, a pool thread wakes to serve it,
and its completion wakes the main thread again (through a pipe) to put the socket back in the
poller. Each hand-off wakes a sleeping thread, on a 2-core virtual machine 0.2-0.5 ms apiece:
a CI pipeline's authenticate-then-upload, or a client paging through findings, paid more for
them than for the signature (bench/auth.py, "over HTTP").

After a response on a connection that stays open, the pool thread waits up to
NEXT_REQUEST_WAIT for the client's next request and serves it itself; a connection that stays
quiet goes back to the poller as before. It waits only while another pool thread is idle, so
the wait never keeps a request from a thread: under load the worker behaves as gthread does.
Everything else (parsing, timeouts, graceful stop, max_requests, HTTP/2) is gunicorn's.
"""

from __future__ import annotations

import select
import threading
from typing import Any

from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

# Long enough for a client that sends its next request as soon as it has read the answer
# (a CLI, a script, a proxy's shared upstream connection); short next to the keep-alive
# timeout, so that a connection that goes quiet costs its thread little.
NEXT_REQUEST_WAIT = 0.002


class ThreadWorker(GthreadWorker):  # type: ignore[misc]  # gunicorn has no types
    """gunicorn's gthread worker (`worker_class = "gerion.workers.ThreadWorker"`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._busy = 0
        self._busy_lock = threading.Lock()

    def handle(self, conn: Any) -> Any:
        with self._busy_lock:
            self._busy += 1
        try:
            result = super().handle(conn)
            # True: the answer kept the connection open (not a stop, not max_requests, not
            # HTTP/2, whose connection gunicorn serves in its own loop).
            while result is True and self.alive and self._may_wait() and _next_request(conn):
                result = super().handle(conn)
            return result
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _may_wait(self) -> bool:
        """Another pool thread is idle: a request arriving on another connection meanwhile
        is served at once."""
        return bool(self._busy < self.cfg.threads)


def _next_request(conn: Any) -> bool:
    """The client's next request has started to arrive within NEXT_REQUEST_WAIT. (Bytes read
    ahead while draining the last body are left to gunicorn, which serves them at once.)"""
    if conn.parser.unreader.buf.getvalue():
        return False
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(NEXT_REQUEST_WAIT * 1000))
