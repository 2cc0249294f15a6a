"""Record end-to-end calls' rx loops on tape, to take a failure apart offline.

    PYTHONPATH=. .venv/bin/python scripts/rx_capture.py three_interruptions_0 --mode local \
        --reps 8 --out /tmp/tapes [--all]
    PYTHONPATH=. .venv/bin/python scripts/rx_capture.py --cell -20:"bad line":2 --mode local

Runs the scenario (a name from `scripts/scenarios.py --list`, or a barge-in cell
GAIN:LINE:RUN of issue 9's table) `--reps` times, four calls at a time, with in-process
servers whose rx loops write tapes (mediasrv/testing/rx_tape.py). Prints each call's
clears, the caller's onsets and the server's echo verdicts; saves the tapes of the calls
that failed (`--all`: of every call) as OUT/NAME_MODE_K.npz. A call fails when it has a
clear before the caller's first onset, or not one clear per utterance (the
three-interruptions and barge-in scenarios' shape). Replay one with scripts/rx_replay.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios  # noqa: E402

from mediasrv.emulator import catalogue  # noqa: E402
from mediasrv.emulator.scenarios import Scenario  # noqa: E402
from mediasrv.testing.harness import Outcome  # noqa: E402
from mediasrv.testing.rx_tape import save_taped, taping  # noqa: E402


def scenario_of(args: argparse.Namespace) -> Scenario:
    if args.cell:
        gain, line, run = args.cell.split(":")
        return catalogue.barge_in(float(gain), line, int(run))
    found = catalogue.catalogue().get(args.name)
    if found is None:
        raise SystemExit(f"rx_capture: unknown scenario {args.name!r}; see scenarios.py --list")
    return found


def failed(o: Outcome) -> bool:
    onsets = [onset for onset, _ in o.speech_times()]
    clears = [o.result.clear_sent_at(i) for i in range(len(o.result.clears))]
    early = bool(onsets and clears and clears[0] < onsets[0])
    return early or len(clears) != len(onsets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", nargs="?", help="a scenario name (scenarios.py --list)")
    ap.add_argument("--cell", help="an issue 9 barge-in cell: GAIN:LINE:RUN")
    ap.add_argument("--mode", default="local", help="turn mode")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("tapes"))
    ap.add_argument("--all", action="store_true", help="save every call's tape")
    args = ap.parse_args(argv)
    if not args.name and not args.cell:
        ap.error("a scenario name or --cell")
    scenario = scenario_of(args)
    run = argparse.Namespace(parallel=min(4, args.reps), url=None,
                             audio_dir=scenarios.AUDIO_DIR, verbose=False)
    with taping() as tapes:
        outcomes = scenarios.run_jobs([(scenario, args.mode)] * args.reps, run)
    bad = 0
    for k, o in enumerate(outcomes):
        r, is_bad = o.result, failed(o)
        bad += is_bad
        t0 = r.media_t0
        print(f"call {k}: onsets {[round(float(a - t0), 3) for a, _ in o.speech_times()]} clears "
              f"{[round(r.clear_sent_at(i) - t0, 3) for i in range(len(r.clears))]} s"
              f"{'  FAILED' if is_bad else ''}")
        for line in o.lines:
            if "[ECHO]" in line.message or "[BARGE-IN]" in line.message:
                print(f"    {line.message.split('] ', 1)[-1][:150]}")
        path = (save_taped(tapes, r.call_sid, args.out, f"{scenario.name}_{args.mode}_{k}")
                if is_bad or args.all else None)
        if path is not None:
            print(f"    tape: {path} ({len(tapes[r.call_sid].kind)} events)")
    print(f"{bad} of {len(outcomes)} calls failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
