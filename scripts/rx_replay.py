"""Replay a call's rx-loop tape offline and show the echo guard's state frame by frame.

    PYTHONPATH=. .venv/bin/python scripts/rx_replay.py TAPE.npz [--from 9.5 --to 10.5] \
        [--no-cuts]

A tape (scripts/rx_capture.py, mediasrv/testing/rx_tape.py) replays into a fresh turn
policy the way the call's rx loop fed it, deterministically. The policy's log lines (the
echo verdicts, turns) are printed as they come; from `--from` to `--to` (seconds after the
tape's first inbound frame) each inbound frame's line shows the VAD (speech, its own
score), the echo guard's verdict and evidence, whether the canceller is trusted, its delay
(samples), the frames it learned from, its ERLE now / best, the inbound, residual and echo
estimate powers (dBFS), the coherence residual / inbound, the caller ms counted and
needed, and the turn events. `--no-cuts` replays without the cuts a `clear` made.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.policy.turn_types import TurnStep  # noqa: E402
from mediasrv.policy.turns import TurnPolicy  # noqa: E402
from mediasrv.testing.rx_tape import FED, Tape, events_of, fresh_policy, replay  # noqa: E402


def db(power: float) -> float:
    return 10.0 * math.log10(power + 1e-12)


class Clock(logging.Formatter):
    """Log lines stamped with the replay's time."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.now:8.3f} LOG {record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tape", type=Path)
    ap.add_argument("--from", dest="lo", type=float, default=math.inf)
    ap.add_argument("--to", dest="hi", type=float, default=math.inf)
    ap.add_argument("--no-cuts", action="store_true")
    args = ap.parse_args(argv)
    tape = Tape.load(args.tape)
    t0 = next(t for k, t in zip(tape.kind, tape.t, strict=True) if k == FED)
    clock = Clock()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(clock)
    logger = logging.getLogger("mediasrv.replay")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    judged: dict[str, bool] = {}

    def watch(policy: TurnPolicy, kind: int, t: float, step: TurnStep | None) -> None:
        if kind != FED:
            return
        clock.now = t - t0
        if not args.lo <= clock.now <= args.hi:
            return
        e, v, c = policy.echo, policy.vad, policy.echo.canceller
        coh = "-" if e.coherence is None else "{:.2f}/{:.2f}".format(*e.coherence)
        aec = "no canceller" if c is None else (
            f"d={c.delay} learned={c.learned_frames} erle={c.erle_db:4.1f}/"
            f"{c.best_erle_db:4.1f} in={db(c.inbound_power):5.1f} "
            f"res={db(c.residual_power):5.1f} est={db(c.echo_power):5.1f}")
        print(f"{clock.now:8.3f} speech={int(v.is_speech)} p={v.own_probability:.2f} "
              f"caller={judged.get('last', '-')!s:5} ev={e.evidence[:22]:22} "
              f"weak={int(e.weak_evidence)} trusted={int(e.trusted)} {aec} coh={coh} "
              f"caller_ms={policy._caller_ms}/{policy._needed_ms} "
              f"{[name for name, _ in events_of(step, t)]}")

    policy = fresh_policy(tape, logger=logging.LoggerAdapter(logger, {}))
    judge = policy.echo.judge

    def judged_by(*a: Any, **k: Any) -> bool:  # the guard's verdict, for the line above
        judged["last"] = judge(*a, **k)
        return judged["last"]

    policy.echo.judge = judged_by  # type: ignore[method-assign]
    replay(tape, policy, cuts=not args.no_cuts, observe=watch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
