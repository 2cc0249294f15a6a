import json
from base64 import b64encode

import pytest

from mediasrv.errors import TwilioProtocolError
from mediasrv.protocol.twilio import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    TwilioMessages,
    parse_twilio,
)


def media_msg(payload: bytes, ts: str = "20") -> str:
    return json.dumps(
        {"event": "media", "sequenceNumber": "3", "streamSid": "MZ1",
         "media": {"track": "inbound", "chunk": "2", "timestamp": ts,
                   "payload": b64encode(payload).decode()}}
    )


def test_parses_documented_messages():
    assert parse_twilio('{"event":"connected","protocol":"Call","version":"1.0.0"}') == Connected(
        "Call", "1.0.0"
    )
    start = parse_twilio(json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1",
                  "tracks": ["inbound"], "customParameters": {"token": "t"},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
    }))
    assert start == Start("MZ1", "CA1", "AC1", {"token": "t"})
    assert parse_twilio(media_msg(b"\xff" * 160, "40")) == Media(40, b"\xff" * 160)
    assert parse_twilio('{"event":"mark","streamSid":"MZ1","mark":{"name":"a"}}') == Mark("a")
    assert parse_twilio(
        '{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"1"}}'
    ) == Dtmf("1")
    assert parse_twilio('{"event":"stop","stop":{"callSid":"CA1"}}') == Stop("CA1")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not json"),
        ("[1,2]", "not an object"),
        ('{"no":"event"}', "no event"),
        ('{"event":"bogus"}', "unknown event"),
        ('{"event":"media"}', "missing object"),
        ('{"event":"media","media":{"payload":"***"}}', "not base64"),
        ('{"event":"media","media":{"payload":""}}', "empty payload"),
        (media_msg(b"\xff" * 100), "not a multiple of 20 ms"),
        (media_msg(b"\xff" * 16000), "too large"),
        ('{"event":"mark","mark":{}}', "missing field 'name'"),
        ('{"event":"start","start":{"streamSid":"MZ"}}', "missing field 'callSid'"),
    ],
)
def test_bad_messages_raise_protocol_error_with_reason(raw, reason):
    with pytest.raises(TwilioProtocolError, match=reason):
        parse_twilio(raw)


def test_binary_frame_is_rejected():
    with pytest.raises(TwilioProtocolError, match="binary"):
        parse_twilio(b'{"event":"media"}')


def test_builders_produce_the_documented_shapes():
    msgs = TwilioMessages("MZ1")
    media = json.loads(msgs.media(b"\x01\x02"))
    assert media == {"event": "media", "streamSid": "MZ1", "media": {"payload": "AQI="}}
    assert json.loads(msgs.mark("r:i:20")) == {
        "event": "mark", "streamSid": "MZ1", "mark": {"name": "r:i:20"}
    }
    assert json.loads(msgs.clear) == {"event": "clear", "streamSid": "MZ1"}
