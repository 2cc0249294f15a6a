"""The processes scripts/bench.py starts besides the servers: the backend and the callers.

    python scripts/bench_roles.py backend [--speed 5 --delta-ms 100]
        prints "URL <ws url>", then answers each stdin line "stats" with one JSON line
        (the backend's counters, truncation records included); EOF stops it.
    python scripts/bench_roles.py emulate < job.json > results.json
        places the job's calls (staggered, from an absolute CLOCK_MONOTONIC start time
        shared by every emulator process) and prints one JSON list of call summaries.

They run in their own processes so the emulator's and the backend's CPU and GIL are not
the server's: on 2 cores the emulator alone costs ~1 % of a core per call.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.emulator.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.emulator.script import CallerScript, EchoPath, Placement  # noqa: E402
from mediasrv.localbackend import BackendOptions, LocalBackend  # noqa: E402


def run_backend(speed: float, delta_ms: int) -> int:
    backend = LocalBackend(BackendOptions(speed=speed, delta_ms=delta_ms)).start()
    print(f"URL {backend.url}", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps(backend.stats()), flush=True)
    finally:
        backend.stop()
    return 0


def run_emulator(job: dict[str, Any]) -> list[dict[str, Any]]:
    echo = EchoPath(job["echo_delay_ms"], job["echo_erl_db"]) if job.get("echo_delay_ms") else None
    script = CallerScript.build(
        [Placement(Path(p), at) for p, at in job["placements"]],
        duration=job["duration"],
        echo=echo,
    )
    calls: list[EmulatedCall] = []
    for at in job["start_times"]:  # absolute time.monotonic() values
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        call = EmulatedCall(job["url"], script, CallOptions(post_voice=True))
        call.start()
        calls.append(call)
    out = []
    for call in calls:
        call.wait(job["duration"] + 30.0)
        try:
            result = call.result()
        except RuntimeError:
            out.append({"connected": False, "error": "emulated call never ended"})
            continue
        summary = result.summary()
        summary["ended_by"] = result.hangup_by
        out.append(summary)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("role", choices=["backend", "emulate"])
    p.add_argument("--speed", type=float, default=5.0)
    p.add_argument("--delta-ms", type=int, default=100)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.role == "backend":
        return run_backend(args.speed, args.delta_ms)
    job = json.load(sys.stdin)
    json.dump(run_emulator(job), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
