"""The cascade's decisions for one call: what goes to each service and what the call
hears, for greetings, answers, barge-ins and failures. Pure: no sockets, `now` moves
by hand."""

from __future__ import annotations

import json

from mediasrv.backends import base
from mediasrv.backends.cascade import chat_wire, stt_wire, tts_wire
from mediasrv.backends.cascade.actions import (
    STT,
    TTS,
    Action,
    CascadeConfig,
    Dial,
    Emit,
    SendStt,
    SendTts,
    StartChat,
    StopChat,
)
from mediasrv.backends.cascade.pipeline import KEEPALIVE_S, Pipeline

CONFIG = CascadeConfig(chat_model="small-model", instructions="be brief",
                       greeting="Hello there!")
SECOND = 8000


def events(actions: list[Action]) -> list[base.BackendEvent]:
    return [a.event for a in actions if isinstance(a, Emit)]


def tts(actions: list[Action]) -> list[dict[str, object]]:
    return [json.loads(a.text) for a in actions if isinstance(a, SendTts)]


def chats(actions: list[Action]) -> list[StartChat]:
    return [a for a in actions if isinstance(a, StartChat)]


def ready(config: CascadeConfig = CONFIG) -> Pipeline:
    p = Pipeline(config, now=0.0)
    assert p.start() == [Dial(STT, 1), Dial(TTS, 1)]
    p.opened(STT, 1, 0.0)
    assert events(p.opened(TTS, 1, 0.0)) == [base.SessionReady(resumed=False)]
    return p


def asked(p: Pipeline, text: str, now: float = 10.0) -> StartChat:
    """The caller says `text`; the call commits and asks for an answer; return the chat job."""
    p.append(b"\x00" * 2 * SECOND, now)
    assert SendStt(stt_wire.FINALIZE) in p.commit(now)
    assert events(p.request("req_1", "answer", "", now)) == []  # waits for the transcript
    final = stt_wire.Results(text, 0.0, 2.0, True, False, True, 0.1, 1.9)
    actions = p.on_stt(1, final, now + 0.1)
    assert [type(e) for e in events(actions)] == [base.CallerTranscript, base.ResponseCreated]
    [job] = chats(actions)
    return job


def audio(context: str, ms: int, chars: str) -> tts_wire.Audio:
    starts = tuple(float(i * ms // max(1, len(chars))) for i in range(len(chars)))
    return tts_wire.Audio(context, b"\x7f" * 8 * ms, tts_wire.Alignment(tuple(chars), starts))


def test_the_greeting_is_the_greeting_setting_spoken_as_fixed_text() -> None:
    p = ready()
    actions = p.request("req_1", "greeting", "Greet the caller by saying exactly: Hi", 1.0)
    assert events(actions) == [base.ResponseCreated("cascade_resp_1")]
    assert tts(actions) == [
        json.loads(tts_wire.open_context("ctx_1")),
        {"text": "Hello there! ", "context_id": "ctx_1", "flush": True},
        {"context_id": "ctx_1", "close_context": True}]
    assert chats(actions) == []  # no chat model for a fixed prompt
    done = p.on_tts(1, tts_wire.Final("ctx_1"), 2.0)
    assert events(done)[-1] == base.ResponseDone("cascade_resp_1", "completed", "")


def test_an_answer_asks_the_chat_model_with_the_turns_transcript_and_the_history() -> None:
    p = ready()
    job = asked(p, "what time is it")
    body = json.loads(job.body)
    assert body["model"] == "small-model" and body["stream"] is True
    assert body["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "what time is it"}]


def test_tokens_stream_to_the_voice_and_its_audio_comes_back_as_one_item() -> None:
    p = ready()
    job = asked(p, "hi").job
    assert tts(p.on_chat(job, chat_wire.Delta("It is"), 11.0)) == [
        json.loads(tts_wire.open_context("ctx_1")), {"text": "It ", "context_id": "ctx_1"}]
    assert tts(p.on_chat(job, chat_wire.Delta(" noon. Bye"), 11.1)) == [
        {"text": "is noon. ", "context_id": "ctx_1", "flush": True}]

    assert tts(p.on_chat(job, chat_wire.Done(), 11.2)) == [
        {"text": "Bye ", "context_id": "ctx_1", "flush": True},
        {"context_id": "ctx_1", "flush": True}, {"context_id": "ctx_1", "close_context": True}]
    delta = events(p.on_tts(1, audio("ctx_1", 500, "It is noon. Bye"), 11.5))
    assert delta == [base.AudioDelta("cascade_resp_1", "cascade_item_1", 0, b"\x7f" * 4000)]
    assert events(p.on_tts(1, tts_wire.Final("ctx_1"), 12.0)) == [
        base.AudioDone("cascade_resp_1", "cascade_item_1"),
        base.AgentTranscript("cascade_resp_1", "cascade_item_1", "It is noon. Bye"),
        base.ResponseDone("cascade_resp_1", "completed", "")]
    assert p.history.request()[-1] == {"role": "assistant", "content": "It is noon. Bye"}


def test_an_answers_first_clause_is_flushed_so_its_audio_starts_at_once() -> None:
    p = ready()
    job = asked(p, "hi").job
    assert tts(p.on_chat(job, chat_wire.Delta("Sure, I"), 11.0))[-1] == {
        "text": "Sure, ", "context_id": "ctx_1", "flush": True}
    assert tts(p.on_chat(job, chat_wire.Delta(" can, gladly "), 11.1)) == [
        {"text": "I can, gladly ", "context_id": "ctx_1"}]  # later clauses: the schedule


def test_a_barge_in_keeps_only_the_heard_words_and_drops_the_late_audio() -> None:
    p = ready()
    job = asked(p, "tell me a story").job
    p.on_chat(job, chat_wire.Delta("Once upon a time there was "), 11.0)
    p.on_tts(1, audio("ctx_1", 1000, "Once upon a time "), 11.5)
    cut = p.truncate("cascade_item_1", 550)  # "Once upon " had started (59 ms a char)
    assert events(cut) == [base.Truncated("cascade_item_1", 550),
                           base.AgentTranscript("cascade_resp_1", "cascade_item_1", "Once upon")]
    cancel = p.cancel("cascade_resp_1")
    assert StopChat(job) in cancel  # the chat stream is closed
    assert {"context_id": "ctx_1", "close_context": True} in tts(cancel)
    assert events(cancel) == [base.ResponseDone("cascade_resp_1", "cancelled", "barge-in")]
    assert events(p.on_tts(1, audio("ctx_1", 500, "there was "), 12.0)) == []  # late: dropped
    assert p.on_chat(job, chat_wire.Delta("a king"), 12.0) == []
    second = asked(p, "and then", now=20.0)
    assert json.loads(second.body)["messages"][-2:] == [
        {"role": "assistant", "content": "Once upon"}, {"role": "user", "content": "and then"}]


def test_a_truncate_after_the_answer_ended_still_corrects_the_history() -> None:
    p = ready()
    job = asked(p, "hi").job
    p.on_chat(job, chat_wire.Delta("Good morning to you "), 11.0)
    p.on_chat(job, chat_wire.Done(), 11.0)
    p.on_tts(1, audio("ctx_1", 1000, "Good morning to you "), 11.5)
    p.on_tts(1, tts_wire.Final("ctx_1"), 11.6)  # all received; Twilio still plays it
    assert p.history.request()[-1]["content"] == "Good morning to you"
    p.truncate("cascade_item_1", 650)  # 50 ms a char: "Good morning " had started
    assert p.history.request()[-1]["content"] == "Good morning"
    assert p.cancel("cascade_resp_1") == []  # nothing left to cancel


def test_an_answer_nobody_heard_leaves_no_message() -> None:
    p = ready()
    job = asked(p, "hi").job
    p.on_chat(job, chat_wire.Delta("Well "), 11.0)
    p.cancel("cascade_resp_1")  # before any audio came
    assert [m["role"] for m in p.history.request()] == ["system", "user"]


def test_a_turn_without_words_is_refused_by_name_not_answered() -> None:
    p = ready()
    p.append(b"\x00" * SECOND, 10.0)
    p.commit(10.0)
    p.request("req_1", "answer", "", 10.0)
    actions = p.on_stt(1, stt_wire.Results("", 0.0, 1.0, True, False, True, None, None), 10.1)
    assert events(actions) == [base.BackendError("empty_transcript",
                                                 "no words in the caller's turn", "req_1",
                                                 harmless=True)]
    assert chats(actions) == []


def test_a_chat_request_failing_before_any_text_is_asked_once_more_then_given_up() -> None:
    p = ready()
    job = asked(p, "hi").job
    retry = p.chat_ended(job, "HTTP 503 from api", 10.5)
    [again] = chats(retry)
    assert again.job == job + 1 and events(retry) == []
    final = p.chat_ended(again.job, "HTTP 503 from api", 10.6)
    assert events(final) == [base.ConnectionLost("chat: HTTP 503 from api", retrying=False)]
    assert not p.connected


def test_a_chat_stream_failing_mid_answer_ends_the_answer_with_what_was_said() -> None:
    p = ready()
    job = asked(p, "hi").job
    p.on_chat(job, chat_wire.Delta("Sure, let me "), 11.0)
    actions = p.on_chat(job, chat_wire.Failure("server_error: boom"), 11.1)
    assert tts(actions)[-1] == {"context_id": "ctx_1", "close_context": True}
    assert chats(actions) == [] and events(actions) == []
    assert p.connected


def test_elevenlabs_lost_mid_answer_ends_it_where_its_audio_ended_and_is_redialled() -> None:
    p = ready()
    job = asked(p, "hi").job
    p.on_chat(job, chat_wire.Delta("One two three four "), 11.0)
    p.on_tts(1, audio("ctx_1", 400, "One two "), 11.2)
    actions = p.lost(TTS, 1, "elevenlabs: closed 1008 (too many contexts)", 11.3)
    assert StopChat(job) in actions and Dial(TTS, 2) in actions
    assert events(actions) == [base.AudioDone("cascade_resp_1", "cascade_item_1"),
                               base.AgentTranscript("cascade_resp_1", "cascade_item_1",
                                                    "One two"),
                               base.ResponseDone("cascade_resp_1", "failed",
                                                 "elevenlabs lost mid-answer: it ends where "
                                                 "its audio ended")]
    assert p.connected


def test_deepgram_lost_mid_call_is_redialled_without_troubling_the_call() -> None:
    p = ready()
    actions = p.lost(STT, 1, "deepgram: closed 1011", 30.0)
    assert actions == [Dial(STT, 2)]
    assert p.append(b"\x00" * 160, 30.1) == []  # nothing to send it to meanwhile
    p.opened(STT, 2, 30.2)
    assert p.transcripts.timeline.sent_s == 0.0  # a new connection's clock: nothing sent
    assert p.append(b"\x00" * 160, 30.3) == [SendStt(b"\x00" * 160)]
    assert events(p.lost(STT, 2, "deepgram: closed 1011", 40.0)) == [
        base.ConnectionLost("deepgram: closed 1011", retrying=False)]


def test_keepalive_goes_to_deepgram_only_while_no_audio_flows() -> None:
    p = ready()
    p.append(b"\x00" * 160, 10.0)
    assert p.next_deadline() == 10.0 + KEEPALIVE_S
    assert p.tick(10.0 + KEEPALIVE_S - 0.01) == []
    assert p.tick(10.0 + KEEPALIVE_S) == [SendStt(stt_wire.KEEPALIVE)]
    assert p.next_deadline() == 10.0 + 2 * KEEPALIVE_S


def test_what_the_caller_waits_on_names_the_service() -> None:
    p = Pipeline(CONFIG, now=0.0)
    p.start()
    p.opened(STT, 1, 0.0)
    assert p.waiting_for() == "connecting to elevenlabs"
    p.opened(TTS, 1, 0.0)
    p.append(b"\x00" * SECOND, 1.0)
    p.commit(1.0)
    p.request("req_1", "answer", "", 1.0)
    assert p.waiting_for().startswith("deepgram:")
    p.on_stt(1, stt_wire.Results("hi", 0.0, 1.0, True, False, True, 0.1, 0.9), 1.1)
    assert p.waiting_for() == "chat: the first token of small-model"
    p.on_chat(1, chat_wire.Delta("Hello "), 1.3)
    assert p.waiting_for() == "elevenlabs: the first audio of the answer"
    p.on_tts(1, audio("ctx_1", 100, "Hello "), 1.5)
    assert p.waiting_for() == ""


def test_a_stall_waiting_for_the_first_token_stops_the_stream_and_asks_again() -> None:
    p = ready()
    job = asked(p, "hi").job
    actions = p.stalled("stalled: no event for 4 s", 15.0)
    assert StopChat(job) in actions
    assert [c.job for c in chats(actions)] == [job + 1]


def test_a_request_for_another_purpose_carries_its_instructions_to_the_chat_model() -> None:
    p = ready()
    actions = p.request("req_1", "tool_result", "Tell the caller the order shipped.", 5.0)
    [job] = chats(actions)
    assert json.loads(job.body)["messages"][-1] == {
        "role": "system", "content": "Tell the caller the order shipped."}
