"""The Twilio socket is read by the call's rx loop itself, through simple-websocket's own
handshake and event handling, with no reader thread of the library."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import simple_websocket
from hardening_live import RawTwilio, backend, connector, live_server, settings
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from mediasrv.errors import PeerClosed
from mediasrv.web.twilio_socket import TwilioWs, server_options


def test_a_live_call_runs_without_the_librarys_reader_thread() -> None:
    with backend() as b, live_server(settings(), connector(b)) as live:
        tw = RawTwilio(live.ws_url).start()
        live.wait_active(1)
        readers = [t.name for t in threading.enumerate() if "simple_websocket" in t.name]
        tw.media(5)
        tw.stop()
        tw.wait_closed()
        live.wait_active(0)
        tw.close()
    assert readers == []


class _Peer:
    """The phone's end of a socketpair, speaking WebSocket through wsproto."""

    def __init__(self, tcp: bool = False, deflate: bool = False) -> None:
        self.sock, server_sock = _tcp_pair() if tcp else socket.socketpair()
        self.ws = WSConnection(ConnectionType.CLIENT)
        extensions = [PerMessageDeflate()] if deflate else []
        self.sock.sendall(self.ws.send(Request(host="twilio", target="/media",
                                               extensions=extensions)))
        environ: dict[str, object] = {"gunicorn.socket": server_sock}
        environ.update(_request_environ(server_sock))
        self.server = simple_websocket.Server(environ, **server_options(1024))
        self._events(self.sock.recv(65536))  # the handshake's answer

    def send(self, event: TextMessage | Ping | CloseConnection) -> None:
        self.sock.sendall(self.ws.send(event))

    def _events(self, data: bytes) -> list[object]:
        self.ws.receive_data(data)
        return list(self.ws.events())

    def read_events(self) -> list[object]:
        self.sock.settimeout(2.0)
        return self._events(self.sock.recv(65536))


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A loopback connection accepted as werkzeug accepts it (no TCP_NODELAY)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        phone = socket.create_connection(listener.getsockname())
        server_sock, _ = listener.accept()
    return phone, server_sock


def _request_environ(server_sock: socket.socket) -> dict[str, str]:
    """The upgrade request as a WSGI server would have parsed it (the server reads it
    from the environ, not from the socket)."""
    raw = server_sock.recv(65536).decode()
    head = raw.split("\r\n")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/media", "SERVER_PROTOCOL": "HTTP/1.1"}
    for line in head[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            environ["HTTP_" + key.strip().upper().replace("-", "_")] = value.strip()
    return environ


@pytest.fixture
def peer() -> Iterator[_Peer]:
    p = _Peer()
    yield p
    p.sock.close()
    p.server.sock.close()


def test_messages_come_in_order_and_a_quiet_socket_times_out_with_none(peer: _Peer) -> None:
    tw = TwilioWs(peer.server)
    peer.send(TextMessage(data="one"))
    peer.send(TextMessage(data="two"))
    assert tw.receive(1.0) == "one"
    assert tw.receive(1.0) == "two"
    assert tw.receive(0.05) is None


def test_a_ping_is_answered_by_the_librarys_event_handling(peer: _Peer) -> None:
    tw = TwilioWs(peer.server)
    peer.send(Ping(payload=b"hi"))
    peer.send(TextMessage(data="after"))
    assert tw.receive(1.0) == "after"
    assert any(isinstance(e, Pong) and e.payload == b"hi" for e in peer.read_events())


def test_messages_before_and_after_a_ping_come_in_order(peer: _Peer) -> None:
    # Plain frames are parsed without wsproto until the ping; it and all after go through it.
    tw = TwilioWs(peer.server)
    peer.send(TextMessage(data="one"))
    peer.send(Ping(payload=b"hi"))
    peer.send(TextMessage(data="two" * 100))
    assert [tw.receive(1.0), tw.receive(1.0)] == ["one", "two" * 100]
    assert any(isinstance(e, Pong) and e.payload == b"hi" for e in peer.read_events())


def test_a_message_split_across_reads_comes_whole(peer: _Peer) -> None:
    tw = TwilioWs(peer.server)
    data = peer.ws.send(TextMessage(data="x" * 500))
    peer.sock.sendall(data[:3])
    assert tw.receive(0.05) is None
    peer.sock.sendall(data[3:])
    assert tw.receive(1.0) == "x" * 500


def test_compressed_messages_are_read_when_the_peer_asked_for_compression() -> None:
    p = _Peer(deflate=True)
    try:
        tw = TwilioWs(p.server)
        p.send(TextMessage(data="media " * 50))
        p.send(TextMessage(data="again " * 50))
        assert [tw.receive(1.0), tw.receive(1.0)] == ["media " * 50, "again " * 50]
    finally:
        p.sock.close()
        p.server.sock.close()


def test_a_peer_close_is_answered_and_ends_the_stream(peer: _Peer) -> None:
    tw = TwilioWs(peer.server)
    peer.send(CloseConnection(code=1000))
    with pytest.raises(PeerClosed):
        tw.receive(1.0)
    assert any(isinstance(e, CloseConnection) for e in peer.read_events())


def test_a_message_over_the_size_cap_closes_with_1009(peer: _Peer) -> None:
    tw = TwilioWs(peer.server)
    peer.send(TextMessage(data="x" * 2000))  # the cap here is 1024
    with pytest.raises(PeerClosed):
        tw.receive(1.0)
        tw.receive(1.0)
    closes = [e for e in peer.read_events() if isinstance(e, CloseConnection)]
    assert closes and closes[0].code == 1009


def test_a_vanished_peer_ends_the_stream(peer: _Peer) -> None:
    tw = TwilioWs(peer.server)
    peer.sock.shutdown(socket.SHUT_RDWR)
    with pytest.raises(PeerClosed):
        tw.receive(1.0)


def test_every_message_leaves_at_once_on_a_server_that_does_not_ask_for_it() -> None:
    # Nagle would hold a `clear` written just after a media frame until Twilio's ACK of
    # that frame: up to a round trip more of the interrupted audio at the caller's ear.
    p = _Peer(tcp=True)
    try:
        assert p.server.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        TwilioWs(p.server)
        assert p.server.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        p.sock.close()
        p.server.sock.close()
