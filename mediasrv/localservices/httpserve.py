"""A small loopback HTTP/1.1 server for stand-ins and tests: one handler function.

    with LoopbackHttpServer("twiliorest", handle).start() as server:
        server.url        # http://127.0.0.1:<port>

`handle(HttpRequest) -> HttpResponse | None` answers one request (None drops the
connection unanswered: a fault). Threads: "mediasrv-<name>-accept" (the stdlib server
loop) and one "mediasrv-<name>-conn-N" per connection (keep-alive), all joined by
`stop()`; a handler that must wait (a slow or stalled fault) waits on `stopping`, which
`stop()` sets, so no thread outlives the server. Bodies need a Content-Length (411
otherwise) of at most `max_body` bytes (413). `TrackedHttpServer`, `serve_in_thread` and
`stop_server` are that thread handling alone, shared with the chat stand-in.

Layer: stand-ins.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Self

from mediasrv.clock import Clock, RealClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[HttpRequest], HttpResponse | None]


class TrackedHttpServer(HTTPServer):
    """An HTTPServer whose connection threads are named, tracked and joined by
    `stop_server()`; `owner` is the stand-in its handlers serve."""

    def __init__(self, name: str, owner: Any, address: tuple[str, int],
                 handler: type[BaseHTTPRequestHandler]) -> None:
        self.name = name
        self.owner = owner
        self._numbers = itertools.count(1)
        self.lock = threading.Lock()  # guards threads and socks
        self.threads: set[threading.Thread] = set()
        self.socks: set[socket.socket] = set()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Daemon so a never-stopped server cannot hang exit; stop_server() joins it.
        thread = threading.Thread(target=self._serve_one, args=(request, client_address),
                                  name=f"mediasrv-{self.name}-conn-{next(self._numbers)}",
                                  daemon=True)
        with self.lock:
            self.threads.add(thread)
            self.socks.add(request)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError as exc:
            log.debug("%s stand-in: connection ended: %s", self.name, exc)
        except Exception:  # safety net: one broken request must not kill the server
            log.exception("%s stand-in: unexpected error", self.name)
        finally:
            self.shutdown_request(request)
            with self.lock:
                self.threads.discard(threading.current_thread())
                self.socks.discard(request)


def serve_in_thread(server: TrackedHttpServer) -> threading.Thread:
    """Start `server`'s accept loop on "mediasrv-<name>-accept" and return the thread."""
    # Daemon for the same reason as the connection threads; stop_server() joins it.
    thread = threading.Thread(target=server.serve_forever, args=(0.1,),
                              name=f"mediasrv-{server.name}-accept", daemon=True)
    thread.start()
    return thread


def stop_server(server: TrackedHttpServer, thread: threading.Thread, timeout: float,
                clock: Clock) -> None:
    """Stop accepting, wake handlers blocked in recv, join every thread within `timeout`."""
    server.shutdown()
    with server.lock:
        socks, threads = list(server.socks), list(server.threads)
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    deadline = clock.now() + timeout
    for t in (thread, *threads):
        t.join(max(0.0, deadline - clock.now()))
    server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TrackedHttpServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.owner.socket_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug(self.server.owner.name + ": " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802 (stdlib name)
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        owner = self.server.owner
        body = b""
        if method == "POST":
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > owner.max_body:
                self._send(HttpResponse(411 if not length.isdigit() else 413,
                                        b"a Content-Length of at most the limit is required",
                                        "text/plain"))
                self.close_connection = True
                return
            body = self.rfile.read(int(length))
        path, _, query = self.path.partition("?")
        request = HttpRequest(method, path, query,
                              {k.lower(): v for k, v in self.headers.items()}, body)
        response = owner.handle(request)
        if response is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response)

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


class LoopbackHttpServer:
    """See the module docstring."""

    def __init__(self, name: str, handle: Handler, socket_timeout_s: float = 5.0,
                 max_body: int = 1024 * 1024, clock: Clock | None = None) -> None:
        self.name = name
        self.handle = handle
        self.socket_timeout_s = socket_timeout_s  # idle keep-alive connections end then
        self.max_body = max_body
        self.stopping = threading.Event()  # handlers that wait, wait on this
        self._clock = clock or RealClock()
        self._server: TrackedHttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on host:port (0 = any free port) and return self."""
        self._server = TrackedHttpServer(self.name, self, (host, port), _Handler)
        self._thread = serve_in_thread(self._server)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting, wake waiting handlers, join every thread within `timeout`."""
        server, thread = self._server, self._thread
        if server is None or thread is None or self.stopping.is_set():
            return
        self.stopping.set()
        stop_server(server, thread, timeout, self._clock)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
