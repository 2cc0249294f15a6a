"""The Realtime API socket (websocket-client) and its reader thread.

Layer: backends. The reader never blocks on anything but the socket: every event is
parsed and handed on (to the adapter, `backend.py`, and from there to the call), and
nothing it hands to waits on Twilio or on a full queue. A read timeout lets the thread
notice the call closing.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import websocket

from mediasrv.errors import ConnectFailed, PeerClosed, ProtocolError
from mediasrv.protocol.realtime import RealtimeEvent, parse_realtime

log = logging.getLogger(__name__)

# How long one recv() may block before the reader re-checks `closing`.
_READ_POLL_S = 0.25


class RealtimeSocket(Protocol):
    def send(self, text: str) -> None: ...

    def recv(self) -> str | bytes | None:
        """Return one message, None on a read timeout; raise PeerClosed when closed."""
        ...

    def close(self) -> None: ...


Connector = Callable[[], RealtimeSocket]


class WsClientSocket:
    """websocket-client adapter (its send and recv each have their own lock)."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws

    def send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except (websocket.WebSocketException, OSError) as exc:
            raise PeerClosed(f"realtime send failed: {exc.__class__.__name__}") from exc

    def recv(self) -> str | bytes | None:
        try:
            opcode, data = self._ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as exc:
            raise PeerClosed(f"realtime socket closed: {exc.__class__.__name__}") from exc
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return bytes(data)  # text stays UTF-8 bytes: json.loads decodes and checks it
        if not self._ws.connected:
            raise PeerClosed("realtime socket closed by peer")
        return None

    def close(self) -> None:
        try:
            self._ws.close(timeout=0.2)
        except Exception:  # closing a broken socket may raise anything; it is gone either way
            log.debug("realtime close raised", exc_info=True)
        finally:
            self._ws.shutdown()  # close() skips the OS socket when the peer went first


def connect_failure(url: str, exc: BaseException, timeout_s: float) -> str:
    """Say in words why dialling `url` failed: the host, the reason, what to check."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    where = f"cannot connect to the backend at {host}"
    if isinstance(exc, websocket.WebSocketBadStatusException):
        status = exc.status_code
        hint = {401: "check OPENAI_API_KEY", 403: "check OPENAI_API_KEY and the model access",
                404: "check OPENAI_REALTIME_URL / OPENAI_REALTIME_MODEL"}.get(
            status, "the backend refused the WebSocket upgrade")
        return f"{where}: HTTP {status} on the upgrade ({hint})"
    if isinstance(exc, websocket.WebSocketAddressException):
        return f"{where}: the name does not resolve ({exc}; check OPENAI_REALTIME_URL and DNS)"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused (nothing listens there; check OPENAI_REALTIME_URL)"
    if isinstance(exc, (TimeoutError, websocket.WebSocketTimeoutException)):
        return (f"{where}: no answer within {timeout_s:g} s (OPENAI_CONNECT_TIMEOUT_S; "
                "check the network path and any proxy)")
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS failed ({exc.__class__.__name__}: {exc})"
    return f"{where}: {exc.__class__.__name__}: {exc}"


def ws_connector(url: str, api_key: str, connect_timeout_s: float) -> Connector:
    """Return a connector dialling `url` with GA headers (no OpenAI-Beta header)."""
    headers = [f"Authorization: Bearer {api_key}"] if api_key else []

    def connect() -> RealtimeSocket:
        try:
            ws = websocket.create_connection(
                url, header=headers, timeout=connect_timeout_s, enable_multithread=True,
                # websocket-client validates UTF-8 in pure Python, byte by byte: ~10 % of the
                # worker's CPU under load. json.loads (C) rejects invalid UTF-8 anyway.
                skip_utf8_validation=True,
            )
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectFailed(connect_failure(url, exc, connect_timeout_s)) from exc
        ws.settimeout(_READ_POLL_S)
        return WsClientSocket(ws)

    return connect


class RealtimeClient:
    """One connection attempt plus its reader thread."""

    def __init__(
        self,
        connect: Connector,
        *,
        name: str,
        on_open: Callable[[RealtimeClient], None],
        on_event: Callable[[RealtimeEvent], None],
        on_lost: Callable[[RealtimeClient, str], None],
        closing: threading.Event,
        logger: logging.LoggerAdapter[logging.Logger] | logging.Logger = log,
    ) -> None:
        self._connect = connect
        self._on_open = on_open
        self._on_event = on_event
        self._on_lost = on_lost
        self._closing = closing
        self._log = logger
        self._sock: RealtimeSocket | None = None
        self._stopped = threading.Event()
        self.connected = threading.Event()
        self.opened = False  # the handshake succeeded once: a loss is not a failed connect
        # Daemon: a peer that never answers the handshake must not keep the process up;
        # the thread still ends on `closing` or on the connect timeout.
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> RealtimeClient:
        self.thread.start()
        return self

    def send(self, text: str) -> bool:
        """Send one client event; False (and the call is told) if the socket failed."""
        sock = self._sock
        if sock is None or not self.connected.is_set():
            return False
        try:
            sock.send(text)
            return True
        except PeerClosed as exc:
            self._lost(str(exc))
            return False

    def stop(self) -> None:
        """Close the socket; the reader ends within one read poll."""
        self._stopped.set()
        sock = self._sock
        if sock is not None:
            sock.close()

    def _run(self) -> None:
        try:
            sock = self._connect()
        except PeerClosed as exc:
            self._lost(str(exc))
            return
        self._sock = sock
        self.opened = True
        if self._stopped.is_set() or self._closing.is_set():
            sock.close()
            return
        self.connected.set()
        self._on_open(self)
        while not self._closing.is_set() and not self._stopped.is_set():
            try:
                data = sock.recv()
            except PeerClosed as exc:
                self._lost(str(exc))
                return
            if data is None:
                continue
            try:
                event = parse_realtime(data)
            except ProtocolError as exc:
                self._log.warning("realtime event dropped: %s", exc)
                continue
            try:
                self._on_event(event)
            except Exception:  # the safety net: one bad event must not kill the reader
                self._log.exception("realtime event handler failed; event dropped")

    def _lost(self, reason: str) -> None:
        if self._stopped.is_set() or self._closing.is_set():
            return
        self._stopped.set()
        self.connected.clear()
        self._on_lost(self, reason)
