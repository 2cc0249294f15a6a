"""Place one emulated Twilio call against a running mediasrv and report what happened.

    python scripts/fake_call.py [--url http://127.0.0.1:5050] [--no-voice] [--token T]
        [--public-url https://example.ngrok.app] WAV[@seconds] ...
        [--background noise.wav --background-db -20] [--echo-delay-ms 160 --echo-erl-db 10]
        [--duration 20] [--out out/call1] [--plot] [--quiet]

A WAV without @seconds starts 1 s after the previous one ends (the first at 1 s).
Exit status: 0 if the call connected, 2 if it did not.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.sim.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.sim.report import format_timeline, write_outputs  # noqa: E402
from mediasrv.sim.script import CallerScript, EchoPath, Placement, load_8k  # noqa: E402

DEFAULT_GAP_S = 1.0


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
    p.add_argument("wavs", nargs="*", metavar="WAV[@seconds]", help="caller speech")
    p.add_argument("--url", default="http://127.0.0.1:5050", help="server base URL")
    p.add_argument("--no-voice", action="store_true", help="skip POST /voice")
    p.add_argument("--token", help="Twilio auth token: sign webhook and upgrade")
    p.add_argument("--public-url", help="public origin Twilio would use (signatures)")
    p.add_argument("--background", type=Path, help="noise WAV looped under the caller")
    p.add_argument("--background-db", type=float, default=0.0, help="background gain, dB")
    p.add_argument("--echo-delay-ms", type=float, help="mix heard audio back this late")
    p.add_argument("--echo-erl-db", type=float, default=10.0, help="echo return loss, dB")
    p.add_argument("--duration", type=float, help="call length in s (default: speech + 2 s)")
    p.add_argument("--out", type=Path, help="output prefix, e.g. out/call1")
    p.add_argument("--plot", action="store_true", help="also write <out>.png")
    p.add_argument("--quiet", action="store_true", help="no progress line or table")
    return p


def progress_line(call: EmulatedCall) -> str:
    p = call.progress()
    return (
        f"\r{p.elapsed:6.1f} s  sent {p.frames_sent:5d}  recv {p.media_received:5d}"
        f"  marks {p.marks_echoed:3d}  clears {p.clears:2d} "
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    echo = None
    if args.echo_delay_ms is not None:
        echo = EchoPath(delay_ms=args.echo_delay_ms, erl_db=args.echo_erl_db)
    script = CallerScript.build(
        parse_placements(args.wavs),
        duration=args.duration,
        background=args.background,
        background_db=args.background_db,
        echo=echo,
    )
    options = CallOptions(
        post_voice=not args.no_voice, auth_token=args.token, public_url=args.public_url
    )
    call = EmulatedCall(args.url, script, options)
    tty = not args.quiet
    if call.start():
        try:
            while not call.wait(0.2):
                if tty:
                    sys.stderr.write(progress_line(call))
                    sys.stderr.flush()
        except KeyboardInterrupt:
            call.hangup()  # hang up politely: stop, then the report
            call.wait(5.0)
        if tty:
            sys.stderr.write(progress_line(call) + "\n")
    result = call.result()
    if not args.quiet:
        print(format_timeline(result))
    print(json.dumps(result.summary(), indent=2))
    if args.out is not None or args.plot:
        prefix = args.out if args.out is not None else Path("out") / result.call_sid
        for path in write_outputs(result, prefix, plot=args.plot):
            print(f"wrote {path}", file=sys.stderr)
    if not result.connected:
        print(f"fake_call: call failed: {result.error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
