"""End to end with AGENT_BACKEND=cascade (issue 12's acceptance): the real app, the local
Deepgram, chat and ElevenLabs stand-ins, the emulator, real sockets. The calls of one
test run at once, each on its own server and stand-ins. Times are call times of the
emulator's clock; bounds are generous (loaded machines): they check order, not speed.
"""

from __future__ import annotations

import cascade_e2e as ce
from cascade_e2e import Job, StandIns

from mediasrv.emulator import catalogue as sc
from mediasrv.emulator.line import EchoPath, Line
from mediasrv.emulator.scenarios import Clip, Scenario
from mediasrv.emulator.truth import clear_truths
from mediasrv.localservices import ChatOptions, DeepgramOptions, ElevenLabsOptions, Fault
from mediasrv.localservices.chat_stream import Pace

GREETING = "Hello! How can I help you today?"  # the GREETING setting's default
DEAD_AIR_S = 2.0


def two_utterances(name: str, duration: float = 18.0) -> Scenario:
    return Scenario(name, "two sentences, each after the AI finished",
                    clips=(Clip(sc.CALLER, 4.0), Clip(sc.HELLO, 12.0)), duration=duration)


def answered_after(r: ce.CascadeOutcome) -> list[tuple[float, float]]:
    """Return (end of each sentence, the answer created after it)."""
    answers = r.o.answers()
    return [(end, min((a for a in answers if a > end), default=float("inf")))
            for _, end in r.o.speech_times()]


def test_greeting_then_one_answer_per_utterance_in_both_turn_modes() -> None:
    jobs = [Job(two_utterances("two_turns_local")),
            Job(two_utterances("two_turns_server"), mode="server")]
    for r in ce.run(jobs):
        why = r.o.describe()
        assert r.o.purposes == ["greeting", "answer", "answer"], why
        assert r.spoken("ctx_1") == [f" {GREETING} "], why  # exactly the GREETING setting
        greeting = r.o.summary["greeting"]
        assert greeting["start_s"] < 1.5 and not greeting["interrupted"], why
        assert greeting["heard_ms"] >= 0.95 * r.o.summary["heard_ms_per_item"]["cascade_item_1"]
        for end, answer in answered_after(r):
            assert end < answer < end + 4.0, why
        assert r.o.summary["clears"] == [] and r.o.count("[DEAD_AIR]") == 0, why
        latencies = r.pipeline()  # what scripts/cascade_latency.py reports, per answer
        assert len(latencies) == 2 and all(len(x) == 3 for x in latencies), why
        assert [m["content"] for m in r.chat_requests[-1]["messages"] if m["role"] == "user"] \
            == ["Yes I would like to check on my order please.", "What time is it."], why


def test_speech_2_s_or_more_apart_never_merges_into_one_turn() -> None:
    # A syllable too short to be a turn, 3 s of silence, then a sentence: Deepgram
    # transcribes both; the answer's turn holds the sentence only.
    scenario = Scenario("gap_rule", "a click of speech, 3 s, then a sentence",
                        clips=(Clip(sc.WEASELS, 3.5, length=0.25), Clip(sc.CALLER, 0, gap=3.0)),
                        duration=12.0)
    [r] = ce.run([Job(scenario, standins=StandIns(transcripts=("uh", "what time is it")))])
    why = r.o.describe()
    assert r.o.purposes == ["greeting", "answer"], why
    assert r.o.count("[UTT] SKIPPED: too_short") == 1, why
    [request] = r.chat_requests
    assert request["messages"][-1] == {"role": "user", "content": "What time is it."}, why
    assert r.o.count("'Uh.' dropped: 2 s or more before") == 1, why


def barge_in_mid_answer(name: str, at: float) -> Scenario:
    # The answer to the first sentence plays ~5.5 s from ~6 s; the caller cuts in at `at`.
    return Scenario(name, "a question, then talking over the answer (10 dB ERL echo)",
                    clips=(Clip(sc.HELLO, 3.5), Clip(sc.WEASELS, at)),
                    line=Line(echo=EchoPath(sc.ECHO_DELAY_MS, 10.0), hiss_dbov=None),
                    duration=17.0)


def test_barge_in_mid_answer_clears_and_the_next_request_holds_only_the_heard_words() -> None:
    # Once with the answer fully generated when the caller cuts in; once still streaming
    # from a slow chat model (6 tokens/s: its first clause plays at once, the rest comes
    # ~2.5 s later), so the chat stream and the voice context are closed too.
    slow = ChatOptions(pace=Pace(ttft_s=0.2, tokens_per_s=6.0))
    transcripts = (ce.ANSWER, "stop please")
    jobs = [Job(barge_in_mid_answer("barge_in_generated", 8.0),
                standins=StandIns(transcripts=transcripts)),
            Job(barge_in_mid_answer("barge_in_streaming", 7.0),
                standins=StandIns(transcripts=transcripts, chat=slow))]
    for r in ce.run(jobs):
        why = r.o.describe()
        [barge] = r.o.barge_ins()
        streaming = r.job.scenario.name == "barge_in_streaming"
        assert barge.detail == f"response=cascade_resp_2 cancel={streaming}", why
        [clear] = r.o.summary["clears"]
        assert clear["heard_after_ms"] == 0.0, why  # nothing of the cut answer after it
        [truth] = clear_truths(r.o.result, {})
        cut = [c.played_ms for c in truth.items if c.item_id == "cascade_item_2"]
        # Not in the clear's truth: all its audio sent so far had played (a pause in it).
        played = cut[0] if cut else r.o.summary["heard_ms_per_item"]["cascade_item_2"]
        every, heard = ce.words_heard(r.spoken("ctx_2"), played)
        cut_request = r.chat_requests[-1]["messages"]
        assert cut_request[-1] == {"role": "user", "content": "Stop please."}, why
        history = cut_request[-2]["content"].split()
        assert ce.plain(history) == ce.plain(every[: len(history)]), f"{history}\n{why}"
        assert abs(len(history) - len(heard)) <= 1, f"{history} vs {heard}\n{why}"
        assert r.o.purposes == ["greeting", "answer", "answer"], why
        assert (r.chat_counts.get("streams_closed_by_client", 0) == 1) == streaming, why


def no_answer_scenarios() -> list[Scenario]:
    music = Scenario("music_then_silence", "music on hold from the greeting on",
                     clips=(Clip("music/moh_manolo_camp-morning_coffee_0-30s.wav", 0.5,
                                 length=12.0),),
                     duration=20.0, overrides={"silence_timeout_s": 2.0})
    return [*(sc.echo_only(erl) for erl in sc.ECHO_ERLS), music, sc.silent_caller()]


def test_echo_music_and_silence_get_no_answer_then_the_idle_prompt_goodbye_and_hang_up() -> None:
    for r in ce.run([Job(s) for s in no_answer_scenarios()]):
        why = r.o.describe()
        assert r.o.purposes == ["greeting", "idle_prompt", "goodbye"], why
        assert r.o.summary["clears"] == [] and r.o.barge_ins() == [], why
        assert r.chat_requests == [], why  # nothing ever reached the chat model
        assert r.o.count("[BACKEND]") == 0, why  # no socket lost in long echo or silence
        assert [g["text"].strip() for g in r.generated[1:]] == \
            ["Are you still there?", "Thanks for calling. Goodbye!"], why
        goodbye = r.o.result.bursts()[-1]
        hangup = r.o.summary["hangup"]
        assert hangup["by"] == "server", why
        assert goodbye.end - 0.05 <= hangup["t_s"] <= goodbye.end + 3.0, why


def test_a_service_dropped_mid_call_recovers_or_apologises_and_hangs_up() -> None:
    drop_stt = StandIns(deepgram=DeepgramOptions(recognizer="canned",
                                                 fault=Fault("close_mid_stream", after=6)))
    drop_tts = StandIns(tts=ElevenLabsOptions(fault=Fault("close_mid_stream", after=8)))
    refuse_chat = StandIns(chat=ChatOptions(fault=Fault("refuse", status=503)))
    one = Scenario("chat_refused", "one sentence", clips=(Clip(sc.CALLER, 4.0),), duration=16.0)
    stt, tts, chat = ce.run([Job(two_utterances("deepgram_dropped"), standins=drop_stt),
                             Job(two_utterances("elevenlabs_dropped"), standins=drop_tts),
                             Job(one, standins=refuse_chat)])
    for r in (stt, tts, chat):
        assert r.o.count("[DEAD_AIR]") == 0, r.o.describe()
    # Deepgram dropped between the two sentences: redialled; the second is answered.
    why = stt.o.describe()
    assert stt.o.count("[BACKEND] deepgram lost") == 1, why
    assert stt.o.purposes == ["greeting", "answer", "answer"], why
    # ElevenLabs dropped mid-answer: that answer ends where its audio ended; redialled.
    why = tts.o.describe()
    assert tts.o.count("done: failed (elevenlabs lost mid-answer") == 1, why
    assert tts.o.purposes == ["greeting", "answer", "answer"], why
    for end, answer in answered_after(tts):
        assert end < answer < end + DEAD_AIR_S, why
    # The chat model refuses twice: the apology at once, the hang-up once it is heard.
    why = chat.o.describe()
    assert chat.o.count("[AI_TALK] local prompt apology") == 1, why
    [(_, end)] = chat.o.speech_times()
    apology = chat.o.result.bursts()[-1]
    assert end < apology.start < end + DEAD_AIR_S, why
    assert chat.o.summary["hangup"]["by"] == "server", why
    assert apology.end - 0.05 <= chat.o.summary["hangup"]["t_s"] <= apology.end + 3.0, why
