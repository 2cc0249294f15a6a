"""Place one emulated Twilio call against a running mediasrv and say what happened.

    python scripts/fake_call.py [WAV[@seconds] ...] [--url http://127.0.0.1:5050]
        [--duration S] [--out out/call1] [--plot] [--verbose] [--json]
        [--background noise.wav --background-db -20] [--echo-delay-ms 160 --echo-erl-db 10]
        [--no-voice] [--token T --public-url https://example.ngrok.app] [--quiet]

Prints one line per turn (who, when, how much was heard, cut off or not), the barge-ins
and the hang-up. Without --duration the caller stays on the line until the last answer
has been heard, then hangs up. A WAV without @seconds starts 1 s after the previous one
ends (the first at 1 s). Exit status: 0 if the call connected, 2 if it did not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.emulator.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.emulator.metrics import CallResult  # noqa: E402
from mediasrv.emulator.report import format_summary, format_timeline, write_outputs  # noqa: E402
from mediasrv.emulator.script import CallerScript, EchoPath, Placement, load_8k  # noqa: E402

DEFAULT_GAP_S = 1.0
# Without --duration: the caller hangs up once the AI has been quiet this long after the
# caller's last words were answered (end-of-turn silence + answer latency are well below).
QUIET_S = 2.0
NO_ANSWER_S = 15.0  # ... or this long after those words with no answer at all
MAX_S = 600.0  # and never stays longer than this
OUTPUTS = {
    "heard.wav": "what the caller heard (AI audio as played, silence elsewhere)",
    "stereo.wav": "the call as the handset had it: caller left, AI right",
    "timeline.txt": "this summary, then every event: media runs, marks, clears",
    "json": "all the figures (the --json output)",
    "png": "both waveforms on call time with turns, clears and the hang-up",
}


def parse_placements(specs: list[str]) -> list[Placement]:
    """Turn WAV[@seconds] arguments into placements (unplaced ones follow the previous)."""
    out: list[Placement] = []
    next_at = DEFAULT_GAP_S
    for spec in specs:
        path, sep, at_text = spec.rpartition("@")
        if not sep:
            path, at = spec, next_at
        else:
            try:
                at = float(at_text)
            except ValueError:
                path, at = spec, next_at
        if not Path(path).is_file():
            raise SystemExit(f"fake_call: no such file: {path}")
        out.append(Placement(Path(path), at))
        next_at = at + load_8k(path).size / 8000 + DEFAULT_GAP_S
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("wavs", nargs="*", metavar="WAV[@seconds]",
                   help="what the caller says, and when (default: nothing, just listen)")
    p.add_argument("--url", default="http://127.0.0.1:5050",
                   help="server base URL (default: %(default)s)")
    p.add_argument("--duration", type=float, metavar="S",
                   help="call length in s (default: until the last answer has been heard)")
    p.add_argument("--out", type=Path, metavar="PREFIX", help="write PREFIX.heard.wav, "
                   ".stereo.wav, .timeline.txt, .json (default: no files; with --plot, "
                   "out/<call sid>)")
    p.add_argument("--plot", action="store_true",
                   help="also write PREFIX.png (default: off; needs requirements-dev.txt)")
    p.add_argument("--verbose", action="store_true",
                   help="also print every event: media runs, marks, clears (default: off)")
    p.add_argument("--json", action="store_true",
                   help="print all the figures as JSON instead of the summary (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress line (default: off)")
    p.add_argument("--background", type=Path,
                   help="noise WAV looped under the caller (default: none)")
    p.add_argument("--background-db", type=float, default=0.0,
                   help="background gain in dB (default: %(default)s)")
    p.add_argument("--echo-delay-ms", type=float,
                   help="mix what the caller hears back into the microphone this late "
                        "(default: no echo)")
    p.add_argument("--echo-erl-db", type=float, default=10.0,
                   help="echo return loss in dB (default: %(default)s)")
    p.add_argument("--no-voice", action="store_true",
                   help="skip POST /voice, open the stream directly (default: off)")
    p.add_argument("--token", help="Twilio auth token: sign the webhook and the upgrade "
                   "(default: unsigned)")
    p.add_argument("--public-url", help="public origin Twilio would use, for signatures "
                   "(default: --url)")
    return p


def progress_line(call: EmulatedCall) -> str:
    p = call.progress()
    return (f"\r{p.elapsed:6.1f} s  sent {p.frames_sent:5d} frames  heard {p.media_received:5d}"
            f"  clears {p.clears:2d} ")


class HangUpWhenAnswered:
    """Decide when a caller without --duration hangs up. Pure: time comes in as `now`.

    The caller waits past its last words (`said_until`, call time) for AI audio, then
    hangs up once that audio has stopped for QUIET_S: the answer has been heard.
    """

    def __init__(self, said_until: float) -> None:
        self.said_until = said_until
        self._media = 0
        self._answer_at: float | None = None  # AI audio after the caller's last words
        self._last_media_at = 0.0

    def step(self, now: float, media_received: int) -> bool:
        """Return True when the caller should hang up now."""
        if media_received != self._media:
            self._media = media_received
            self._last_media_at = now
            if now > self.said_until and self._answer_at is None:
                self._answer_at = now
        if now < self.said_until:
            return False
        if self._answer_at is None:
            return now - self.said_until >= NO_ANSWER_S
        return now - self._last_media_at >= QUIET_S


def run(call: EmulatedCall, until: HangUpWhenAnswered | None, tty: bool) -> None:
    """Run the call to its end, hanging up as `until` says; draw progress on a tty."""
    if not call.start():
        return
    try:
        while not call.wait(0.2):
            p = call.progress()
            if until is not None and until.step(p.elapsed, p.media_received):
                call.hangup()
                until = None
            if tty:
                sys.stderr.write(progress_line(call))
                sys.stderr.flush()
    except KeyboardInterrupt:
        call.hangup()  # hang up politely: stop, then the report
        call.wait(5.0)
    if tty:
        sys.stderr.write(progress_line(call) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("fake_call: --plot needs matplotlib, a development tool: "
                         ".venv/bin/pip install -r requirements-dev.txt")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    echo = None
    if args.echo_delay_ms is not None:
        echo = EchoPath(delay_ms=args.echo_delay_ms, erl_db=args.echo_erl_db)
    placements = parse_placements(args.wavs)
    said_until = max((p.at + load_8k(p.path).size / 8000 for p in placements), default=0.0)
    script = CallerScript.build(
        placements,
        duration=args.duration if args.duration is not None else MAX_S,
        background=args.background,
        background_db=args.background_db,
        echo=echo,
    )
    options = CallOptions(
        post_voice=not args.no_voice, auth_token=args.token, public_url=args.public_url
    )
    call = EmulatedCall(args.url, script, options)
    until = None if args.duration is not None else HangUpWhenAnswered(said_until + 0.5)
    started = time.monotonic()
    run(call, until, tty=not args.quiet and sys.stderr.isatty())
    result = call.result()
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(format_summary(result))
        if args.verbose:
            print("\n" + format_timeline(result))
    sys.stdout.flush()  # the summary before the file list on a shared terminal
    if args.out is not None or args.plot:
        write(result, args.out if args.out is not None else Path("out") / result.call_sid,
              args.plot)
    if not result.connected:
        print(f"fake_call: call failed after {time.monotonic() - started:.1f} s: "
              f"{result.error} (is the server running at {args.url}?)", file=sys.stderr)
        return 2
    return 0


def write(result: CallResult, prefix: Path, plot: bool) -> None:
    for path in write_outputs(result, prefix, plot=plot):
        what = next((v for k, v in OUTPUTS.items() if path.name.endswith(k)), "")
        print(f"wrote {path}: {what}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
