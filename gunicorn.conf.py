"""gunicorn settings, read by `gunicorn gerion.wsgi` from the repository root.

Environment: GERION_BIND (127.0.0.1:8000), GERION_WORKERS, GERION_THREADS, GERION_WORKER_CLASS,
GERION_TIMEOUT, GERION_CONTROL_SOCKET.
"""

import logging
import multiprocessing
import os
import sys

bind = [os.environ.get("GERION_BIND", "127.0.0.1:8000")]

# Without REDIS_URL the cache (and the rate-limit bucket) lives in each process, so the
# embedded run must stay a single process to keep the documented limit true.
_default_workers = min(2 * multiprocessing.cpu_count() + 1, 8) if os.environ.get("REDIS_URL") else 1
workers = int(os.environ.get("GERION_WORKERS", _default_workers))
if not os.environ.get("REDIS_URL") and workers > 1:
    raise SystemExit(
        "GERION_WORKERS > 1 needs REDIS_URL: the rate limit must be shared by every worker."
    )
# Threads let a worker keep serving small requests while another thread parses an upload.
# gthread, with a keep-alive connection's next request served on the thread that answered the
# last one when it follows at once (gerion/workers.py).
worker_class = os.environ.get("GERION_WORKER_CLASS", "gerion.workers.ThreadWorker")
threads = int(os.environ.get("GERION_THREADS", 4))

# A 100,000-finding upload takes seconds; the timeout only kills a stuck worker.
timeout = int(os.environ.get("GERION_TIMEOUT", 120))
graceful_timeout = 30
# Idle kept-alive connections wait in the worker's poller, not in a thread; this closes them.
keepalive = 5

# Slow clients. gunicorn alone cannot bound a client that sends its headers or body a byte
# every few seconds: a gthread worker reads a request that has started with blocking reads that
# have no deadline, and `timeout` does not apply (the worker's main loop keeps reporting alive
# while its threads wait). Eight such connections hold every thread of 2 workers x 4 threads.
# So gunicorn must not face clients: production runs the buffering reverse proxy of
# deploy/nginx/ in front (compose.yaml does), which reads whole requests with its own header
# and body timeouts and hands gunicorn only complete ones. What gunicorn bounds itself: the
# size of a request line and its headers (below), and the number of connections a worker
# holds (worker_connections, default 1000). when_ready() warns when it listens beyond loopback
# with no proxy declared (GERION_TRUSTED_PROXY_COUNT).

# Recycle workers now and then so that memory from a huge upload is returned to the OS.
max_requests = 2000
max_requests_jitter = 200

# Header limits: a bearer JWT is ~800 bytes and an API key ~60; these leave ample room for
# every legitimate request while bounding what an attacker can make us buffer. Bodies are
# limited by the application (GERION_MAX_BODY_BYTES -> 413 problem).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 16384

# The application writes its own structured access log (gerion.access) with the request id.
accesslog = None
errorlog = "-"
# gunicorn's own lines (boot, worker exits, timeouts) in the same JSON shape as the app's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "gerion.logging.JsonFormatter"}},
    # gunicorn quotes the request line or header line it refuses: the quote is dropped.
    "filters": {"gunicorn_requests": {"()": "gerion.logging.GunicornRequestFilter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["gunicorn_requests"],
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {"gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False}},
}
loglevel = os.environ.get("GERION_LOG_LEVEL", "info").lower()
# gunicorn trusts no forwarded header from anyone (its default trusts 127.0.0.1, so a local
# client could claim HTTPS or a SCRIPT_NAME). The application decides: the scheme from
# X-Forwarded-Proto only with GERION_BEHIND_TLS_PROXY, the client IP from X-Forwarded-For only
# with GERION_TRUSTED_PROXY_COUNT (gerion/net.py); the host and prefix never.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}


# gunicorn >= 25.1 opens a control socket (for gunicornc) at $HOME/.gunicorn/gunicorn.ctl by
# default: a file outside the checkout, shared by every gunicorn of the user (so two instances
# fight over it) and not writable by the image's user. Off unless a path is given. (Older
# gunicorns ignore both settings.)
control_socket_disable = not os.environ.get("GERION_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GERION_CONTROL_SOCKET"]


def post_fork(server: object, worker: object) -> None:
    """Each worker's allocator gives large uploads' memory back (gerion/memory.py)."""
    from gerion.memory import tune_allocator

    tune_allocator()


def worker_int(worker: object) -> None:
    """Ctrl-C (SIGINT) or SIGQUIT, gunicorn's quick shutdown: the worker ends here, at once.

    Without this, the worker returns to Python's exit, which joins every request thread of the
    gthread pool; a thread still reading from a client (a request or an upload half sent)
    never returns, and one waiting on a connection opened ahead of use takes seconds, so the
    master waits graceful_timeout (30 s), kills the worker and logs "Worker was sent SIGKILL!
    Perhaps out of memory?". A quick shutdown owes those requests nothing: the database rolls
    back whatever transaction they had open. SIGTERM keeps its graceful meaning.
    """
    logging.shutdown()  # flushes the log lines already written
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def when_ready(server: object) -> None:
    """Warn when gunicorn faces clients directly (see "Slow clients" above)."""
    exposed = [
        address
        for address in server.cfg.bind  # type: ignore[attr-defined]
        if not address.startswith(("127.", "localhost:", "[::1]:", "unix:"))
    ]
    if exposed and int(os.environ.get("GERION_TRUSTED_PROXY_COUNT", "0") or 0) == 0:
        server.log.warning(  # type: ignore[attr-defined]
            "gunicorn listens on %s with no reverse proxy declared "
            "(GERION_TRUSTED_PROXY_COUNT=0): slow clients can hold every worker thread; "
            "put the nginx of deploy/nginx/ in front (README, Deploying).",
            ", ".join(exposed),
        )
