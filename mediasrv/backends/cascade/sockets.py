"""One WebSocket connection to a cascade service (websocket-client) and its reader thread.

Layer: backends.

The reader dials, then reads until the socket ends or the call closes: every message is
parsed on this thread (a message that cannot be used is logged with its reason and
dropped: the connection goes on) and handed to the backend's dispatcher with the time
it arrived. It never waits on anything but its socket and a bounded put. Sends come
from the dispatcher thread; websocket-client gives send and recv their own locks.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import websocket

from mediasrv.backends.cascade.actions import SETTING_OF
from mediasrv.clock import Clock
from mediasrv.errors import ProtocolError

log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

_READ_POLL_S = 0.25  # how long one recv() may block before `closing` is looked at again
_BAD_LOG_EVERY = 100  # after the first 10 bad messages, one line per this many


@dataclass(frozen=True)
class WsTarget:
    """Where a service listens and how to talk to it."""

    service: str  # deepgram, elevenlabs
    url: str
    header: tuple[str, ...]  # the key goes here, never into a message
    connect_timeout_s: float
    parse: Callable[[bytes], Any]  # raises ProtocolError on a message it cannot use


class LinkListener(Protocol):
    """What a link reports (to the dispatcher's inbox): opened, a message, lost."""

    def opened(self, service: str, serial: int, at: float) -> None: ...
    def message(self, service: str, serial: int, msg: Any, at: float) -> None: ...
    def lost(self, service: str, serial: int, reason: str, at: float) -> None: ...


class WsLink:
    """One connection attempt to one service, plus its reader thread."""

    def __init__(self, target: WsTarget, serial: int, listener: LinkListener, *,
                 closing: threading.Event, clock: Clock, name: str,
                 logger: Logger = log) -> None:
        self._target = target
        self._serial = serial
        self._listener = listener
        self._closing = closing
        self._clock = clock
        self._log = logger
        self._ws: websocket.WebSocket | None = None
        self._stopped = threading.Event()
        self._bad = 0
        # Daemon: a peer that never answers the handshake must not keep the process up;
        # the thread still ends on `closing`, `stop()` or the connect timeout.
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def send(self, payload: str | bytes) -> bool:
        """Send a text (str) or binary (bytes) message; False if the socket failed."""
        ws = self._ws
        if ws is None or self._stopped.is_set():
            return False
        try:
            if isinstance(payload, bytes):
                ws.send_binary(payload)
            else:
                ws.send(payload)
            return True
        except (websocket.WebSocketException, OSError) as exc:
            self._lost(f"{self._target.service}: send failed ({exc.__class__.__name__})")
            return False

    def stop(self) -> None:
        """Close the socket without reporting a loss; the reader ends within one poll."""
        self._stopped.set()
        ws = self._ws
        if ws is not None:
            _close(ws)

    def _run(self) -> None:
        target = self._target
        try:
            ws = websocket.create_connection(
                target.url, header=list(target.header), timeout=target.connect_timeout_s,
                enable_multithread=True, skip_utf8_validation=True)  # json.loads checks it
        except (websocket.WebSocketException, OSError) as exc:
            self._lost(connect_failure(target.service, target.url, exc,
                                       target.connect_timeout_s))
            return
        ws.settimeout(_READ_POLL_S)
        self._ws = ws
        if self._stopped.is_set() or self._closing.is_set():
            _close(ws)
            return
        self._listener.opened(target.service, self._serial, self._clock.now())
        while not self._stopped.is_set() and not self._closing.is_set():
            if not self._read(ws):
                return

    def _read(self, ws: websocket.WebSocket) -> bool:
        """Read and hand on one message; False once the socket has ended."""
        service = self._target.service
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return True
        except (websocket.WebSocketException, OSError) as exc:
            self._lost(f"{service}: connection dropped ({exc.__class__.__name__})")
            return False
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            reason = bytes(data[2:]).decode("utf-8", errors="replace")[:120]
            self._lost(f"{service}: closed {code}" + (f" ({reason})" if reason else ""))
            return False
        if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return True
        try:
            msg = self._target.parse(bytes(data))
        except ProtocolError as exc:
            self._bad_input(str(exc))
            return True
        self._listener.message(service, self._serial, msg, self._clock.now())
        return True

    def _bad_input(self, reason: str) -> None:
        self._bad += 1
        if self._bad <= 10 or self._bad % _BAD_LOG_EVERY == 0:
            self._log.warning("%s message dropped (%d so far): %s", self._target.service,
                              self._bad, reason)

    def _lost(self, reason: str) -> None:
        if self._stopped.is_set() or self._closing.is_set():
            return  # we closed it, or the call is ending: no loss to report
        self._stopped.set()
        ws = self._ws
        if ws is not None:
            _close(ws)
        self._listener.lost(self._target.service, self._serial, reason, self._clock.now())


def _close(ws: websocket.WebSocket) -> None:
    try:
        ws.close(timeout=0.2)
    except Exception:  # closing a broken socket may raise anything; it is gone either way
        log.debug("websocket close raised", exc_info=True)
    finally:
        ws.shutdown()  # close() skips the OS socket when the peer went first


def connect_failure(service: str, url: str, exc: BaseException, timeout_s: float) -> str:
    """Say in words why dialling a service failed: which, where, why, what to check."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    where = f"{service}: cannot connect to {host}"
    check = SETTING_OF.get(service, "its settings")
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"{where}: HTTP {exc.status_code} on the upgrade (check {check})"
    if isinstance(exc, websocket.WebSocketAddressException):
        return f"{where}: the name does not resolve (check {check} and DNS)"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused (nothing listens there; check {check})"
    if isinstance(exc, TimeoutError | websocket.WebSocketTimeoutException):
        return (f"{where}: no answer within {timeout_s:g} s (OPENAI_CONNECT_TIMEOUT_S; check "
                "the network path)")
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS failed ({exc.__class__.__name__})"
    return f"{where}: {exc.__class__.__name__}"
