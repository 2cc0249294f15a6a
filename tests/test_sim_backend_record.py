"""What the local backend keeps for the emulator's judge (`record_sessions`), and its long
greeting (`greeting_prompts`). Pure session core: `now` is a local variable."""

from __future__ import annotations

import base64
import json

import pytest

from mediasrv.audio import BYTES_PER_MS
from mediasrv.errors import ConfigError
from mediasrv.localbackend import BackendOptions, BackendStats
from mediasrv.localbackend.options import PROMPTS_DIR
from mediasrv.localbackend.prompts import PromptBank
from mediasrv.localbackend.session import RealtimeSession

LOUD = bytes([0x10]) * 800  # 100 ms of loud mu-law
QUIET = bytes([0xFF]) * 800


def session(stats: BackendStats, **options: object) -> RealtimeSession:
    return RealtimeSession(BackendOptions(**options), PromptBank.load(PROMPTS_DIR), stats, "m")  # type: ignore[arg-type]


def append(s: RealtimeSession, audio: bytes, now: float) -> list[str]:
    msg = {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    return [e["type"] for e in s.handle(json.dumps(msg), now).events]


def test_a_recording_session_keeps_appends_vad_starts_items_and_truncations() -> None:
    stats = BackendStats()
    s = session(stats, record_sessions=True)
    created = s.handle('{"type": "response.create"}', 1.0).events
    item = next(e["item"]["id"] for e in created if e["type"] == "response.output_item.added")
    now = 2.0
    for _ in range(5):
        append(s, QUIET, now)
        now += 0.1
    started = []
    for _ in range(5):
        started += append(s, LOUD, now)
        now += 0.1
    assert "input_audio_buffer.speech_started" in started
    truncate = {"type": "conversation.item.truncate", "item_id": item, "content_index": 0,
                "audio_end_ms": 40}
    s.handle(json.dumps(truncate), 3.5)
    rec = stats.session_record(item)
    assert rec is not None and rec.items == [item]
    assert [t for t, _ in rec.appends] == pytest.approx([2.0 + 0.1 * k for k in range(10)])
    assert b"".join(a for _, a in rec.appends) == QUIET * 5 + LOUD * 5
    assert len(rec.speech_started) == 1 and 2.5 <= rec.speech_started[0][0] <= 2.95
    assert [(t, i, end) for t, i, end, _ in rec.truncations] == [(3.5, item, 40)]


def test_a_session_keeps_nothing_unless_asked() -> None:
    stats = BackendStats()
    s = session(stats)
    created = s.handle('{"type": "response.create"}', 1.0).events
    item = next(e["item"]["id"] for e in created if e["type"] == "response.output_item.added")
    append(s, LOUD, 2.0)
    assert stats.session_record(item) is None and stats.records == {}


def test_the_greeting_says_the_named_prompts_in_order() -> None:
    bank = PromptBank.load(PROMPTS_DIR)
    names = ("greeting", "long_answer", "apology")
    s = session(BackendStats(), greeting_prompts=names, speed=1000.0)
    meta = '{"type": "response.create", "response": {"metadata": {"purpose": "greeting"}}}'
    events = list(s.handle(meta, 0.0).events) + list(s.tick(100.0).events)
    audio = b"".join(base64.b64decode(e["delta"]) for e in events
                     if e["type"] == "response.output_audio.delta")
    assert audio == b"".join(bank.audio[n] for n in names)
    assert len(audio) / BYTES_PER_MS > 19000  # a ~20 s bot turn


def test_a_greeting_of_unknown_prompts_is_refused() -> None:
    with pytest.raises(ConfigError):
        BackendOptions(greeting_prompts=("greeting", "no_such_prompt"))
