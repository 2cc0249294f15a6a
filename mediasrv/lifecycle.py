"""Container hooks: the Docker HEALTHCHECK and the Kubernetes preStop drain.

    python -m mediasrv.lifecycle health [--ready]   exit 0 when /healthz answers 200
    python -m mediasrv.lifecycle drain [--master PID]

`drain` is the preStop hook. SIGTERM alone (what a container runtime sends) makes the
gunicorn master close the listening socket at once, so during the grace period a
stream Twilio is still connecting for a call reserved a moment earlier finds nobody
listening, and probes and scrapes of the draining pod fail. `drain` instead sends
SIGUSR2 to the master's workers (gunicorn.conf.py: start mediasrv's drain, keep
serving): /voice hands off or answers busy, `/healthz?ready=1` turns 503 so the pod
leaves the Service, reserved streams still connect, calls go on until they end or
the grace period's goodbye. It returns once no call and no reservation is left (or
GRACEFUL_TIMEOUT_S plus a margin has passed); the runtime's SIGTERM then finds an idle
server, which exits at once.

Standard library only, and nothing heavy imported: a probe runs every few seconds.

Layer: entry (command-line hooks for containers).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mediasrv.errors import ConfigError
from mediasrv.web.settings import Settings, load_settings

PROBE_TIMEOUT_S = 3.0
POLL_S = 0.5
# The drain waits this much longer than the grace period: the server's own plan has cut
# every call 1 s before its end, so past it only a wedged process is left to wait for.
DRAIN_MARGIN_S = 5.0


def probe_url(settings: Settings, query: str = "") -> str:
    """Return this container's own /healthz URL (loopback when bound to every interface)."""
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{settings.port}/healthz{query}"


def parse_ppid(stat: str) -> int:
    """Return the parent pid from a /proc/<pid>/stat line (the name may hold spaces)."""
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Return the pids whose parent is `pid` (gunicorn's workers, for its master)."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if parse_ppid((entry / "stat").read_text()) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not a process entry
    return sorted(found)


def drained(health: dict[str, Any]) -> bool:
    """True once the server reports no call and no reservation left."""
    return health.get("active_calls") == 0 and health.get("reserved_calls") == 0


def get_health(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503: alive, not ready; the body says why
        try:
            return int(exc.code), json.loads(exc.read() or b"{}")
        finally:
            exc.close()


def health(settings: Settings, ready: bool) -> int:
    url = probe_url(settings, "?ready=1" if ready else "")
    try:
        status, body = get_health(url)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    if status != 200:
        print(f"not ready: {'; '.join(body.get('not_ready_because', []))}")
        return 1
    return 0


def drain(settings: Settings, master: int) -> int:
    workers = children(master)
    if not workers:
        print(f"drain: no worker processes under pid {master}")
        return 1
    for pid in workers:
        os.kill(pid, signal.SIGUSR2)
    print(f"drain: asked worker(s) {workers} to stop taking calls")
    deadline = time.monotonic() + settings.graceful_timeout_s + DRAIN_MARGIN_S
    url = probe_url(settings)
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            _, last = get_health(url)
        except (OSError, ValueError) as exc:
            print(f"drain: server gone ({exc}): nothing left to wait for")
            return 0
        if drained(last):
            print("drain: no calls and no reservations left")
            return 0
        time.sleep(POLL_S)
    print(f"drain: still {last.get('active_calls')} call(s) after the grace period")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mediasrv.lifecycle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("health", help="exit 0 when /healthz answers 200")
    probe.add_argument("--ready", action="store_true", help="probe readiness (?ready=1)")
    hook = sub.add_parser("drain", help="preStop: stop taking calls, wait for them to end")
    hook.add_argument("--master", type=int, default=1,
                      help="gunicorn master pid (default 1: the container's first process)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mediasrv: configuration error: {exc}")
        return 2
    if args.command == "health":
        return health(settings, args.ready)
    return drain(settings, args.master)


if __name__ == "__main__":
    sys.exit(main())
