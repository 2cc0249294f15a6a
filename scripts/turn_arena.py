"""The end-of-turn model's memory arena: what one process holds after checks, and their CPU.

    PYTHONPATH=. .venv/bin/python scripts/turn_arena.py default|shrink [--trim]

`default` is how mediasrv runs the model (`turn_model.load_session`'s options, the arena
kept between checks); `shrink` asks onnxruntime to give the arena back after each run
(run option `memory.enable_memory_arena_shrinkage`), and `--trim` calls glibc's
`malloc_trim(0)` after each check so the freed pages leave the process. Prints RSS added by
loading, RSS held after 12 checks of a 3 s utterance (median, max) and the CPU per check
(thread time, p50). One mode per process: run them alternately (docs/performance.md).
"""

from __future__ import annotations

import argparse
import ctypes
import time

import numpy as np
import onnxruntime as ort

from mediasrv.models.melspec import log_mel
from mediasrv.models.resample import upsample_8k_to_16k
from mediasrv.models.turn_model import load_session


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["default", "shrink"])
    p.add_argument("--trim", action="store_true", help="malloc_trim(0) after each check")
    p.add_argument("--checks", type=int, default=12)
    args = p.parse_args()
    run_options = None
    if args.mode == "shrink":
        run_options = ort.RunOptions()
        run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    libc = ctypes.CDLL("libc.so.6") if args.trim else None
    before = rss_mb()
    session = load_session()  # mediasrv's own options (no warm-up run: that is a check)
    loaded = rss_mb()
    speech = np.random.default_rng(1).standard_normal(8000 * 3).astype(np.float32) * 0.1
    features = log_mel(upsample_8k_to_16k(speech))[np.newaxis]
    cpu, held = [], []
    for _ in range(args.checks + 1):  # the first grows the arena: not counted
        start = time.thread_time()
        session.run(None, {"input_features": features}, run_options)
        cpu.append((time.thread_time() - start) * 1000)
        if libc is not None:
            libc.malloc_trim(0)
        held.append(rss_mb() - loaded)
    print(f"{args.mode}{' + trim' if args.trim else ''}: load +{loaded - before:.1f} MB, "
          f"held after checks +{np.median(held[1:]):.1f} MB (max {max(held):.1f}), CPU per "
          f"check p50 {np.median(cpu[1:]):.1f} ms (first {cpu[0]:.1f})")


if __name__ == "__main__":
    main()
