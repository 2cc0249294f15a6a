"""The cascade pipeline's own added latency, end to end (issue 12), p50/p99.

    python scripts/cascade_latency.py [--calls 4] [--rounds 3] [--json out.json]

Each round places --calls emulated calls at once against the real app with
AGENT_BACKEND=cascade (the local stand-ins in-process, canned transcripts), each caller
saying three sentences after the AI has finished. Per answer, what the pipeline itself
adds between the services (their own times -- Deepgram finalizing, the model's first
token, the voice's first audio -- are the stand-ins' and left out):

- final transcript -> chat request sent: from the Deepgram message that completed the
  turn (or the call's request, if later) to the request written to the chat socket;
- first token -> first text to TTS: the chunker waits for a word boundary (the next
  token), then the dispatcher sends;
- first TTS audio -> first frame to Twilio: the audio message read by the ElevenLabs
  reader to its first frame read by the emulator from the server's socket (the
  dispatcher, the call's playout buffer, the tx thread and its 60 ms prebuffer).

This is a benchmark: it needs a quiet machine, and prints the load it had.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.emulator import catalogue as sc  # noqa: E402
from mediasrv.emulator.scenarios import Clip, Scenario  # noqa: E402
from mediasrv.testing.cascade import Job, place  # noqa: E402

FIGURES = ("transcript_to_chat_sent_ms", "first_token_to_tts_text_ms",
           "tts_audio_to_first_frame_ms")
NAMES = {"transcript_to_chat_sent_ms": "final transcript -> chat request sent",
         "first_token_to_tts_text_ms": "first token -> first text to TTS",
         "tts_audio_to_first_frame_ms": "first TTS audio -> first frame to Twilio"}
SCENARIO = Scenario("three_turns", "three sentences, each after the AI finished",
                    clips=(Clip(sc.CALLER, 4.0), Clip(sc.HELLO, 12.0),
                           Clip(sc.ONLY_PERSON, 18.0)), duration=26.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=4, help="calls at once per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)
    load = [os.getloadavg()[0]]
    rows: list[dict[str, float]] = []
    for n in range(args.rounds):
        outcomes = place([Job(SCENARIO) for _ in range(args.calls)])
        for r in outcomes:
            rows += r.pipeline()
        load.append(os.getloadavg()[0])
        print(f"round {n + 1}: {len(rows)} answers so far, load {load[-1]:.2f}", file=sys.stderr)
    print(f"{len(rows)} answers, {args.calls} calls at once x {args.rounds} rounds, "
          f"{os.cpu_count()} cores, load average (1 min) {min(load):.2f}-{max(load):.2f}\n")
    print("| added by the pipeline | p50 ms | p99 ms | n |\n|---|---|---|---|")
    for key in FIGURES:
        v = [r[key] for r in rows if key in r]
        if v:
            print(f"| {NAMES[key]} | {np.percentile(v, 50):.1f} | {np.percentile(v, 99):.1f} "
                  f"| {len(v)} |")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
