"""Where a worker's idle memory comes from: RSS after each import step, then `create_app`.

    PYTHONPATH=. .venv/bin/python scripts/mem_startup.py

One process imports, in order, what a gunicorn worker holds (gunicorn, numpy,
onnxruntime, Flask and the rest, mediasrv's app) and then builds the app as the worker
does (local turn detection, the end-of-turn model, no keys; the backend URL is never
dialled), printing the RSS each step added and how much of it is anonymous (heap and
mmaps, as opposed to pages of shared libraries). Glibc's malloc arenas are capped at two
first, as gunicorn.conf.py's post_fork does. The gunicorn master is not in this picture:
measure the real pair with scripts/mem_where.py MASTER_PID WORKER_PID.
"""

from __future__ import annotations

import ctypes
import importlib
import os
from pathlib import Path

STEPS = ["gunicorn.glogging", "gunicorn.workers.gthread", "mediasrv.web.settings", "numpy",
         "onnxruntime", "flask", "flask_sock", "websocket", "prometheus_client",
         "twilio.twiml.voice_response", "mediasrv.web.app"]


def rss_and_anon_mb() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    return fields["Rss"], fields["Anonymous"]


def main() -> None:
    ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX, as the worker's post_fork
    os.environ.update(TURN_DETECTION="local", TURN_MODEL="smart-turn", LOG_LEVEL="error",
                      OPENAI_REALTIME_URL="ws://127.0.0.1:9/v1/realtime")
    os.environ.pop("OPENAI_API_KEY", None)
    before = rss_and_anon_mb()
    print(f"{'python':28s} {before[0]:6.1f} MB (anon {before[1]:.1f})")
    for step in [*STEPS, "create_app"]:
        if step == "create_app":
            from mediasrv.web.app import create_app
            from mediasrv.web.settings import load_settings

            create_app(load_settings())
        else:
            importlib.import_module(step)
        now = rss_and_anon_mb()
        print(f"{step:28s} +{now[0] - before[0]:5.1f} MB (anon +{now[1] - before[1]:5.1f})"
              f"  total {now[0]:6.1f}")
        before = now


if __name__ == "__main__":
    main()
