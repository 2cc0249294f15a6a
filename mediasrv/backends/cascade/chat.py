"""Chat completions streamed over HTTP (stdlib http.client) on one worker thread per call.

Layer: backends.

Why not the `openai` package: its sync streaming fits threads, but it would bring httpx,
pydantic and their dependencies into the server for one POST and a line reader, and its
retries and timeouts would sit between a barge-in and the socket. http.client reads the
chunked SSE stream line by line; closing the socket from the dispatcher ends a read at
once (barge-in: "close the HTTP stream", PROTOCOLS-2 4a).

The worker runs one job at a time (a call has one answer in flight): it sends the
request, reports when it left, then every event of the stream with the time it arrived,
and how the stream ended. The connection is kept alive between answers (no new TCP and
TLS handshake per turn) unless a stream was cut off or failed. A read blocking longer
than `read_timeout_s` is a stalled stream.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from mediasrv.backends.cascade import chat_wire
from mediasrv.clock import Clock
from mediasrv.errors import ProtocolError

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

_IDLE_POLL_S = 0.25  # how long the idle worker blocks before `closing` is looked at again
_MAX_LINE = 1 << 20  # an SSE line longer than this is not a chunk we can use
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class ChatTarget:
    base_url: str  # OPENAI_BASE_URL, e.g. https://api.openai.com/v1
    api_key: str
    connect_timeout_s: float
    read_timeout_s: float


class ChatListener(Protocol):
    def sent(self, job: int, at: float) -> None: ...
    def event(self, job: int, ev: chat_wire.ChatEvent, at: float) -> None: ...
    def ended(self, job: int, error: str, at: float) -> None: ...


class ChatWorker:
    """Streams one chat completion at a time."""

    def __init__(self, target: ChatTarget, listener: ChatListener, *,
                 closing: threading.Event, clock: Clock, name: str,
                 logger: Logger = log) -> None:
        self._target = target
        url = urlsplit(target.base_url)
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname or "", url.port
        self._path = url.path.rstrip("/") + "/chat/completions"
        self._listener = listener
        self._closing = closing
        self._clock = clock
        self._log = logger
        self._jobs: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._lock = threading.Lock()  # a leaf: guards the three below for abort()
        self._conn: http.client.HTTPConnection | None = None
        self._current = 0
        self._aborted: set[int] = set()
        # Daemon: a server that never answers must not keep the process up; the thread
        # still ends on `closing` or `stop()`, its reads bounded by read_timeout_s.
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: int, body: bytes) -> None:
        self._jobs.put((job, body))

    def abort(self, job: int) -> None:
        """Stop streaming `job` now (barge-in): its socket is shut, nothing more reported."""
        with self._lock:
            self._aborted.add(job)
            conn = self._conn if self._current == job else None
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once
            except OSError:
                pass  # already closed

    def stop(self) -> None:
        self._jobs.put(None)
        with self._lock:
            if self._current:
                self._aborted.add(self._current)
            conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                item = self._jobs.get(timeout=_IDLE_POLL_S)
            except queue.Empty:
                continue
            if item is None:
                break
            job, body = item
            with self._lock:
                if job in self._aborted:
                    continue
                self._current = job
            error = self._stream(job, body)
            with self._lock:
                self._current = 0
                aborted = job in self._aborted
                self._aborted.discard(job)
            if not aborted and not self._closing.is_set():
                self._listener.ended(job, error, self._clock.now())
        self._drop_connection()

    def _stream(self, job: int, body: bytes) -> str:
        """Stream one completion; return why it failed ("" if it ended with [DONE])."""
        with self._lock:
            reused = self._conn is not None
        try:
            return self._exchange(job, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self._drop_connection()
            if not reused:
                return f"{self._host}: {exc.__class__.__name__}"
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            return self._failure(exc)
        # A kept-alive connection the server had closed meanwhile (its idle timeout): the
        # request never reached it, so it goes once more on a new connection.
        try:
            return self._exchange(job, body)
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            return self._failure(exc)

    def _exchange(self, job: int, body: bytes) -> str:
        conn = self._connection()
        conn.request("POST", self._path, body=body, headers=self._headers())
        self._listener.sent(job, self._clock.now())
        response = conn.getresponse()  # RemoteDisconnected here: nothing was answered
        if response.status != 200:
            detail = _error_detail(response.read(_MAX_ERROR_BODY))
            self._drop_connection()
            return f"HTTP {response.status} from {self._host}" + (
                f" ({detail})" if detail else "")
        try:
            if self._read_events(job, response):
                response.read()  # the closing chunk: the connection can serve the next job
                return ""
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()  # mid-stream: never sent again (text was spoken)
            return self._failure(exc)
        self._drop_connection()
        return "the stream ended before [DONE]"

    def _failure(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"no data from {self._host} for {self._target.read_timeout_s:g} s"
        return f"{self._host}: {exc.__class__.__name__}"

    def _read_events(self, job: int, response: http.client.HTTPResponse) -> bool:
        """Hand on the stream's events; True once [DONE] came."""
        while True:
            line = response.readline(_MAX_LINE)
            if not line:
                return False
            try:
                ev = chat_wire.parse_line(line)
            except (ProtocolError, UnicodeDecodeError) as exc:
                self._log.warning("chat event dropped: %s", exc)
                continue
            if ev is None:
                continue
            self._listener.event(job, ev, self._clock.now())
            if isinstance(ev, chat_wire.Done | chat_wire.Failure):
                return isinstance(ev, chat_wire.Done)

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            conn = self._conn
        if conn is not None:
            return conn
        timeout = self._target.connect_timeout_s
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._target.read_timeout_s)
        with self._lock:
            self._conn = conn
        return conn

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._target.api_key:
            headers["Authorization"] = f"Bearer {self._target.api_key}"
        return headers


def _error_detail(body: bytes) -> str:
    try:
        return chat_wire.error_message(json.loads(body))
    except ValueError:
        return ""
