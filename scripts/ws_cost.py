"""CPU per inbound Twilio frame of the rx path's parsing: WebSocket frame, then message.

    PYTHONPATH=. .venv/bin/python scripts/ws_cost.py [rounds]

No socket, one thread: 20,000 masked media frames as Twilio sends them (a ~400-byte
JSON text each, one frame per 4 kB read), parsed by wsproto (what simple-websocket runs,
without its event handling), by `PlainFrames`, and then as a Twilio message by
`parse_twilio`. Alternated, `rounds` times (default 3); process CPU per frame.
"""

from __future__ import annotations

import json
import os
import sys
import time
from base64 import b64encode
from collections.abc import Callable

from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from mediasrv.protocol.twilio import parse_twilio
from mediasrv.web.ws_frames import PlainFrames

FRAMES = 20_000


def media_text(seq: int) -> str:
    return json.dumps({
        "event": "media", "sequenceNumber": str(seq), "streamSid": "MZ" + "0" * 32,
        "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(20 * seq),
                  "payload": b64encode(os.urandom(160)).decode("ascii")},
    })


def wsproto_parse(frames: list[bytes]) -> int:
    server = Connection(ConnectionType.SERVER)
    n = 0
    for frame in frames:
        server.receive_data(frame)
        n += sum(1 for _ in server.events())
    return n


def plain_parse(frames: list[bytes]) -> int:
    parser = PlainFrames(65536)
    n = 0
    for frame in frames:
        messages, _ = parser.feed(frame)
        n += len(messages)
    return n


def twilio_parse(texts: list[str]) -> int:
    for text in texts:
        parse_twilio(text, 65536)
    return len(texts)


def per_frame_us(fn: Callable[[], int]) -> float:
    t0 = time.process_time()
    n = fn()
    return 1e6 * (time.process_time() - t0) / n


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 3
    texts = [media_text(i) for i in range(FRAMES)]
    client = Connection(ConnectionType.CLIENT)
    frames = [client.send(TextMessage(data=t)) for t in texts]
    for r in range(rounds):
        ws = per_frame_us(lambda: wsproto_parse(frames))
        plain = per_frame_us(lambda: plain_parse(frames))
        msg = per_frame_us(lambda: twilio_parse(texts))
        print(f"round {r + 1}: wsproto {ws:5.1f} us, PlainFrames {plain:5.1f} us, "
              f"parse_twilio {msg:5.1f} us a frame")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
