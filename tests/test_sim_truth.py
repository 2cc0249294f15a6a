"""Truncation truth and first-syllable arrival, judged from the emulator's own record."""

from __future__ import annotations

import numpy as np

from mediasrv.emulator.metrics import CallResult
from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.phone import Phone
from mediasrv.emulator.script import CallerScript
from mediasrv.emulator.truth import clear_truths, forwards_as_sent, received_at
from mediasrv.emulator.wire import ServerMessage

TONE = bytes([0x10]) * 160  # 20 ms


def new_phone(down: float = 30.0) -> Phone:
    script = CallerScript.from_samples(np.zeros(8000 * 4))
    return Phone(script, NetworkTiming(down, 20.0), media_t0=0.0)


def send_item(p: Phone, rid: str, item: str, ms: int, now: float, every: int = 200,
              end: bool = True) -> None:
    """Send `ms` of audio for an item at `now`, a mark every `every` ms and at its end."""
    for sent in range(every, ms + 1, every):
        p.receive(ServerMessage("media", payload=TONE * (every // 20)), now)
        tag = ":end" if end and sent == ms else ""
        p.receive(ServerMessage("mark", name=f"{rid}:{item}:{sent}{tag}"), now)
    rest = ms % every
    if rest:
        p.receive(ServerMessage("media", payload=TONE * (rest // 20)), now)


def result(p: Phone, until: float) -> CallResult:
    p.run_until(until)
    pl = p.playout
    return CallResult(
        call_sid="CA", stream_sid="MZ", stream_url="", ws_url="", custom_parameters={},
        connected=True, error=None, media_t0=0.0, ended_at=until, frames_sent=0,
        sent_ulaw=b"", timeline=(), media_arrivals=tuple(p.arrivals), heard=pl.heard(),
        server_marks=tuple(pl.marks), echoes=tuple(pl.echoes), clears=tuple(pl.clears),
        speech=(), hangup_by=None, hangup_at=None,
        clear_sent=tuple(c.sent_at for c in p.clear_timings),
    )


def test_truth_is_what_had_played_when_the_clear_reached_twilio() -> None:
    p = new_phone(down=30.0)
    send_item(p, "r1", "i1", 2000, 0.0)  # plays from 0.030
    p.receive(ServerMessage("clear"), 1.0)  # reaches Twilio at 1.030: 1000 ms played
    [truth] = clear_truths(result(p, 3.0), {"i1": 980})
    [cut] = truth.items
    assert (cut.item_id, cut.played_ms, cut.received_ms, cut.dropped_ms) == ("i1", 1000, 2000, 1000)
    assert cut.error_ms == -20.0  # a server that forgot the downlink transit is 20 ms short
    assert (truth.sent_at, truth.reached_at) == (1.0, 1.03)


def test_an_item_that_had_fully_played_is_not_judged_the_interrupted_one_is() -> None:
    p = new_phone(down=0.0)
    send_item(p, "r1", "i1", 400, 0.0)
    send_item(p, "r1", "i2", 1000, 0.0)
    p.receive(ServerMessage("clear"), 0.9)  # i1 done at 0.4, i2 500 ms in
    [truth] = clear_truths(result(p, 2.0), {"i2": 500})
    assert [(c.item_id, c.played_ms, c.error_ms) for c in truth.items] == [("i2", 500, 0.0)]


def test_unmarked_audio_before_a_clear_belongs_to_the_last_marked_item() -> None:
    p = new_phone(down=0.0)
    send_item(p, "r1", "i1", 600, 0.0, end=False)  # marks at 200 and 400, 200 ms unmarked
    p.receive(ServerMessage("clear"), 0.5)
    [truth] = clear_truths(result(p, 1.0), {})
    [cut] = truth.items
    assert (cut.item_id, cut.played_ms, cut.dropped_ms, cut.audio_end_ms) == ("i1", 500, 100, None)
    assert cut.error_ms is None  # interrupted, never truncated: reported, not hidden


def test_each_clear_judges_only_the_audio_sent_since_the_one_before() -> None:
    p = new_phone(down=0.0)
    send_item(p, "r1", "i1", 1000, 0.0)
    p.receive(ServerMessage("clear"), 0.3)
    send_item(p, "r2", "i2", 1000, 0.5)
    p.receive(ServerMessage("clear"), 0.9)
    first, second = clear_truths(result(p, 2.0), {"i1": 300, "i2": 360})
    assert [(c.item_id, c.played_ms) for c in first.items] == [("i1", 300)]
    assert [(c.item_id, c.played_ms, c.error_ms) for c in second.items] == [("i2", 400, -40.0)]


def test_a_clear_in_an_underrun_still_judges_the_item_the_server_truncated() -> None:
    p = new_phone(down=0.0)
    send_item(p, "r1", "i1", 200, 0.0, end=False)
    p.receive(ServerMessage("clear"), 0.5)  # the buffer ran dry at 0.2: nothing dropped
    [truth] = clear_truths(result(p, 1.0), {"i1": 200})
    assert [(c.played_ms, c.dropped_ms, c.error_ms) for c in truth.items] == [(200, 0, 0.0)]


def test_the_first_syllable_is_found_by_its_bytes_in_what_the_backend_received() -> None:
    rng = np.random.default_rng(2)
    sent = rng.integers(0, 255, 160 * 50, dtype=np.uint8).tobytes()
    appends = [(1.0, sent[:160 * 10]), (1.1, sent[160 * 30 : 160 * 40]), (1.2, sent[160 * 40 :])]
    assert received_at(sent, 35, appends) == 1.1
    assert received_at(sent, 40, appends) == 1.2
    assert received_at(sent, 20, appends) is None  # held back and never forwarded
    assert forwards_as_sent(sent, appends)
    assert not forwards_as_sent(sent, [(1.0, bytes(255 - b for b in sent))])
