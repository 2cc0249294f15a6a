"""gunicorn settings: `gunicorn -c gunicorn.conf.py` from the project root starts mediasrv."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mediasrv.errors import ConfigError  # noqa: E402
from mediasrv.settings import load_settings  # noqa: E402

try:
    _settings = load_settings()
except ConfigError as exc:
    sys.stderr.write(f"mediasrv: configuration error: {exc}\n")
    sys.exit(2)

wsgi_app = "mediasrv.wsgi:app"
bind = f"{_settings.host}:{_settings.port}"
worker_class = "gthread"
# Calls are per-process state; one worker by default, more with WEB_CONCURRENCY.
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
# Each call holds one handler thread for its whole length; spare threads serve /voice,
# /healthz and /metrics while MAX_CALLS calls are up.
threads = _settings.max_calls + 16
# A WebSocket call is a long request: never let the worker timeout kill a live call.
timeout = 0
# SIGTERM: stop taking calls, let calls finish for up to this long, then say goodbye.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT_S", "30"))
loglevel = _settings.log_level.lower()
accesslog = None
