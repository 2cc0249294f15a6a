"""Helpers of the hardening tests: the real app on loopback, a raw Twilio-side socket.

`live_server` runs `create_app` under werkzeug's threaded server with a connector to a
LocalBackend the test owns (so no process-wide backend is left running). `RawTwilio`
is a bare websocket-client connection that can send anything, well-formed or not.
"""

from __future__ import annotations

import json
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import websocket
from flask import Flask
from timing import bound
from werkzeug.serving import make_server

from mediasrv.backends.realtime.client import Connector, ws_connector
from mediasrv.localbackend import BackendOptions, LocalBackend
from mediasrv.web.app import create_app
from mediasrv.web.metrics import Metrics
from mediasrv.web.settings import Settings, load_settings

BOUND = bound(5.0)  # bound on every wait in these tests


def settings(**overrides: Any) -> Settings:
    # Pre-warm off: these tests post /voice without a stream, and a session opened for it
    # would outlive the test (pre-warm has tests of its own: test_prewarm*.py).
    base: dict[str, Any] = {"greeting": "", "silence_timeout_s": 3600.0,
                            "openai_connect_timeout_s": 1.0, "prewarm_timeout_s": 0.0}
    return load_settings({}, **{**base, **overrides})


@dataclass
class Live:
    base: str
    app: Flask
    metrics: Metrics

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/media"

    def registry(self) -> Any:
        return self.app.extensions["mediasrv"]["registry"]

    def active(self) -> int:
        return len(self.registry().active())

    def wait_active(self, n: int, bound: float = BOUND) -> None:
        wait_for(lambda: self.active() == n, f"{n} active calls", bound)

    def hang_up_the_call(self, reason: str = "test: the server hangs up") -> None:
        """End the one active call from the server side, once it has started.

        Registered is not started: a call is in the registry before its `start` gave it
        a call sid, and ending it then is a stream that never became a call.
        """
        self.wait_active(1)
        wait_for(lambda: bool(self.registry().active()[0].call_sid), "call started")
        self.registry().active()[0].end(reason)


def wait_for(pred: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not pred():
        assert time.monotonic() < deadline, f"not within {bound} s: {what}"
        time.sleep(0.02)


def wait_logged(caplog: Any, text: str, bound: float = BOUND) -> None:
    """Wait until `text` appears in the captured log lines."""
    wait_for(lambda: text in caplog.text, f"never logged: {text}", bound)


@contextmanager
def backend(**options: Any) -> Iterator[LocalBackend]:
    b = LocalBackend(BackendOptions(**options)).start()
    try:
        yield b
    finally:
        b.stop()


@contextmanager
def live_server(s: Settings, connect: Connector | None, **kwargs: Any) -> Iterator[Live]:
    metrics = kwargs.pop("metrics", None) or Metrics()
    app = create_app(s, connect_realtime=connect, metrics=metrics, **kwargs)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-http")
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}", app, metrics)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def connector(b: LocalBackend, timeout_s: float = 1.0) -> Connector:
    return ws_connector(b.url, "", timeout_s)


def start_doc(call_sid: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    return {"event": "start", "sequenceNumber": "1", "streamSid": "MZ" + call_sid[2:],
            "start": {"streamSid": "MZ" + call_sid[2:], "accountSid": "AC1", "callSid": call_sid,
                      "tracks": ["inbound"], "customParameters": params or {},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}}


def media_doc(call_sid: str, n: int, payload: bytes = b"\xff" * 160) -> dict[str, Any]:
    return {"event": "media", "sequenceNumber": str(n + 1), "streamSid": "MZ" + call_sid[2:],
            "media": {"track": "inbound", "chunk": str(n), "timestamp": str(20 * (n - 1)),
                      "payload": b64encode(payload).decode()}}


class RawTwilio:
    """The Twilio side of a stream, byte for byte under the test's control."""

    def __init__(self, url: str, call_sid: str = "CA" + "1" * 32,
                 headers: list[str] | None = None) -> None:
        self.call_sid = call_sid
        self.ws = websocket.create_connection(url, timeout=BOUND, header=headers or [],
                                              skip_utf8_validation=True)
        self._n = 0

    def send(self, doc: dict[str, Any]) -> None:
        self.ws.send(json.dumps(doc))

    def start(self, params: dict[str, str] | None = None) -> RawTwilio:
        self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.send(start_doc(self.call_sid, params))
        return self

    def media(self, frames: int = 1) -> None:
        for _ in range(frames):
            self._n += 1
            self.send(media_doc(self.call_sid, self._n))

    def stop(self) -> None:
        self.send({"event": "stop", "sequenceNumber": "999", "streamSid": "MZ",
                   "stop": {"callSid": self.call_sid}})

    def drop(self) -> None:
        """Vanish without a close frame (the network failed)."""
        self.ws.sock.shutdown(2)
        self.ws.sock.close()

    def wait_closed(self, bound: float = BOUND) -> None:
        """Read until the server closes the socket."""
        deadline = time.monotonic() + bound
        self.ws.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                op, _ = self.ws.recv_data(control_frame=False)
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, OSError):
                return
            if op == websocket.ABNF.OPCODE_CLOSE:
                return
        raise AssertionError(f"server did not close the socket within {bound} s")

    def close(self) -> None:
        try:
            self.ws.close(timeout=0.5)
        except (websocket.WebSocketException, OSError):
            pass  # the server closed first
        finally:
            self.ws.shutdown()


def call_threads(call_sid: str) -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith("mediasrv-") and call_sid[-8:] in t.name]
