"""The emulator dates server messages by their arrival at its socket, not by its read."""

from __future__ import annotations

import socket
import time

from mediasrv.emulator import stamps


def _pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    return client, peer


def test_a_read_knows_when_its_data_arrived_not_when_it_was_read() -> None:
    client, peer = _pair()
    sock = stamps.stamped(client)
    assert sock is not None
    with sock, peer:
        # The kernel switches timestamping on lazily (a deferred static key): the first
        # segments may carry none -- one in CI (a fresh clone, stop 22), more than the one
        # exchange this primed with before. Prime until a read is stamped (bounded).
        for _ in range(200):
            peer.sendall(b'{"event": "media"}')
            assert sock.recv(4096) == b'{"event": "media"}'
            if sock.received_wall is not None:
                break
            time.sleep(0.005)
        before = time.time()
        peer.sendall(b'{"event": "clear"}')
        time.sleep(0.05)  # the reader is busy elsewhere
        assert sock.recv(4096) == b'{"event": "clear"}'
        read_at = time.time()
        assert sock.received_wall is not None
        assert before <= sock.received_wall <= read_at - 0.05
        assert stamps.age(sock) >= 0.05


def test_the_stamped_socket_is_the_same_connection_with_the_same_timeout() -> None:
    client, peer = _pair()
    client.settimeout(2.5)
    sock = stamps.stamped(client)
    assert sock is not None
    with sock, peer:
        assert client.fileno() == -1  # handed over, not duplicated
        assert sock.gettimeout() == 2.5
        sock.sendall(b"ping")
        assert peer.recv(16) == b"ping"


def test_a_socket_that_cannot_date_reads_is_left_as_it_was() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        assert stamps.stamped(a) is None
        a.send(b"x")
        assert b.recv(4) == b"x"


def test_a_read_the_kernel_did_not_stamp_has_no_time_not_the_last_one() -> None:
    client, peer = _pair()
    sock = stamps.stamped(client)
    assert sock is not None
    with sock, peer:
        sock.received_wall = time.time() - 5.0  # an earlier read's stamp
        sock.recvmsg = lambda *a: (b"two", [], 0, None)  # type: ignore[method-assign]
        assert sock.recv(16) == b"two"
        assert sock.received_wall is None
        assert stamps.age(sock) == 0.0
