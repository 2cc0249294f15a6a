"""Echo alone through a room's long tail, frame by frame: the paths, prompts and one run.

Layer: testing. No server, no threads, like `mediasrv.testing.frames`. Issue 9 specifies
dispersive tails of "a few ms to 30 ms"; a speakerphone in a reverberant room (an office's
RT60 is 0.3-0.6 s) with no echo control of its own rings for hundreds of ms, longer than
the canceller's 128 ms filter (mediasrv/policy/aec.py `_TAPS`). Beyond the spec, but a
real line, and an echo that barges in is the worst failure: the bot cuts itself off and
answers its own voice.

Echo alone (nobody on the line), each prompt through `EchoPath(160 ms, ERL, tail)` (the
emulator's seeded noise decaying 40 dB over the tail, mediasrv/emulator/line.py), at two
transits; scripts/bargein_eval.py's `tails` section prints barge-ins / starts / turns per
tail length. Cases that fail stay in and are reported as they are (at b510b1d: from 250
ms on, on the cold start's "not our echo": the 32 ms coherence segments cannot follow a
response that long, 0.1-0.3).
"""

from __future__ import annotations

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import EchoPath
from mediasrv.testing.frames import MakePolicy, Net, Run, prompt, simulate
from mediasrv.testing.moves import espeak_prompt

TAILS_MS = (200.0, 250.0, 300.0, 400.0)
TAIL_ERLS_DB = (10.0, 20.0, 30.0)
TAIL_NETS = (Net(), Net(80.0, 35.0))
TAIL_DELAY_MS = 160.0  # the bad line's bulk delay
TAIL_AFTER_S = 2.0  # each run goes on this long after the prompt (the tail and the window)


def tail_prompts() -> dict[str, bytes]:
    """Return the section's prompts: three the backend plays and tests/test_echo.py's."""
    return {"long_answer": prompt("long_answer"), "apology": prompt("apology"),
            "espeak": espeak_prompt(), "greeting": prompt("greeting")}


def tail_run(make: MakePolicy, bot: bytes, tail_ms: float, erl_db: float, net: Net) -> Run:
    """Play `bot` with nobody on the line, its echo through a room's `tail_ms` tail."""
    line = cat.line_of(EchoPath(TAIL_DELAY_MS, erl_db, tail_ms))
    near = np.zeros(len(bot) + int(TAIL_AFTER_S * 8000))
    return simulate(make, bot, near, line, net, stop_at_barge_in=False)
