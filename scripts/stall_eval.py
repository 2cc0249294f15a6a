"""Three interruptions on the bad line while the process stalls: false clears under load.

    python scripts/stall_eval.py [--reps 12] [--hog-ms 110] [--every 0.5,2.0] [--parallel 4]
        [-v] [--tapes DIR]

A loaded machine stalls the tx thread for 100-200 ms now and then (the GIL held by
another thread, a GC pass). Each stall longer than the audio queued at Twilio lets its
playout run dry and moves our echo against the canceller's reference. This runs the
three-interruptions scenario (mediasrv/emulator/catalogue.py) in both turn modes, `--reps`
times each, with in-process servers as `scripts/scenarios.py` runs them, while one more
thread holds the GIL in a sort of about `--hog-ms` every `--every` seconds (random,
seeded). A call fails when it does not have exactly three clears for its three
utterances; the canceller's moves per call ("[ECHO] our echo came ... ms") are counted
too. The emulator's own sender stalls with the rest: its `tx_late_max_ms` shows how long
the stalls were. `--tapes DIR` saves each failed call's rx-loop tape (replay it with
scripts/rx_replay.py). Figures: README, issue 9 (28), (30); docs/turn-taking.md, "Stalls
of the tx thread".
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios  # noqa: E402

from mediasrv.emulator import catalogue  # noqa: E402
from mediasrv.testing import harness  # noqa: E402
from mediasrv.testing.rx_tape import save_taped, taping  # noqa: E402

_SORT_ITEMS_PER_MS = 6_500  # sorted() of random floats on this machine (60 ms: 400,000)


class Hog:
    """A thread that holds the GIL for about `ms` every `every` seconds."""

    def __init__(self, ms: float, every: tuple[float, float]) -> None:
        rnd = random.Random(0)
        self._data = [rnd.random() for _ in range(int(ms * _SORT_ITEMS_PER_MS))]
        self._every = every
        self._stop = threading.Event()
        self.stalls = 0
        self._thread = threading.Thread(target=self._run, name="stall-hog", daemon=True)

    def __enter__(self) -> Hog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        rnd = random.Random(1)
        while not self._stop.wait(rnd.uniform(*self._every)):
            if self._data:
                sorted(self._data)
                self.stalls += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=12, help="calls per turn mode")
    ap.add_argument("--hog-ms", type=float, default=110.0, help="each stall, ms (0: none)")
    ap.add_argument("--every", default="0.5,2.0", help="seconds between stalls, min,max")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print a failed call's echo verdicts, barge-ins and responses")
    ap.add_argument("--tapes", type=Path,
                    help="save failed calls' rx-loop tapes here (scripts/rx_replay.py)")
    args = ap.parse_args()
    lo, hi = (float(x) for x in args.every.split(","))
    run = argparse.Namespace(parallel=args.parallel, url=None, audio_dir=scenarios.AUDIO_DIR,
                             verbose=False)
    scenario = catalogue.three_interruptions()
    jobs = [(scenario, mode) for _ in range(args.reps) for mode in scenario.modes]
    started = time.monotonic()
    taped = taping() if args.tapes is not None else contextlib.nullcontext({})
    with Hog(args.hog_ms, (lo, hi)) as hog, taped as tapes:
        outcomes = scenarios.run_jobs(jobs, run)
    judged = [judge(o, args.verbose) for o in outcomes]
    if args.tapes is not None:
        for k, (o, (ok, _)) in enumerate(zip(outcomes, judged, strict=True)):
            path = None if ok else save_taped(tapes, o.result.call_sid, args.tapes,
                                              f"{o.scenario.name}_{o.mode}_{k}")
            if path is not None:
                print(f"tape: {path}")
    n = len(judged)
    print(f"{sum(not ok for ok, _ in judged)} of {n} calls failed; "
          f"{sum(m for _, m in judged) / max(n, 1):.1f} moves a call; "
          f"{hog.stalls} stalls of ~{args.hog_ms:g} ms every {lo:g}-{hi:g} s; "
          f"{time.monotonic() - started:.0f} s")


def judge(o: harness.Outcome, verbose: bool) -> tuple[bool, int]:
    """Print one call's line; return whether it passed and how often the canceller moved."""
    clears = len(o.result.clears)
    moved = o.count("our echo came")
    ok = clears == 3 and len(o.speech_times()) == 3
    print(f"{o.mode:6} clears {clears} emulator late {o.result.tx_late_max_ms:6.1f} ms "
          f"moves {moved}{'' if ok else '  FAILED'}")
    if verbose and not ok:
        t0 = o.lines[0].mono if o.lines else 0.0
        for line in o.lines:
            if any(k in line.message for k in ("[ECHO]", "[BARGE-IN]", "response resp_")):
                print(f"    {line.mono - t0:7.3f} {line.message.split('] ', 1)[-1]}")
    return ok, moved

if __name__ == "__main__":
    main()
