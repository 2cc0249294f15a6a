"""Place an outbound call through the Twilio REST API that runs this server's /voice.

    python scripts/call.py +15551234567 [--from +15550001111] [--amd]

Reads the server's own settings from the environment (README "Configuration"):
TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the REST API), PUBLIC_URL (where Twilio
fetches /voice and posts the AMD result), TWILIO_CALLER_ID (the default --from: a
number of your Twilio account), TWILIO_API_BASE_URL (to place it at the offline
stand-in instead). With --amd, Twilio runs answering-machine detection
(MachineDetection=DetectMessageEnd, asynchronous): the agent starts at once, and when
the result comes to POST /amd a machine gets VOICEMAIL_MESSAGE after the beep, then a
hang-up. Prints the call sid; exit status 0 when the call was placed, 2 when not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.callctl.tools_file import E164  # noqa: E402
from mediasrv.errors import ConfigError  # noqa: E402
from mediasrv.web.rest import place_call  # noqa: E402
from mediasrv.web.settings import Settings, load_settings  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("to", help="the number to call, E.164 (+15551234567)")
    parser.add_argument("--from", dest="from_", default="",
                        help="the caller ID: a number of your Twilio account "
                             "(default: TWILIO_CALLER_ID)")
    parser.add_argument("--amd", action="store_true",
                        help="answering-machine detection: a machine gets the voicemail")
    return parser.parse_args(argv)


def problems(settings: Settings, to: str, from_: str) -> list[str]:
    """Say what stops the call from being placed (nothing: an empty list)."""
    out = []
    if not settings.twilio_account_sid or not settings.twilio_auth_token:
        out.append("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set (the REST API)")
    if not settings.public_url:
        out.append("PUBLIC_URL must be set: Twilio fetches <PUBLIC_URL>/voice for the call")
    if not E164.match(to):
        out.append(f"{to!r} is not an E.164 number like +15551234567")
    if not from_:
        out.append("no caller ID: give --from or set TWILIO_CALLER_ID")
    elif not E164.match(from_):
        out.append(f"--from {from_!r} is not an E.164 number")
    return out


class CannotCall(Exception):
    """The call was not placed; the message says why, in words."""


def place(args: argparse.Namespace, settings: Settings) -> str:
    """Place the call the arguments describe; return its sid (CannotCall if not)."""
    from_ = args.from_ or settings.twilio_caller_id
    wrong = problems(settings, args.to, from_)
    if wrong:
        raise CannotCall("; ".join(wrong))
    try:
        return place_call(settings, args.to, from_, amd=args.amd)
    except Exception as exc:  # the REST library's errors: say which, without secrets
        raise CannotCall(f"the REST API refused the call: {exc.__class__.__name__}: "
                         f"{getattr(exc, 'msg', '') or exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
        sid = place(args, settings)
    except (ConfigError, CannotCall) as exc:
        print(f"call.py: {exc}", file=sys.stderr)
        return 2
    api = settings.twilio_api_base_url or "https://api.twilio.com"
    print(f"{sid}: calling {args.to} from {args.from_ or settings.twilio_caller_id} through "
          f"{api}" + (" (answering-machine detection on: the result goes to /amd)"
                      if args.amd else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
