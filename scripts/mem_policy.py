"""What one call's turn policy keeps: tracemalloc over frame-harness calls, per TurnPolicy.

    PYTHONPATH=. .venv/bin/python scripts/mem_policy.py [--calls 5] [--line none|handset]

Runs the bot's long answer through the emulator's line (mediasrv.testing.frames.simulate,
no server, no threads) once to warm numpy's and onnxruntime's caches, then `--calls`
times more, keeping each TurnPolicy alive; prints what they still hold, per policy and
by line of code. Deterministic (no clock, no load), so it can be run at any commit: the
per-call figure of `scripts/bench.py` is this plus threads, sockets and queues, measured
on a loaded machine. `--line none` is the benchmark's line (no echo: the canceller never
finds a delay); `handset` learns one. onnxruntime's own allocations are not traced.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import numpy as np

from mediasrv.emulator.line import HANDSET, Line
from mediasrv.policy.turns import TurnConfig, TurnPolicy
from mediasrv.testing.frames import Net, bots, simulate

LINES = {"none": Line(), "handset": Line(echo=HANDSET)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--line", choices=sorted(LINES), default="none")
    parser.add_argument("--top", type=int, default=15, help="lines of code printed")
    args = parser.parse_args()
    config, line = TurnConfig(), LINES[args.line]
    bot = bots()["long_answer"]
    near = np.zeros(len(bot) + 16000)  # nobody talks: the bot's turn and its echo
    kept: list[TurnPolicy] = []

    def make() -> TurnPolicy:
        kept.append(TurnPolicy(config))
        return kept[-1]

    simulate(make, bot, near, line, Net(), stop_at_barge_in=False)  # caches, not per call
    kept.clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(args.calls):
        simulate(make, bot, near, line, Net(), stop_at_barge_in=False)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"line {args.line!r}: {total / args.calls / 1024:.1f} kB per TurnPolicy kept")
    for s in stats[: args.top]:
        frame = s.traceback[0]
        where = frame.filename.split("/mediasrv/")[-1].split("site-packages/")[-1]
        print(f"  {s.size_diff / args.calls / 1024:7.1f} kB  {where}:{frame.lineno}")


if __name__ == "__main__":
    main()
