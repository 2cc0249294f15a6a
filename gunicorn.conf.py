"""gunicorn settings: `gunicorn -c gunicorn.conf.py` from the project root starts mediasrv.

Shutdown (SIGTERM, e.g. a deploy, or a first Ctrl-C): the worker's handler also starts
mediasrv's drain (mediasrv/web/shutdown.py): no new calls, active calls go on for up to
GRACEFUL_TIMEOUT_S, SHUTDOWN_GOODBYE_S before its end they say goodbye and hang up, and
any call the exiting worker still holds is logged as cut. A second Ctrl-C (or SIGQUIT)
ends every call at once, each with one line saying so. SIGUSR2 to a worker starts the
same drain without stopping it (mediasrv/lifecycle.py: the Kubernetes preStop hook).
With LOG_FORMAT=json gunicorn's own lines are JSON too.
"""

import math
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gunicorn.glogging import Logger  # noqa: E402

from mediasrv.errors import ConfigError  # noqa: E402
from mediasrv.web.logs import JsonFormatter  # noqa: E402
from mediasrv.web.memory import limit_malloc_arenas  # noqa: E402
from mediasrv.web.settings import load_settings  # noqa: E402

try:
    _settings = load_settings()
except ConfigError as exc:
    sys.stderr.write(f"mediasrv: configuration error: {exc}\n")
    sys.exit(2)

wsgi_app = "mediasrv.wsgi:app"
bind = f"{_settings.host}:{_settings.port}"
worker_class = "gthread"
# Calls are per-process state; one worker by default, more with WEB_CONCURRENCY. gunicorn
# parses WEB_CONCURRENCY itself when it is imported, before this file runs: a value that
# is not a whole number stops it there with its own traceback (settings.py cannot run
# first). Every whole number reaches the range check in settings.py.
workers = _settings.web_concurrency
# Each call holds one handler thread for its whole length; spare threads serve /voice,
# /healthz and /metrics while MAX_CALLS calls are up.
threads = _settings.max_calls + 16
# A WebSocket call is a long request: never let the worker timeout kill a live call.
timeout = 0
# SIGTERM: stop taking calls, let calls finish for up to this long, then say goodbye.
graceful_timeout = math.ceil(_settings.graceful_timeout_s)
loglevel = _settings.log_level.lower()
accesslog = None


def _shutdown(worker):  # type: ignore[no-untyped-def]
    app = getattr(worker, "wsgi", None)  # not there if the app failed to load
    return app.extensions["mediasrv"]["shutdown"] if app is not None else None


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """Cap glibc's malloc arenas in the worker, before the app and its threads start.

    glibc gives each thread that allocates an arena of its own, up to 8 per core, and
    memory freed in one arena is not reused by threads of another: every call's four
    threads spread their buffers over 16 arenas. Two arenas, as MALLOC_ARENA_MAX=2 does
    (which, if set, is left to glibc): peak RSS at 50 calls measured 5-15 % lower per
    call (docs/performance.md), at no CPU cost the benchmark could see.
    """
    if "MALLOC_ARENA_MAX" not in os.environ:
        limit_malloc_arenas(_MALLOC_ARENAS)


_MALLOC_ARENAS = 2


def on_starting(server):  # type: ignore[no-untyped-def]
    """Make a first Ctrl-C in the master graceful, like SIGTERM; a second one forces.

    gunicorn's master treats SIGINT as a quick stop (SIGQUIT to the workers, no grace).
    Handled as SIGTERM, the first Ctrl-C drains the calls for up to GRACEFUL_TIMEOUT_S,
    and gunicorn's own stop loop turns a second SIGINT into its quick stop.
    """
    server.handle_int = server.handle_term


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Chain mediasrv's drain (SIGTERM, first SIGINT) and forced stop in front of gunicorn's.

    A Ctrl-C in a terminal reaches the worker directly as well as through the master.
    """
    shutdown = _shutdown(worker)
    if shutdown is None:
        return
    graceful = signal.getsignal(signal.SIGTERM)  # gunicorn: stop accepting, then exit
    quick = signal.getsignal(signal.SIGQUIT)  # gunicorn: exit now
    # Counted, not inferred from "draining already": the master's SIGTERM for the first
    # Ctrl-C may be handled here before the terminal's own SIGINT.
    interrupts = []

    def on_drain(signum, frame):  # type: ignore[no-untyped-def]
        if signum == signal.SIGINT:
            interrupts.append(signum)
            if len(interrupts) > 1:
                on_force(signum, frame)  # the second Ctrl-C
                return
        shutdown.begin()
        if callable(graceful):
            graceful(signum, frame)

    def on_force(signum, frame):  # type: ignore[no-untyped-def]
        if shutdown.forced:
            return  # SIGINT and the master's SIGQUIT both come: act once
        shutdown.force()
        if callable(quick):
            quick(signum, frame)

    def on_drain_only(signum, frame):  # type: ignore[no-untyped-def]
        # SIGUSR2 from `python -m mediasrv.lifecycle drain` (the Kubernetes preStop): stop
        # taking calls but keep the listener, for reserved streams and probes.
        shutdown.begin()

    for sig, handler in ((signal.SIGTERM, on_drain), (signal.SIGINT, on_drain),
                         (signal.SIGQUIT, on_force), (signal.SIGUSR2, on_drain_only)):
        signal.signal(sig, handler)
        signal.siginterrupt(sig, False)  # as gunicorn: do not break blocking calls


def worker_int(worker):  # type: ignore[no-untyped-def]
    _report(worker, "worker interrupted (SIGINT/SIGQUIT): immediate exit")


def worker_abort(worker):  # type: ignore[no-untyped-def]
    _report(worker, "worker aborted (SIGABRT)")


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    shutdown = _shutdown(worker)
    if shutdown is not None:
        shutdown.wait_calls()  # the calls' goodbyes, bounded by the grace period
    _report(worker, "worker exiting at the end of the grace period")


def _report(worker, why):  # type: ignore[no-untyped-def]
    shutdown = _shutdown(worker)
    if shutdown is not None:
        shutdown.report_exit(why)


class _JsonLogger(Logger):
    """gunicorn's own lines (master and worker) as mediasrv's JSON lines."""

    def setup(self, cfg):  # type: ignore[no-untyped-def]
        super().setup(cfg)
        for handler in self.error_log.handlers + self.access_log.handlers:
            handler.setFormatter(JsonFormatter())


if _settings.log_format == "json":
    logger_class = _JsonLogger
