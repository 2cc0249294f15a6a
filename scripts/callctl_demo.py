"""Watch each call-control feature work, offline: one call per feature, its story printed.

    PYTHONPATH=. .venv/bin/python scripts/callctl_demo.py [FEATURE ...]
        features: prewarm end_call transfer webhook keypad dtmf_barge_in
                  outbound_human outbound_machine, and through the cascade
                  cascade_end_call cascade_transfer cascade_webhook cascade_keypad
                  (default: all, at once)

Each call runs in its own offline Twilio (the REST stand-in, the Twilio emulator as its
media party, the real server with the REST API on) against the built-in backend, whose
tool plan makes the model call the feature's tool; the calls are those of
tests/test_e2e_callctl.py (mediasrv/testing/callctl.py). For each: the call turn by turn
as the phone had it, then the server's call-control log lines and what the REST
stand-in was asked. Recordings (end_call) go to a temporary folder, named in the output.
The cascade_* calls run with AGENT_BACKEND=cascade and its stand-ins
(mediasrv/testing/cascade_callctl.py); for them, also the last chat request's last
message.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import call as call_script  # noqa: E402  (scripts/call.py)

from mediasrv.emulator.report import format_summary  # noqa: E402
from mediasrv.testing.callctl import Done, call_jobs, run_calls  # noqa: E402
from mediasrv.testing.cascade_callctl import cascade_jobs  # noqa: E402
from mediasrv.testing.harness import BackendPool, LogCapture  # noqa: E402
from mediasrv.web.settings import Settings  # noqa: E402

MARKERS = ("[PREWARM]", "[TOOL]", "[END_CALL]", "[TRANSFER]", "[REST]", "[KEYPAD]", "[AMD]",
           "[BARGE-IN]", "[DEAD_AIR]", "[REC]", "created (", "call completed", "call ended",
           "[TRANSCRIPT]")


def place(settings: Settings, to: str, from_: str, amd: bool) -> str:
    args = [to, "--from", from_] + (["--amd"] if amd else [])
    return str(call_script.place(call_script.parse_args(args), settings))


def story(name: str, done: Done) -> str:
    t0 = done.lines[0].mono if done.lines else 0.0
    lines = [f"== {name} " + "=" * (70 - len(name)), format_summary(done.result), "server:"]
    lines += [f"  {x.mono - t0:6.2f} s  {x.message.split('] ', 1)[-1]}" for x in done.lines
              if any(m in x.message for m in MARKERS)]
    if done.requests:
        lines.append("REST requests the server made: " + ", ".join(
            f"{r['operation']}({', '.join(sorted(r['form']))})" for r in done.requests))
    asked = [f"{what} {detail}".strip() for what, detail in done.party
             if what not in ("inbound", "stream", "ended")]
    if asked:
        lines.append("the REST stand-in asked the media party: " + "; ".join(asked))
    if done.extra.get("chat"):
        lines.append(f"the last chat request ended: {done.extra['chat'][-1]['messages'][-1]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("features", nargs="*")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder, BackendPool() as backends, \
            LogCapture() as logs:
        jobs = {**call_jobs(backends, Path(folder), place), **cascade_jobs(backends)}
        unknown = set(args.features) - set(jobs)
        if unknown:
            raise SystemExit(f"unknown features {sorted(unknown)}; known: {sorted(jobs)}")
        for name, done in run_calls(jobs, logs, args.features or None).items():
            print(story(name, done), end="\n\n")


if __name__ == "__main__":
    main()
