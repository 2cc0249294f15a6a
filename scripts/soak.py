"""Soak: many short calls against a gunicorn server process leave nothing behind.

    PYTHONPATH=. .venv/bin/python scripts/soak.py [--sequential 1000] [--concurrent 100]
        [--call-s 0.4] [--warmup 50] [--json out/soak.json]

Starts `gunicorn -c gunicorn.conf.py` (local backend, MAX_CALLS raised for the
concurrent phase), places emulated Twilio calls (greeting on, the caller hangs up
mid-greeting), and samples the *worker* process with psutil: threads, open fds,
inet connections, RSS. Baseline is taken after a warm-up of both load shapes (sequential
calls, then one concurrent burst): imports, the VAD model, malloc arenas of the handler
threads and gunicorn's thread pool all grow to the peak once and stay. The verdict
compares the end of the run with that baseline; a second concurrent burst shows whether
a burst leaves anything behind. Prints a table and a JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

from mediasrv.emulator.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.emulator.script import CallerScript  # noqa: E402

RSS_GROWTH_LIMIT = 0.05
SECRET_ENV = ("OPENAI_API_KEY", "OPENAI_REALTIME_URL", "TWILIO_AUTH_TOKEN",
              "TWILIO_ACCOUNT_SID", "PUBLIC_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`gunicorn -c gunicorn.conf.py` in a subprocess, its output in a temp file."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        self.env.update({"HOST": "127.0.0.1", "PORT": str(self.port), **(env or {})})
        self._out = tempfile.NamedTemporaryFile(prefix="mediasrv-gunicorn-", suffix=".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=ROOT, env=self.env, stdout=self._out, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}):\n{self.log()}")
            with contextlib.suppress(OSError):
                if self.get("/healthz").get("status") == "ok" and self.worker() is not None:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not up within {timeout} s:\n{self.log()}")

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + path, timeout=2.0) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def text(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=2.0) as resp:
            return resp.read().decode()  # type: ignore[no-any-return]

    def worker(self) -> psutil.Process | None:
        assert self.proc is not None
        children = psutil.Process(self.proc.pid).children()
        return children[0] if children else None

    def sigterm(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                self.proc.kill()
                self.proc.wait(5.0)
        return self.proc.returncode

    def log(self) -> str:
        self._out.flush()
        return Path(self._out.name).read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        self._out.close()


@contextlib.contextmanager
def server(env: Mapping[str, str] | None = None) -> Iterator[ServerProcess]:
    proc = ServerProcess(env)
    try:
        yield proc.start()
    finally:
        proc.close()


@dataclass
class Sample:
    label: str
    calls: int
    threads: int
    call_threads: int  # mediasrv-* threads of calls (and the local backend's sessions)
    pool_threads: int  # gunicorn's gthread pool: grows to the peak concurrency, by design
    fds: int
    inet: int
    rss_mb: float
    active_calls: int


def sample(srv: ServerProcess, label: str, calls: int, settle_s: float = 5.0) -> Sample:
    """Measure the worker once the server reports no active call (bounded wait)."""
    deadline = time.monotonic() + settle_s
    health = srv.get("/healthz")
    while (health["active_calls"] or health["threads"]["call"]) and time.monotonic() < deadline:
        time.sleep(0.05)
        health = srv.get("/healthz")
    time.sleep(0.3)  # handler threads return to the pool after the call's last line
    health = srv.get("/healthz")
    w = srv.worker()
    assert w is not None
    t = health["threads"]
    with w.oneshot():
        return Sample(label, calls, w.num_threads(), t["call"] + t["backend"], t["http_pool"],
                      w.num_fds(), len(w.net_connections(kind="inet")),
                      round(w.memory_info().rss / 2**20, 1), health["active_calls"])


def short_call(base: str, call_s: float) -> dict[str, Any]:
    script = CallerScript(bytes([0xFF]) * int(call_s * 8000))
    call = EmulatedCall(base, script, CallOptions(close_grace=1.0, connect_timeout=10.0))
    result = call.run(timeout=call_s + 10.0)
    return result.summary()


def run_sequential(base: str, n: int, call_s: float) -> list[dict[str, Any]]:
    return [short_call(base, call_s) for _ in range(n)]


def run_concurrent(base: str, n: int, call_s: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    lock = threading.Lock()

    def one() -> None:
        summary = short_call(base, call_s)
        with lock:
            out.append(summary)

    threads = [threading.Thread(target=one, name=f"soak-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(call_s + 30.0)
    return out


def failures(summaries: list[dict[str, Any]]) -> int:
    return sum(1 for s in summaries if not s["connected"] or s["error"])


def soak(sequential: int, concurrent: int, call_s: float, warmup: int) -> dict[str, Any]:
    env = {"MAX_CALLS": str(max(50, concurrent + 10)), "LOG_LEVEL": "warning",
           "SILENCE_TIMEOUT_S": "3600"}
    with server(env) as srv:
        samples = [sample(srv, "start", 0)]
        failed = failures(run_sequential(srv.base, warmup, call_s))
        samples.append(sample(srv, f"warm-up: {warmup} sequential", warmup))
        failed += failures(run_concurrent(srv.base, concurrent, call_s))
        samples.append(sample(srv, f"warm-up: {concurrent} concurrent", warmup + concurrent))
        base_at = len(samples) - 1
        t0 = time.monotonic()
        done = warmup + concurrent
        step = max(1, sequential // 4)
        start = done
        while done - start < sequential:
            n = min(step, sequential - (done - start))
            failed += failures(run_sequential(srv.base, n, call_s))
            done += n
            samples.append(sample(srv, f"sequential {done - start}", done))
        seq_s = time.monotonic() - t0
        t0 = time.monotonic()
        failed_conc = 0
        for burst in (1, 2):
            failed_conc += failures(run_concurrent(srv.base, concurrent, call_s))
            done += concurrent
            label = f"{concurrent} concurrent (burst {burst})"
            samples.append(settled(srv, samples[base_at], label, done))
        conc_s = (time.monotonic() - t0) / 2
        metrics = srv.text("/metrics")
    base = samples[base_at]
    end = samples[-1]
    growth = (end.rss_mb - base.rss_mb) / base.rss_mb
    return {
        "call_s": call_s,
        "sequential": sequential,
        "concurrent": concurrent,
        "sequential_wall_s": round(seq_s, 1),
        "concurrent_wall_s_per_burst": round(conc_s, 1),
        "failed_calls": failed + failed_conc,
        "samples": [asdict(s) for s in samples],
        "rss_growth": round(growth, 4),
        "threads_back_to_baseline": back_to_baseline(base, end)["threads"],
        "fds_back_to_baseline": end.fds <= base.fds,
        "inet_back_to_baseline": end.inet <= base.inet,
        "pass": growth < RSS_GROWTH_LIMIT and all(back_to_baseline(base, end).values())
        and failed + failed_conc == 0,
        "calls_ended": [line for line in metrics.splitlines()
                        if line.startswith("mediasrv_calls_ended_total")],
    }


def settled(srv: ServerProcess, base: Sample, label: str, calls: int,
            within_s: float = 5.0) -> Sample:
    """Sample until nothing is left over `base` or `within_s` has passed; the last sample.

    A socket the worker is still closing counts for a moment -- the /healthz request
    `sample` just made, a call's connection whose handler thread is returning (CI once saw
    fds, inet connections and pool threads one over, at 53 calls) -- while a leak stays.
    """
    deadline = time.monotonic() + within_s
    end = sample(srv, label, calls)
    while not all(back_to_baseline(base, end).values()) and time.monotonic() < deadline:
        time.sleep(0.25)
        end = sample(srv, label, calls, settle_s=0.0)
    return end


def back_to_baseline(base: Sample, end: Sample) -> dict[str, bool]:
    """Nothing left behind: call threads, other threads (minus the pool), fds, sockets."""
    return {
        "threads": end.call_threads <= base.call_threads
        and end.threads - end.pool_threads <= base.threads - base.pool_threads,
        "fds": end.fds <= base.fds,
        "inet": end.inet <= base.inet,
    }


def table(report: dict[str, Any]) -> str:
    rows = ["| phase | calls | threads (call / http pool) | fds | inet conns | RSS MB |",
            "|---|---|---|---|---|---|"]
    for s in report["samples"]:
        rows.append(f"| {s['label']} | {s['calls']} | {s['threads']} ({s['call_threads']} / "
                    f"{s['pool_threads']}) | {s['fds']} | {s['inet']} | {s['rss_mb']} |")
    rows.append("")
    rows.append(f"RSS growth after warm-up: {report['rss_growth'] * 100:.2f} % "
                f"(limit {RSS_GROWTH_LIMIT * 100:.0f} %); failed calls: {report['failed_calls']}; "
                f"sequential {report['sequential_wall_s']} s, concurrent "
                f"{report['concurrent_wall_s_per_burst']} s per burst; "
                f"verdict: {'PASS' if report['pass'] else 'FAIL'}")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sequential", type=int, default=1000)
    p.add_argument("--concurrent", type=int, default=100)
    p.add_argument("--call-s", type=float, default=0.4, help="caller script length")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args()
    report = soak(args.sequential, args.concurrent, args.call_s, args.warmup)
    print(table(report))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
