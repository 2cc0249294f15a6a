"""Benchmark mediasrv against the floor of its own stack: pacing, barge-in, latency, cost.

    python scripts/bench.py [--calls 25[,50,...]] [--duration 30] [--mode local|server]
        [--ramp [--steps 10,25,50,...]] [--no-floor] [--url http://host:port [--server-pid P]]
        [--backend realtime|cascade] [--json out.json] [--profile DIR]

Each phase starts fresh processes: the local Realtime backend (scripts/bench_roles.py),
the server under test with `gunicorn` exactly as deployed (`gunicorn -c gunicorn.conf.py`
for mediasrv, with OPENAI_REALTIME_URL pointing at that backend; the floor relay of
scripts/bench_floor.py on the same gthread worker) and one emulator process per 40
calls. The backend runs outside the server so that the server's CPU is its own and its
truncation records (audio_end_ms per item) can be read back and compared with what the
emulated phone actually played -- parsing `[BARGE-IN] heard_ms=` log lines would give
mediasrv's own claim, not the backend's record of what it was told.

Every call: greeting (5.5 s), an utterance, the answer heard to its end, a second
utterance, and during its answer a third utterance that barges in (the final one; its
answer plays until the caller hangs up at --duration).

`--backend cascade` (AGENT_BACKEND=cascade): instead of the Realtime backend, the three
cascade stand-ins run as processes (scripts/bench_cascade.py) and their CPU is reported
as the backend's; the table adds the cascade's own added latency from its `[PIPELINE]`
log lines. The floor relay speaks Realtime only: use --no-floor.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import psutil
from bench_cascade import pipeline_latency, start_standins

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
GUNICORN = str(Path(PY).with_name("gunicorn"))
SPEECH = ROOT / "tests" / "audio" / "speech"
# (file, seconds into the stream), with ~1 s of slack for a late start under load: the
# greeting ends ~5.8 s; the answer to utterance 1 runs ~9-21.5 s; utterance 2 (23 s, not
# earlier: started on the answer's last syllables it was counted as a missed barge-in)
# is answered from ~25 s; utterance 3 cuts that answer at 26 s and its own answer plays
# until 31 s.
PLACEMENTS = [
    ("en_asterisk_allison_hello-world.wav", 7.0),
    ("en_alsa_front_center.wav", 23.0),
    ("en_espeak_caller.wav", 26.0),
]
MIN_DURATION_S = 31.0
CALLS_PER_EMULATOR = 40  # ~0.4 of a core per emulator process at ~1 % per call
RAMP_STEPS = (10, 25, 50, 75, 100, 125, 150, 200)
PACING_LIMIT_MS = 20.0
EMULATOR_LATE_MS = 20.0  # an emulator frame this late means the caller side is suspect
# A cancel racing the response's own end: mediasrv logs it at debug as harmless. Counted
# and shown, but not a failure.
HARMLESS_ERRORS = frozenset({"response_cancel_not_active"})


@dataclass
class Proc:
    """A child process we started (ended only by its pid)."""

    popen: subprocess.Popen[Any]
    log: Path | None = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class Sampler:
    """CPU and RSS of a process tree, sampled while calls run."""

    pid: int
    peak_rss: int = 0
    samples: list[int] = field(default_factory=list)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> float:
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss(self) -> int:
        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def sample(self) -> None:
        rss = self.rss()
        self.samples.append(rss)
        self.peak_rss = max(self.peak_rss, rss)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not answer within {timeout:.0f} s")


def start_backend(out: Path) -> tuple[Proc, str]:
    popen = subprocess.Popen(
        [PY, str(ROOT / "scripts" / "bench_roles.py"), "backend"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=(out / "backend.log").open("w"),
        text=True, cwd=ROOT,
    )
    assert popen.stdout is not None
    line = popen.stdout.readline()
    if not line.startswith("URL "):
        raise SystemExit(f"bench: backend did not start (see {out / 'backend.log'})")
    return Proc(popen), line.split()[1]


def backend_stats(proc: Proc) -> dict[str, Any]:
    assert proc.popen.stdin is not None and proc.popen.stdout is not None
    proc.popen.stdin.write("stats\n")
    proc.popen.stdin.flush()
    return dict(json.loads(proc.popen.stdout.readline()))


def switch_interval_conf(out: Path, switch_ms: float) -> str:
    """Write gunicorn.conf.py plus a post_worker_init hook setting the GIL switch interval."""
    conf = out / "gunicorn_switch.conf.py"
    conf.write_text(
        f"__file__ = {str(ROOT / 'gunicorn.conf.py')!r}\n"
        "exec(compile(open(__file__).read(), __file__, 'exec'))\n"
        "_previous_hook = globals().get('post_worker_init')\n"
        "def post_worker_init(worker):\n"
        "    import sys\n"
        f"    sys.setswitchinterval({switch_ms / 1000.0!r})\n"
        "    if _previous_hook is not None:\n"
        "        _previous_hook(worker)\n"
    )
    return str(conf)


def start_server(kind: str, port: int, backend_url: str, calls: int, mode: str,
                 out: Path, env_extra: dict[str, str], switch_ms: float | None = None) -> Proc:
    env = dict(os.environ)
    log = out / f"{kind}.log"
    if kind == "mediasrv":
        env.update(HOST="127.0.0.1", PORT=str(port), MAX_CALLS=str(calls + 10),
                   TURN_DETECTION=mode, OPENAI_REALTIME_URL=backend_url, LOG_LEVEL="info")
        env.pop("OPENAI_API_KEY", None)
        cmd = [GUNICORN, "-c", switch_interval_conf(out, switch_ms) if switch_ms else
               "gunicorn.conf.py"]
    else:
        env.update(BENCH_BACKEND_URL=backend_url)
        empty = out / "floor.gunicorn.conf.py"  # else gunicorn reads ./gunicorn.conf.py
        empty.write_text("")
        cmd = [GUNICORN, "-c", str(empty), "-k", "gthread", "-w", "1",
               "--threads", str(calls + 26),
               "-b", f"127.0.0.1:{port}", "--timeout", "0", "--graceful-timeout", "5",
               "--pythonpath", "scripts", "bench_floor:app"]
    env.update(env_extra)
    popen = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"),
                             stderr=subprocess.STDOUT)
    proc = Proc(popen, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
    except SystemExit:
        proc.stop()
        raise
    return proc


def run_emulators(url: str, calls: int, duration: float, echo_ms: float | None,
                  sampler: Sampler | None, backends: list[int],
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    n_proc = max(1, math.ceil(calls / CALLS_PER_EMULATOR))
    stagger = min(0.05, 3.0 / calls)
    start_at = time.monotonic() + 2.5  # emulator imports and script rendering
    placements = [(str(SPEECH / f), at) for f, at in PLACEMENTS]
    procs = []
    for k in range(n_proc):
        job = {
            "url": url, "duration": duration, "placements": placements,
            "start_times": [start_at + i * stagger for i in range(k, calls, n_proc)],
            "echo_delay_ms": echo_ms, "echo_erl_db": 10.0,
        }
        p = subprocess.Popen([PY, str(ROOT / "scripts" / "bench_roles.py"), "emulate"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert p.stdin is not None
        p.stdin.write(json.dumps(job))
        p.stdin.close()
        procs.append(p)
    time.sleep(max(0.0, start_at - time.monotonic() - 0.2))
    cpu0 = sampler.cpu() if sampler else 0.0
    backend_cpu = [Sampler(pid) for pid in backends]
    bcpu0 = sum(b.cpu() for b in backend_cpu)
    psutil.cpu_percent()
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs):
        if sampler:
            sampler.sample()
        time.sleep(0.5)
    wall = time.monotonic() - t0
    usage = {
        "wall_s": round(wall, 1),
        "server_cpu_s": round(sampler.cpu() - cpu0, 2) if sampler else None,
        "backend_cpu_pct": round(100 * (sum(b.cpu() for b in backend_cpu) - bcpu0) / wall, 1)
        if backend_cpu else None,
        "machine_cpu_pct": round(psutil.cpu_percent(), 1),
    }
    results: list[dict[str, Any]] = []
    for p in procs:
        assert p.stdout is not None
        text = p.stdout.read()
        p.wait()
        try:
            results += json.loads(text)
        except ValueError:
            results += [{"connected": False, "error": "emulator process failed"}] * len(
                range(0, calls, n_proc))
    return results, usage


# --- aggregation ---------------------------------------------------------------------


def pct(values: Iterable[float], q: float) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.percentile(v, q)), 1) if v else None


def hist_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Interpolate a quantile from cumulative Prometheus buckets [(le, count)]."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = q * buckets[-1][1]
    lo_le, lo_n = 0.0, 0.0
    for le, n in buckets:
        if n >= target:
            if math.isinf(le):
                return lo_le  # beyond the last finite bucket: a lower bound
            frac = (target - lo_n) / (n - lo_n) if n > lo_n else 1.0
            return round(lo_le + frac * (le - lo_le), 2)
        lo_le, lo_n = le, n
    return None


def scrape(port: int) -> dict[str, Any]:
    """Read mediasrv's /metrics: response latency buckets and backend error counts."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    buckets = []
    errors: dict[str, float] = {}
    total = count = 0.0
    for line in text.splitlines():
        m = re.match(r'mediasrv_response_latency_ms_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            buckets.append((float(m.group(1)), float(m.group(2))))
        elif line.startswith("mediasrv_response_latency_ms_sum "):
            total = float(line.split()[1])
        elif line.startswith("mediasrv_response_latency_ms_count "):
            count = float(line.split()[1])
        m = re.match(r'mediasrv_backend_errors_total\{code="([^"]+)"\} (\S+)', line)
        if m and float(m.group(2)):
            errors[m.group(1)] = float(m.group(2))
    return {
        "response_latency_ms": {
            "n": int(count),
            "p50": hist_quantile(buckets, 0.50),
            "p99": hist_quantile(buckets, 0.99),
            "mean": round(total / count, 2) if count else None,
        },
        "backend_errors": errors,
    }


def scan_log(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    tracebacks = errors = barge_lines = 0
    for line in path.read_text(errors="replace").splitlines():
        tracebacks += line.startswith("Traceback")
        errors += " ERROR " in line or " CRITICAL " in line
        barge_lines += "[BARGE-IN]" in line
    return {"tracebacks": tracebacks, "error_lines": errors, "barge_in_lines": barge_lines}


def aggregate(kind: str, calls: list[dict[str, Any]], usage: dict[str, Any],
              rss: Sampler | None, idle_rss: int, backend: dict[str, Any],
              metrics: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
    ok = [c for c in calls if c.get("connected") and not c.get("error")]
    failed = len(calls) - len(ok)
    call_s = sum(c.get("duration_s") or 0.0 for c in ok)
    pacing = [c["pacing"] for c in ok if c.get("pacing", {}).get("intervals")]
    barge = [x for c in ok for x in c.get("barge_in_latency_ms", [])]
    missed = sum(
        1 for c in ok for s in c.get("caller_speech", [])
        if s["during_ai_audio"] and s["barge_in_latency_ms"] is None and not s["after_hangup"]
    )
    after = [cl["heard_after_ms"] for c in ok for cl in c.get("clears", [])]
    heard: dict[str, float] = {}
    for c in ok:
        heard.update(c.get("heard_ms_per_item", {}))
    trunc = [abs(end - heard[item]) for item, end, _ in backend.get("truncations", [])
             if item in heard]
    late = [c.get("emulator", {}).get("tx_late_max_ms", 0.0) for c in ok]
    cpu_s = usage.get("server_cpu_s")
    out: dict[str, Any] = {
        "server": kind,
        "calls": len(calls),
        "failed_calls": failed,
        "call_s": round(call_s, 1),
        "responses_per_call": round(sum(c.get("responses", 0) for c in ok) / max(1, len(ok)), 2),
        "pacing": {
            "p50_ms": pct((p["p50_ms"] for p in pacing), 50),
            "p99_ms_median_call": pct((p["p99_ms"] for p in pacing), 50),
            "p99_ms_worst_call": max((p["p99_ms"] for p in pacing), default=None),
            "max_ms": max((p["max_ms"] for p in pacing), default=None),
            "underruns": sum(c.get("underruns", 0) for c in ok),
        },
        "barge_in": {
            "n": len(barge),
            "missed": missed,
            "onset_to_clear_p50_ms": pct(barge, 50),
            "onset_to_clear_p95_ms": pct(barge, 95),
            "onset_to_clear_max_ms": max(barge, default=None),
            "heard_after_clear_max_ms": max(after, default=None),
            "truncations": len(backend.get("truncations", [])),
            "truncation_error_p50_ms": pct(trunc, 50),
            "truncation_error_max_ms": round(max(trunc), 1) if trunc else None,
        },
        "response_latency_ms": metrics.get("response_latency_ms"),
        "pipeline": log.get("pipeline", {}),
        "cost": {
            "server_cpu_s": cpu_s,
            "cpu_per_call_s": round(cpu_s / call_s, 5) if cpu_s is not None and call_s else None,
            "server_cpu_pct_of_core": round(100 * cpu_s / usage["wall_s"], 1)
            if cpu_s is not None else None,
            "peak_rss_mb": round(rss.peak_rss / 2**20, 1) if rss else None,
            "idle_rss_mb": round(idle_rss / 2**20, 1) if rss else None,
            "rss_per_call_mb": round((rss.peak_rss - idle_rss) / 2**20 / max(1, len(calls)), 2)
            if rss else None,
        },
        "errors": {
            "failed_calls": failed,
            "call_errors": sorted({str(c.get("error")) for c in calls if c.get("error")})[:5],
            "backend_error_events": dict(backend.get("errors", {})),
            "server_seen_backend_errors": metrics.get("backend_errors", {}),
            "server_log": log,
        },
        "emulator": {
            "late_max_ms": max(late, default=0.0),
            "late_frames": sum(c.get("emulator", {}).get("tx_late_frames", 0) for c in ok),
            "overloaded": max(late, default=0.0) > EMULATOR_LATE_MS,
        },
        "machine": {
            "machine_cpu_pct": usage.get("machine_cpu_pct"),
            "backend_cpu_pct": usage.get("backend_cpu_pct"),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "wall_s": usage.get("wall_s"),
        },
    }
    out["verdict"] = verdict(out)
    return out


def verdict(r: dict[str, Any]) -> str:
    """Return "ok" or what broke capacity (p99 <= 20 ms, no underruns, no errors)."""
    why = []
    p99 = r["pacing"]["p99_ms_worst_call"]
    if r["failed_calls"]:
        why.append(f"{r['failed_calls']} calls failed")
    if p99 is None or p99 > PACING_LIMIT_MS:
        why.append(f"pacing p99 {p99} ms > {PACING_LIMIT_MS:.0f} ms")
    if r["pacing"]["underruns"]:
        why.append(f"{r['pacing']['underruns']} underruns")
    e = r["errors"]
    real = {k: n for k, n in e["backend_error_events"].items() if k not in HARMLESS_ERRORS}
    if real or e["server_log"].get("tracebacks"):
        why.append(f"errors (backend {real}, {e['server_log'].get('tracebacks')} tracebacks)")
    if not why:
        return "ok"
    cpu = r["cost"]["server_cpu_pct_of_core"]
    if cpu is not None and cpu > 85:
        why.append(f"server process at {cpu:.0f} % of one core (GIL-bound)")
    if (r["machine"]["machine_cpu_pct"] or 0) > 90:
        why.append(f"machine CPU at {r['machine']['machine_cpu_pct']:.0f} % of {os.cpu_count()} "
                   "cores")
    if r["emulator"]["overloaded"]:
        why.append(f"emulator overloaded (a frame {r['emulator']['late_max_ms']} ms late)")
    return "; ".join(why)


# --- phases --------------------------------------------------------------------------


def run_phase(kind: str, calls: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    backend: Proc | None = None
    standins: list[subprocess.Popen[str]] = []
    server: Proc | None = None
    port = 0
    profiler = None
    try:
        if args.url and kind == "mediasrv":
            url = args.url
            sampler = Sampler(args.server_pid) if args.server_pid else None
        else:
            env: dict[str, str] = {}
            if kind == "mediasrv" and args.backend == "cascade":
                standins, env = start_standins(out)
                backend_url = ""
            else:
                backend, backend_url = start_backend(out)
            port = free_port()
            server = start_server(kind, port, backend_url, calls, args.mode, out, env,
                                  args.switch_interval_ms)
            url = f"http://127.0.0.1:{port}"
            sampler = Sampler(server.popen.pid)
        time.sleep(0.5)
        idle_rss = sampler.rss() if sampler else 0
        if args.profile and sampler is not None:
            profiler = start_profile(sampler, Path(args.profile) / f"{kind}-{calls}", args)
        pids = [backend.popen.pid] if backend else [p.pid for p in standins]
        results, usage = run_emulators(url, calls, args.duration, args.echo_ms, sampler, pids)
        metrics = scrape(port) if kind == "mediasrv" and port else {}
        stats = backend_stats(backend) if backend else {}
    finally:
        if profiler is not None and profiler.popen.poll() is None:
            profiler.popen.send_signal(signal.SIGINT)  # py-spy writes its output on ^C
            profiler.popen.wait(30)
        if server is not None:
            server.stop()
        if backend is not None:
            assert backend.popen.stdin is not None
            backend.popen.stdin.close()
            backend.stop()
        for standin in standins:
            Proc(standin).stop()
    log = scan_log(server.log if server else None)
    if standins:
        log["pipeline"] = pipeline_latency(server.log if server else None)
    return aggregate(kind, results, usage, sampler, idle_rss, stats, metrics, log)


def start_profile(sampler: Sampler, prefix: Path, args: argparse.Namespace) -> Proc | None:
    """py-spy record the worker (the gunicorn master's child) for the whole phase."""
    kids = sampler.tree()[1:]
    pid = kids[0].pid if kids else sampler.pid
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(PY).with_name("py-spy")
    cmd = [str(spy), "record", "-p", str(pid), "-r", "100", "-d", str(int(args.duration + 3)),
           "-f", "raw", "-o", f"{prefix}.txt", "--nonblocking", "--gil"]
    log = prefix.parent / f"{prefix.name}.py-spy.log"
    return Proc(subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT))


# --- report --------------------------------------------------------------------------

ROWS = [
    ("calls (failed)", lambda r: f"{r['calls']} ({r['failed_calls']})"),
    ("responses heard per call", lambda r: r["responses_per_call"]),
    ("pacing p50 ms (median call)", lambda r: r["pacing"]["p50_ms"]),
    ("pacing p99 ms (median call)", lambda r: r["pacing"]["p99_ms_median_call"]),
    ("pacing p99 ms (worst call)", lambda r: r["pacing"]["p99_ms_worst_call"]),
    ("pacing max ms", lambda r: r["pacing"]["max_ms"]),
    ("underruns (all calls)", lambda r: r["pacing"]["underruns"]),
    ("barge-ins (missed)", lambda r: f"{r['barge_in']['n']} ({r['barge_in']['missed']})"),
    ("onset->clear p50/p95/max ms", lambda r: "/".join(str(r["barge_in"][k]) for k in (
        "onset_to_clear_p50_ms", "onset_to_clear_p95_ms", "onset_to_clear_max_ms"))),
    ("heard after clear max ms", lambda r: r["barge_in"]["heard_after_clear_max_ms"]),
    ("truncation error p50/max ms", lambda r: "-" if not r["barge_in"]["truncations"] else
        f"{r['barge_in']['truncation_error_p50_ms']}/{r['barge_in']['truncation_error_max_ms']}"),
    ("added latency p50/p99 ms", lambda r: "-" if not r["response_latency_ms"] else
        f"{r['response_latency_ms']['p50']}/{r['response_latency_ms']['p99']}"),
    ("cascade: final transcript->chat sent p50/p99 ms", lambda r: "-" if not r["pipeline"]
        else "/".join(str(v) for v in r["pipeline"]["transcript_to_chat_sent_ms"].values())),
    ("cascade: first token->TTS text p50/p99 ms", lambda r: "-" if not r["pipeline"]
        else "/".join(str(v) for v in r["pipeline"]["first_token_to_tts_text_ms"].values())),
    ("server CPU s per call-s", lambda r: r["cost"]["cpu_per_call_s"]),
    ("server CPU % of a core", lambda r: r["cost"]["server_cpu_pct_of_core"]),
    ("peak RSS MB (per call)", lambda r: f"{r['cost']['peak_rss_mb']} "
        f"({r['cost']['rss_per_call_mb']})"),
    ("backend errors / tracebacks", lambda r: f"{sum(r['errors']['backend_error_events'].values())}"
        f" / {r['errors']['server_log'].get('tracebacks', '-')}"),
    ("emulator late max ms", lambda r: r["emulator"]["late_max_ms"]),
    ("machine CPU % / backend %", lambda r: f"{r['machine']['machine_cpu_pct']} / "
        f"{r['machine']['backend_cpu_pct']}"),
    ("verdict", lambda r: r["verdict"]),
]


def ratios(floor: dict[str, Any], srv: dict[str, Any]) -> dict[str, float | None]:
    def div(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    return {
        "cpu_per_call_s": div(srv["cost"]["cpu_per_call_s"], floor["cost"]["cpu_per_call_s"]),
        "pacing_p99_median_call": div(srv["pacing"]["p99_ms_median_call"],
                                      floor["pacing"]["p99_ms_median_call"]),
        "pacing_p99_worst_call": div(srv["pacing"]["p99_ms_worst_call"],
                                     floor["pacing"]["p99_ms_worst_call"]),
    }


def table(results: list[dict[str, Any]], file: IO[str] = sys.stdout) -> None:
    heads = [f"{r['server']} x{r['calls']}" for r in results]
    width = max(len(h) for h in heads)
    cells = [[str(fn(r)) for r in results] for _, fn in ROWS]
    widths = [max(width, *(len(row[i]) for row in cells[:-1])) for i in range(len(results))]
    print("| metric | " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
          + " |", file=file)
    print("|---|" + "|".join("-" * (w + 2) for w in widths) + "|", file=file)
    for (name, _), row in zip(ROWS, cells, strict=True):
        print(f"| {name} | " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
              + " |", file=file)


def side_by_side(runs: list[dict[str, Any]], file: IO[str] = sys.stdout) -> None:
    """Print floor vs mediasrv per size: the README's Performance table."""
    by = {(r["server"], r["calls"]): r for r in runs}
    sizes = sorted({n for _, n in by})
    print("| calls | CPU s per call-s floor / mediasrv (ratio) | pacing p99 worst call ms "
          "floor / mediasrv | underruns floor / mediasrv | RSS MB per call floor / mediasrv "
          "| verdict floor / mediasrv |", file=file)
    print("|---|---|---|---|---|---|", file=file)
    for n in sizes:
        f, m = by.get(("floor", n)), by.get(("mediasrv", n))

        def cell(r: dict[str, Any] | None, get: Any) -> str:
            return "-" if r is None else str(get(r))

        cpu_f = cell(f, lambda r: r["cost"]["cpu_per_call_s"])
        cpu_m = cell(m, lambda r: r["cost"]["cpu_per_call_s"])
        ratio = (f"{m['cost']['cpu_per_call_s'] / f['cost']['cpu_per_call_s']:.2f}x"
                 if f and m and f["cost"]["cpu_per_call_s"] and m["cost"]["cpu_per_call_s"]
                 else "-")
        print(f"| {n} | {cpu_f} / {cpu_m} ({ratio}) "
              f"| {cell(f, lambda r: r['pacing']['p99_ms_worst_call'])} / "
              f"{cell(m, lambda r: r['pacing']['p99_ms_worst_call'])} "
              f"| {cell(f, lambda r: r['pacing']['underruns'])} / "
              f"{cell(m, lambda r: r['pacing']['underruns'])} "
              f"| {cell(f, lambda r: r['cost']['rss_per_call_mb'])} / "
              f"{cell(m, lambda r: r['cost']['rss_per_call_mb'])} "
              f"| {cell(f, lambda r: r['verdict'])} / {cell(m, lambda r: r['verdict'])} |",
              file=file)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", default="25",
                   help="concurrent calls; several sizes (e.g. 25,50) run one after another")
    p.add_argument("--duration", type=float, default=MIN_DURATION_S, help="call length, s")
    p.add_argument("--mode", choices=["local", "server"], default="local",
                   help="mediasrv TURN_DETECTION")
    p.add_argument("--ramp", action="store_true", help="step calls up until capacity breaks")
    p.add_argument("--steps", default=",".join(map(str, RAMP_STEPS)), help="ramp steps")
    p.add_argument("--no-floor", action="store_true", help="skip the floor relay")
    p.add_argument("--floor-only", action="store_true", help="only the floor relay")
    p.add_argument("--url", help="target a running mediasrv instead of starting one")
    p.add_argument("--server-pid", type=int, help="with --url: measure this process tree")
    p.add_argument("--echo-ms", type=float, help="caller handset echo delay (default: none)")
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--out", type=Path, default=Path("/tmp/mediasrv-bench"), help="logs")
    p.add_argument("--profile", help="py-spy record the worker into this directory")
    p.add_argument("--backend", choices=["realtime", "cascade"], default="realtime",
                   help="mediasrv AGENT_BACKEND (cascade: the three stand-ins as processes)")
    p.add_argument("--switch-interval-ms", type=float,
                   help="mediasrv worker: sys.setswitchinterval (post_worker_init hook)")
    args = p.parse_args(argv)
    if args.duration < MIN_DURATION_S:
        p.error(f"--duration must be >= {MIN_DURATION_S:.0f} s (the call script needs it)")
    kinds = ["floor", "mediasrv"]
    if args.no_floor or args.url:
        kinds = ["mediasrv"]
    if args.floor_only:
        kinds = ["floor"]
    print(f"bench: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, mode {args.mode}, "
          f"backend {args.backend}, {args.duration:.0f} s calls", file=sys.stderr)
    doc: dict[str, Any] = {"argv": sys.argv, "mode": args.mode, "backend": args.backend,
                           "cores": os.cpu_count(),
                           "load_before": os.getloadavg(), "runs": []}
    steps = [int(x) for x in (args.steps if args.ramp else args.calls).split(",")]
    capacity: dict[str, int] = {}
    limits: dict[str, str] = {}
    for kind in kinds:
        for n in steps:
            t = time.monotonic()
            r = run_phase(kind, n, args, args.out / f"{kind}-{n}")
            doc["runs"].append(r)
            print(f"bench: {kind} x{n}: {r['verdict']} ({time.monotonic() - t:.0f} s)",
                  file=sys.stderr)
            if r["verdict"] != "ok":
                limits[kind] = f"at {n} calls: {r['verdict']}"
                if args.ramp:
                    break
                continue
            capacity[kind] = n
        else:
            limits[kind] = f"not reached: all steps up to {steps[-1]} passed"
    table(doc["runs"])
    by = {(r["server"], r["calls"]): r for r in doc["runs"]}
    for n in steps:
        if ("floor", n) in by and ("mediasrv", n) in by:
            doc.setdefault("ratios", {})[str(n)] = rt = ratios(by[("floor", n)],
                                                               by[("mediasrv", n)])
            print(f"\nmediasrv / floor at {n} calls: {json.dumps(rt)}")
    print()
    side_by_side(doc["runs"])
    if args.ramp:
        doc["capacity"] = capacity
        doc["limits"] = limits
        for kind in kinds:
            print(f"capacity {kind}: {capacity.get(kind, 0)} calls; limited {limits[kind]}")
    else:
        for r in doc["runs"]:
            print(f"{r['server']} x{r['calls']}: {r['verdict']}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
