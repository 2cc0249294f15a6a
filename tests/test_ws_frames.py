"""PlainFrames: Twilio's plain text frames parsed without wsproto; every other frame, and
all after it, handed back byte for byte for the full parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from mediasrv.web.ws_frames import PlainFrames, unmask

KEY = b"\x12\x34\x56\x78"


def client_frame(event: Message[str] | Message[bytes] | Ping | CloseConnection) -> bytes:
    return Connection(ConnectionType.CLIENT).send(event)


def raw_frame(first: int, payload: bytes, *, masked: bool = True, len16: bool = False) -> bytes:
    """One frame built by hand: `first` is FIN/RSV/opcode, the length as asked."""
    n = len(payload)
    length = bytes([126 | (0x80 if masked else 0)]) + n.to_bytes(2, "big") if len16 or n >= 126 \
        else bytes([n | (0x80 if masked else 0)])
    body = KEY + unmask(payload, KEY) if masked else payload
    return bytes([first]) + length + body


def test_a_plain_text_frame_is_one_message() -> None:
    assert PlainFrames(None).feed(client_frame(TextMessage('{"event":"media"}'))) == (
        ['{"event":"media"}'], None)


def test_a_frame_with_a_16_bit_length_is_one_message() -> None:
    text = "x" * 400
    assert PlainFrames(None).feed(client_frame(TextMessage(text))) == ([text], None)


def test_several_frames_in_one_read_come_out_in_order() -> None:
    data = b"".join(client_frame(TextMessage(t)) for t in ("one", "two", "three"))
    assert PlainFrames(None).feed(data) == (["one", "two", "three"], None)


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 8, 100, 405])
def test_a_frame_split_across_reads_comes_out_once_it_is_whole(cut: int) -> None:
    data = client_frame(TextMessage("y" * 400))
    frames = PlainFrames(None)
    assert frames.feed(data[:cut]) == ([], None)
    assert frames.feed(data[cut:]) == (["y" * 400], None)


def test_utf8_text_is_decoded() -> None:
    assert PlainFrames(None).feed(client_frame(TextMessage("grüß 🙂"))) == (["grüß 🙂"], None)


def test_an_empty_text_frame_is_an_empty_message() -> None:
    assert PlainFrames(None).feed(client_frame(TextMessage(""))) == ([""], None)


ODD_FRAMES = {
    "ping": client_frame(Ping(b"hi")),
    "close": client_frame(CloseConnection(1000)),
    "binary": client_frame(BytesMessage(b"\x00\x01")),
    "first fragment": client_frame(TextMessage("part", message_finished=False)),
    "continuation": raw_frame(0x80, b"rest"),
    "reserved bit (compressed)": raw_frame(0xC1, b"text"),
    "unmasked": raw_frame(0x81, b"text", masked=False),
    "64-bit length": bytes([0x81, 0xFF]) + (5).to_bytes(8, "big") + KEY + unmask(b"hello", KEY),
    "16-bit length not minimal": raw_frame(0x81, b"short", len16=True),
    "over the size cap": client_frame(TextMessage("z" * 2000)),
    "invalid utf-8": raw_frame(0x81, b"\xff\xfe"),
}


@pytest.mark.parametrize("name", list(ODD_FRAMES))
def test_an_odd_frame_and_all_after_it_go_back_to_the_full_parser(name: str) -> None:
    before = client_frame(TextMessage("before"))
    odd_and_after = ODD_FRAMES[name] + client_frame(TextMessage("after"))
    assert PlainFrames(1024).feed(before + odd_and_after) == (["before"], odd_and_after)


def test_an_odd_frame_is_handed_back_whole_when_its_start_came_in_an_earlier_read() -> None:
    odd = raw_frame(0x81, b"text", masked=False)  # its first byte looks plain, its second not
    text = client_frame(TextMessage("a" * 300))
    frames = PlainFrames(None)
    assert frames.feed(text + odd[:1]) == (["a" * 300], None)
    assert frames.feed(odd[1:]) == ([], odd)


@given(st.lists(st.text(max_size=300), min_size=1, max_size=8),
       st.lists(st.integers(min_value=1, max_value=64), max_size=8))
def test_whatever_the_reads_the_messages_are_wsprotos(texts: list[str], sizes: list[int]) -> None:
    data = b"".join(client_frame(TextMessage(t)) for t in texts)
    reads, pos = [], 0
    for size in sizes:
        reads.append(data[pos : pos + size])
        pos += size
    reads.append(data[pos:])
    frames = PlainFrames(None)
    got: list[str] = []
    for chunk in reads:
        messages, rest = frames.feed(chunk)
        assert rest is None
        got += messages
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    assert got == [e.data for e in server.events() if isinstance(e, TextMessage)] == texts
