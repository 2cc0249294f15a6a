"""Run one stand-in as its own process (for benchmarks, so its CPU is not mediasrv's).

Layer: stand-ins.

    python -m mediasrv.localservices deepgram --port 8101 --recognizer canned
    python -m mediasrv.localservices chat --port 8102 --ttft 0.3 --tokens-per-s 40
    python -m mediasrv.localservices elevenlabs --port 8103

Prints one line with the URL and the key to use, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from .chat import ChatOptions, LocalChat
from .chat_stream import Pace
from .common import FAULT_KINDS, Fault
from .deepgram import DeepgramOptions, LocalDeepgram
from .elevenlabs import ElevenLabsOptions, LocalElevenLabs


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, start the stand-in, block until a signal stops it."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fault = Fault(args.fault, args.fault_after, args.fault_status) if args.fault else None
    standin: Any
    if args.service == "deepgram":
        standin = LocalDeepgram(DeepgramOptions(recognizer=args.recognizer, fault=fault))
        standin.start(args.host, args.port)
        where = standin.url
    elif args.service == "chat":
        standin = LocalChat(ChatOptions(pace=Pace(args.ttft, args.tokens_per_s), fault=fault))
        standin.start(args.host, args.port)
        where = standin.base_url
    else:
        standin = LocalElevenLabs(ElevenLabsOptions(fault=fault))
        standin.start(args.host, args.port)
        where = standin.base_url
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"{args.service} stand-in: {where} key={standin.api_key}", flush=True)
    stop.wait()
    standin.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mediasrv.localservices",
                                     description="Run a local stand-in of a cascade service.")
    parser.add_argument("service", choices=("deepgram", "chat", "elevenlabs"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--recognizer", choices=("pocketsphinx", "canned"),
                        default="pocketsphinx", help="deepgram: how transcripts are made")
    parser.add_argument("--ttft", type=float, default=0.2, help="chat: time to first token, s")
    parser.add_argument("--tokens-per-s", type=float, default=50.0, help="chat: token rate")
    parser.add_argument("--fault", choices=sorted(FAULT_KINDS))
    parser.add_argument("--fault-after", type=int, default=3)
    parser.add_argument("--fault-status", type=int, default=503)
    parser.add_argument("--log-level", default="info")
    return parser


if __name__ == "__main__":
    main()
