"""The local OpenAI chat stand-in: `POST /v1/chat/completions` (SSE) on loopback HTTP.

Layer: stand-ins.

    with LocalChat(ChatOptions(ttft_s=0.1)).start() as chat:
        chat.base_url   # http://127.0.0.1:<port>/v1  (what OPENAI_BASE_URL would hold)
        chat.api_key    # what to send as `Authorization: Bearer <key>`

Also `GET /v1/models` and `GET /v1/models/{id}` (the cheap credentials check).
Threads: "mediasrv-chat-accept" (the stdlib server loop) and one "mediasrv-chat-conn-N"
per connection (HTTP/1.1 keep-alive). A stream is paced by the pure `ChatStream`: the
handler sleeps on the injected clock until its next event is due, and writes each SSE
event as one HTTP chunk. Faults (`common.Fault`) are applied here, per response.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from mediasrv.clock import Clock, RealClock
from mediasrv.errors import ConfigError

from . import chat_wire as wire
from .chat_stream import ChatStream, Pace, completion, plan_answer
from .common import GARBAGE, Fault, Stats, short_id
from .httpserve import TrackedHttpServer, serve_in_thread, stop_server

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
DEFAULT_KEY = "sk-local-chat-key"  # not a secret: the stand-in is loopback-only
MAX_BODY = 4 * 1024 * 1024  # larger bodies are refused (413) before they are read


@dataclass(frozen=True)
class ChatOptions:
    """Key, accepted models (None = any), pacing, and the fault to inject."""

    api_key: str = DEFAULT_KEY
    models: frozenset[str] | None = None
    pace: Pace = field(default_factory=Pace)
    fault: Fault | None = None
    socket_timeout_s: float = 5.0  # idle keep-alive connections are closed after this
    stall_max_s: float = 60.0  # a stalled or unanswered response gives up after this

    def __post_init__(self) -> None:
        if self.pace.ttft_s < 0 or self.pace.tokens_per_s <= 0:
            raise ConfigError("pace: ttft_s must be >= 0 and tokens_per_s > 0")


class _Server(TrackedHttpServer):
    owner: LocalChat

    def __init__(self, owner: LocalChat, address: tuple[str, int]) -> None:
        super().__init__("chat", owner, address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.owner.options.socket_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("chat stand-in: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self.server.owner.handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        self.server.owner.handle(self, "POST")

    def send_json(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", short_id("req_"))
        self.end_headers()
        self.wfile.write(body)

    def send_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class LocalChat:
    """A local, offline OpenAI Chat Completions server."""

    def __init__(self, options: ChatOptions | None = None, clock: Clock | None = None) -> None:
        self.options = options or ChatOptions()
        self._clock = clock or RealClock()
        self._stats = Stats()
        self._stopping = threading.Event()  # wakes paced and stalled responses on stop()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on host:port (0 = any free port) and return self."""
        self._server = _Server(self, (host, port))
        self._thread = serve_in_thread(self._server)
        log.info("local chat stand-in listening on %s (fault=%s)", self.base_url,
                 self.options.fault)
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def api_key(self) -> str:
        return self.options.api_key

    def stats(self) -> dict[str, Any]:
        """Return a snapshot of the counters ({"counts": ..., "records": ...})."""
        return self._stats.snapshot()

    def wait_for(self, counter: str, at_least: int = 1, timeout: float = 3.0) -> bool:
        """Block until a counter reaches `at_least` (a barrier for tests); False on timeout."""
        return self._stats.wait_for(counter, at_least, timeout)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting, end every response, join all threads within `timeout`."""
        server, thread = self._server, self._thread
        if server is None or thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        stop_server(server, thread, timeout, self._clock)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request (connection thread) -------------------------------------------------

    def handle(self, h: _Handler, method: str) -> None:
        """Answer one request: an error, the models list, or a completion."""
        fault = self.options.fault
        body = self._read_body(h) if method == "POST" else b""
        if body is None:
            return
        self._stats.add("requests")
        if fault is not None and fault.kind == "no_handshake":
            log.warning("chat stand-in: fault injection: request left unanswered")
            self._stats.add("fault_unanswered")
            self._stopping.wait(self.options.stall_max_s)
            h.close_connection = True
            return
        if fault is not None and fault.kind == "refuse":
            self._stats.add("refused")
            h.send_json(fault.status, wire.ApiError(
                fault.status, "The server is overloaded (local stand-in fault injection).",
                kind="server_error").body())
            return
        try:
            self._route(h, method, body)
        except wire.ApiError as exc:
            log.info("chat stand-in: %d %s", exc.status, exc.message[:120])
            self._stats.add(f"error_{exc.status}")
            self._stats.record("errors", {"status": exc.status, "code": exc.code,
                                          "param": exc.param, "message": exc.message})
            h.send_json(exc.status, exc.body())

    def _read_body(self, h: _Handler) -> bytes | None:
        length = h.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            h.send_json(411 if length is None else 413, wire.ApiError(
                400, "A Content-Length of at most 4 MiB is required.").body())
            h.close_connection = True
            return None
        return h.rfile.read(int(length))

    def _route(self, h: _Handler, method: str, body: bytes) -> None:
        path = h.path.split("?")[0]
        known = (method == "POST" and path == CHAT_PATH) or \
            (method == "GET" and (path == MODELS_PATH or path.startswith(MODELS_PATH + "/")))
        if not known:
            raise wire.ApiError(404, f"Invalid URL ({method} {path})")
        wire.check_auth(h.headers.get("Authorization"), self.options.api_key)
        if method == "GET":
            self._models(h, path)
            return
        req = wire.validate(body, self.options.models)
        self._stats.record("requests", json.loads(body))
        answer = plan_answer(req)
        created = int(time.time())  # a timestamp, not an interval: wall time is right here
        if not req.stream:
            self._stats.add("completions")
            h.send_json(200, json.dumps(completion(req, answer, created)).encode())
            return
        self._stream(h, ChatStream(req, answer, self.options.pace, self._clock.now(), created))

    def _models(self, h: _Handler, path: str) -> None:
        if path == MODELS_PATH:
            names = sorted(self.options.models or {"local-chat"})
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "local"}
                    for n in names]
            h.send_json(200, json.dumps({"object": "list", "data": data}).encode())
            return
        model = path[len(MODELS_PATH) + 1 :]
        wire.check_model(model, self.options.models)
        h.send_json(200, json.dumps({"id": model, "object": "model", "created": 0,
                                     "owned_by": "local"}).encode())

    def _stream(self, h: _Handler, stream: ChatStream) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("x-request-id", short_id("req_"))
        h.end_headers()
        self._stats.add("streams")
        sent = 0
        try:
            while (deadline := stream.next_deadline()) is not None:
                if not self._clock.sleep_until(deadline, self._stopping):
                    return
                for event in stream.due(self._clock.now()):
                    if not self._send_event(h, event, sent):
                        return
                    sent += 1
            h.send_chunk("")  # the zero-length chunk ends the response
            self._stats.add("streams_completed")
        except OSError:
            log.info("chat stand-in: client closed the stream after %d events", sent)
            self._stats.add("streams_closed_by_client")
            h.close_connection = True

    def _send_event(self, h: _Handler, event: str, sent: int) -> bool:
        """Send one event through the fault; False = the response ends here."""
        fault = self.options.fault
        if fault is None or sent < fault.after:
            h.send_chunk(event)
            return True
        h.close_connection = True
        if fault.kind == "close_mid_stream":
            log.warning("chat stand-in: fault injection: dropping TCP mid-stream")
            h.connection.shutdown(socket.SHUT_RDWR)
            return False
        if fault.kind == "stall":
            log.warning("chat stand-in: fault injection: stream stalled")
            self._stats.add("fault_stalls")
            self._stopping.wait(self.options.stall_max_s)
            return False
        if fault.kind == "error_mid_stream":
            error = wire.ApiError(500, "The server had an error while processing your request "
                                       "(local stand-in fault injection).", kind="server_error")
            h.send_chunk(f"data: {error.body().decode()}\n\n")
            h.send_chunk("")
            return False
        if sent == fault.after and fault.kind == "garbage":
            h.send_chunk(f"data: {GARBAGE}\n\n")
        h.send_chunk(event)
        return True
