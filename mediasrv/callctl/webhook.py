"""SHELL: run a user tool's webhook on its own thread and hand the model a clear result.

One thread per call of a tool ("mediasrv-tool-<sid>-<n>"): tool calls are rare, and a
slow webhook must not hold up the call's own threads. It POSTs JSON
`{"call_sid", "call_id", "tool", "arguments"}` with the tool's headers and gives
`on_result` exactly one `ToolResult` whose `output` is JSON text for the model:

    2xx with a JSON body   that JSON (compacted), outcome "ok"
    anything else          {"ok": false, "error": "<what happened, in words>"} with
                           outcome http_error / bad_json / too_large / timeout /
                           unreachable -- the model can tell the caller and go on

Every blocking step gets the time left until TOOL_TIMEOUT_S (a deadline, as the Realtime
client does), so the answer comes within about the timeout; a server trickling its
header bytes one by one could stretch that, bounded per byte. `close()` (the call ended)
shuts the sockets down, so threads end at once and no result is delivered after it.
Logs name the tool, the outcome, the time and the URL without its query string; never
headers, bodies or arguments.

Layer: call control (a thread shell: HTTP to the user's tools).
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from mediasrv import __version__
from mediasrv.clock import Clock, RealClock

from .tools import RunWebhook
from .tools_file import WebhookTool

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 64 * 1024  # a result the model must read aloud from; more is a bug


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    tool: str
    output: str
    outcome: str
    elapsed_s: float


class _Failed(Exception):
    """A webhook call that did not give a usable result; args: outcome, words, log note."""


class WebhookRunner:
    """Runs the webhook tools of one call; see the module docstring."""

    def __init__(self, call_sid: str, timeout_s: float,
                 on_result: Callable[[ToolResult], None], clock: Clock | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._sid = call_sid
        self._timeout = timeout_s
        self._on_result = on_result  # called on the tool's thread: must not block long
        self._clock = clock or RealClock()
        self._ssl = ssl_context  # None: the process's shared default context
        self._closing = threading.Event()
        self._lock = threading.Lock()  # guards _threads and _conns (tool threads, close())
        self._threads: set[threading.Thread] = set()
        self._conns: set[http.client.HTTPConnection] = set()
        self._numbers = itertools.count(1)

    def run(self, decision: RunWebhook) -> None:
        """Start the webhook call on its own thread; the result comes to `on_result`."""
        if self._closing.is_set():
            return
        # Daemon: a process exit must not wait for a webhook; close() joins the thread.
        thread = threading.Thread(target=self._call, args=(decision,), daemon=True,
                                  name=f"mediasrv-tool-{self._sid}-{next(self._numbers)}")
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Cancel running calls (their results are dropped) and join their threads."""
        self._closing.set()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            _shutdown(conn)
        deadline = self._clock.now() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - self._clock.now()))

    def _call(self, decision: RunWebhook) -> None:
        tool, started = decision.tool, self._clock.now()
        try:
            output, outcome, note = self._result(decision, started + self._timeout)
        except Exception:  # safety net: the model still gets an answer
            log.exception("[TOOL] %s: unexpected error", tool.name)
            output, outcome, note = _error(f"the tool {tool.name} failed"), "error", ""
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())
        elapsed = self._clock.now() - started
        if self._closing.is_set():
            log.info("[TOOL] %s: result dropped, the call has ended", tool.name)
            return
        log.info("[TOOL] %s: %s in %.2f s (%s%s)", tool.name, outcome, elapsed,
                 tool.url_for_logs(), f"; {note}" if note else "")
        try:
            self._on_result(ToolResult(decision.call_id, tool.name, output, outcome, elapsed))
        except Exception:
            log.exception("[TOOL] %s: the result handler failed", tool.name)

    def _result(self, decision: RunWebhook, deadline: float) -> tuple[str, str, str]:
        tool = decision.tool
        body = json.dumps({"call_sid": self._sid, "call_id": decision.call_id,
                           "tool": tool.name, "arguments": decision.arguments}).encode()
        try:
            status, data = self._post(tool, body, deadline)
        except _Failed as failed:
            outcome, words, note = failed.args
            return _error(f"the tool {tool.name} {words}"), outcome, note
        if not 200 <= status < 300:
            return _error(f"the tool {tool.name} failed (HTTP {status})"), "http_error", \
                f"HTTP {status}"
        try:
            return json.dumps(json.loads(data), separators=(",", ":")), "ok", f"HTTP {status}"
        except ValueError:
            return _error(f"the tool {tool.name} answered with something that is not "
                          "JSON"), "bad_json", f"HTTP {status}, body not JSON"

    def _post(self, tool: WebhookTool, body: bytes, deadline: float) -> tuple[int, bytes]:
        parts = urlsplit(tool.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json", "User-Agent": f"mediasrv/{__version__}",
                   **dict(tool.headers)}
        conn: http.client.HTTPConnection | None = None
        try:
            conn = self._connection(parts.scheme, parts.hostname or "", parts.port,
                                    self._left(deadline))
            with self._lock:
                self._conns.add(conn)
            if self._closing.is_set():  # close() ran before this connection was listed
                raise _Failed("cancelled", "was cancelled", "call ended")
            conn.request("POST", path, body=body, headers=headers)
            self._bound(conn, deadline)
            response = conn.getresponse()
            data = bytearray()
            while len(data) <= MAX_RESULT_BYTES:
                self._bound(conn, deadline)
                chunk = response.read1(MAX_RESULT_BYTES + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise _Failed("timeout", f"did not answer within {self._timeout:g} s",
                          "timed out") from None
        except (OSError, http.client.HTTPException) as exc:
            if self._closing.is_set():
                raise _Failed("cancelled", "was cancelled", "call ended") from None
            raise _Failed("unreachable", "could not be reached",
                          f"{type(exc).__name__}: {exc}") from None
        finally:
            if conn is not None:
                with self._lock:
                    self._conns.discard(conn)
                conn.close()
        if len(data) > MAX_RESULT_BYTES:
            raise _Failed("too_large", f"answered with more than {MAX_RESULT_BYTES // 1024} "
                                       "KiB", "result too large")
        return response.status, bytes(data)

    def _connection(self, scheme: str, host: str, port: int | None, timeout: float
                    ) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=self._ssl or _default_ssl_context())
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _left(self, deadline: float) -> float:
        left = deadline - self._clock.now()
        if left <= 0:
            raise TimeoutError
        return left

    def _bound(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        """Give the next socket operation only the time left before the deadline."""
        if conn.sock is not None:
            conn.sock.settimeout(self._left(deadline))


def _error(words: str) -> str:
    return json.dumps({"ok": False, "error": words})


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """Return the process's default TLS context, made on the first https webhook.

    Shared by every call (a context is safe to use from many threads): each one loads
    the system's CA store, measured at ~0.3 MB and a few ms, which a context per call
    paid at the start of every call even when it never called a webhook.
    """
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context


def _shutdown(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the tool's thread blocked in recv
        except OSError:
            pass
