"""The response ledger, pure: requests, deferral, playing, barge-in plans, reconnects."""

from mediasrv.policy.ledger import (
    COMMIT_BEFORE_CALLER_S,
    BargeInPlan,
    Defer,
    Play,
    ResponseLedger,
    Send,
    Superseded,
)


def created(ledger: ResponseLedger, purpose: str, rid: str) -> None:
    assert isinstance(ledger.request(purpose, closing=False), Send)
    assert ledger.on_created(rid) == purpose


def test_requests_are_numbered_and_answers_counted():
    ledger = ResponseLedger()
    first = ledger.request("greeting", closing=False)
    assert first == Send("mediasrv_req_1", "greeting", 0)
    ledger.on_created("r1")
    ledger.on_done("r1")
    assert ledger.request("answer", closing=False) == Send("mediasrv_req_2", "answer", 1)


def test_a_request_while_one_is_in_flight_is_deferred_until_done():
    ledger = ResponseLedger()
    created(ledger, "answer", "r1")
    assert ledger.request("idle_prompt", closing=False) == Defer("idle_prompt")
    assert ledger.request("answer", closing=False) == Defer("answer")  # the later one wins
    done = ledger.on_done("r1")
    assert done.deferred == "answer" and done.live
    assert ledger.on_done("r1").deferred is None  # handed out once


def test_a_deferred_goodbye_is_not_replaced_by_an_answer():
    ledger = ResponseLedger()
    created(ledger, "answer", "r1")
    ledger.request("goodbye", closing=False)
    ledger.request("answer", closing=False)
    assert ledger.on_done("r1").deferred == "goodbye"


def test_nothing_is_requested_while_the_call_closes():
    assert ResponseLedger().request("answer", closing=True) is None


def test_a_refused_request_frees_the_next_one():
    ledger = ResponseLedger()
    sent = ledger.request("answer", closing=False)
    assert isinstance(sent, Send)
    ledger.request_failed("mediasrv_req_99")  # not ours: still pending
    assert isinstance(ledger.request("answer", closing=False), Defer)
    ledger.request_failed(sent.request_id)
    assert isinstance(ledger.request("answer", closing=False), Send)


def test_only_the_playing_response_plays_and_its_first_audio_is_marked():
    ledger = ResponseLedger()
    created(ledger, "greeting", "r1")
    assert ledger.on_delta("r1", 1.0) == Play(True, "greeting")
    assert ledger.on_delta("r1", 1.1) == Play(False, "greeting")
    assert ledger.on_delta("other", 1.2) is None
    assert ledger.first_delta_at("r1") == 1.0


def test_barge_in_cuts_the_playing_response_once_and_drops_a_deferred_answer():
    ledger = ResponseLedger()
    created(ledger, "answer", "r1")
    ledger.request("answer", closing=False)
    assert ledger.barge_in(playing=True) == BargeInPlan("r1", cancel=True, local=False)
    assert ledger.barge_in(playing=True) is None  # already cut
    assert ledger.on_delta("r1", 2.0) is None
    assert ledger.on_done("r1").deferred is None
    assert ledger.barge_ins == 1 and ledger.is_cancelled("r1")


def test_barge_in_after_the_response_is_done_does_not_cancel_it():
    ledger = ResponseLedger()
    created(ledger, "answer", "r1")
    ledger.on_done("r1")
    assert ledger.barge_in(playing=True) == BargeInPlan("r1", cancel=False, local=False)


def test_no_barge_in_when_nothing_plays():
    ledger = ResponseLedger()
    assert ledger.barge_in(playing=True) is None  # no response yet
    created(ledger, "answer", "r1")
    assert ledger.barge_in(playing=False) is None  # all heard already


def test_a_local_prompt_plays_and_is_cut_without_the_backend():
    ledger = ResponseLedger()
    prompt = ledger.local_prompt("one_moment")
    assert prompt.response_id.startswith("local_one_moment_")
    assert ledger.is_live(prompt.response_id)
    assert ledger.barge_in(playing=True) == BargeInPlan(prompt.response_id, False, True)


def test_one_moment_holds_once_until_backend_audio_flows_again():
    ledger = ResponseLedger()
    assert ledger.hold() and not ledger.hold()
    created(ledger, "answer", "r1")
    ledger.on_delta("r1", 1.0)
    assert ledger.hold()


def test_a_lost_session_owes_its_prompt_but_not_an_answer():
    ledger = ResponseLedger()
    assert ledger.on_session_ready().first
    created(ledger, "greeting", "r1")
    ledger.on_lost()
    assert not ledger.in_flight()
    again = ledger.on_session_ready()
    assert not again.first and again.resume == "greeting"
    created(ledger, "answer", "r2")
    ledger.on_lost()
    assert ledger.on_session_ready().resume is None


def test_the_wait_reason_names_what_the_caller_waits_for():
    ledger = ResponseLedger()
    assert ledger.wait_reason(connected=False).startswith("backend not connected")
    assert ledger.wait_reason(connected=True) == ""
    ledger.request("answer", closing=False)
    assert "response.create for answer not answered" in ledger.wait_reason(connected=True)
    ledger.on_created("r1")
    assert ledger.wait_reason(connected=True) == (
        "response r1 active but no audio from the backend yet")


def test_server_commits_take_the_caller_speech_heard_since_the_last_one():
    ledger = ResponseLedger()
    assert not ledger.take_caller_speech(1.0)
    ledger.caller_spoke(1.0)
    ledger.caller_stopped()
    assert ledger.take_caller_speech(2.0) and not ledger.take_caller_speech(2.5)


def test_a_server_commit_inside_the_callers_utterance_leaves_it_to_the_next_commit():
    ledger = ResponseLedger()
    ledger.caller_spoke(1.0)
    assert ledger.take_caller_speech(2.0)  # the server's VAD ended a turn at a pause...
    ledger.caller_stopped()  # ...that our VAD held: the utterance went on past it
    assert ledger.take_caller_speech(3.0)  # the continuation's commit is the caller's too
    assert not ledger.take_caller_speech(3.5)


def test_a_server_commit_as_the_caller_begins_is_not_their_turn():
    # The backend's VAD ended a "turn" on audio before the caller (our echo in the held
    # prefix, then a pause of the greeting) 2 ms after our VAD recognised the caller.
    ledger = ResponseLedger()
    ledger.caller_spoke(1.000)
    assert not ledger.take_caller_speech(1.002)
    assert not ledger.take_caller_speech(1.000 + COMMIT_BEFORE_CALLER_S - 0.01)
    ledger.caller_stopped()  # the caller's turn, committed when it ends, is answered
    assert ledger.take_caller_speech(4.0)


def test_an_answer_not_created_yet_is_cancelled_once_created_when_a_newer_answer_waits():
    ledger = ResponseLedger()
    ledger.request("answer", closing=False)  # the turn ended at a pause...
    ledger.request("answer", closing=False)  # ...the caller went on: a newer answer waits
    assert ledger.supersede() == Superseded(None)
    assert ledger.supersede() is None  # once
    ledger.on_created("r1")
    assert ledger.is_cancelled("r1") and ledger.on_delta("r1", 1.0) is None
    assert ledger.on_done("r1").deferred == "answer"  # one answer, for the whole utterance


def test_an_answer_with_no_audio_yet_is_superseded_by_a_newer_answer():
    ledger = ResponseLedger()
    created(ledger, "answer", "r1")
    ledger.request("answer", closing=False)
    assert ledger.supersede() == Superseded("r1")
    assert ledger.on_delta("r1", 1.0) is None
    assert ledger.on_done("r1").deferred == "answer"


def test_an_answer_whose_audio_began_is_left_to_the_barge_in():
    ledger = ResponseLedger()
    created(ledger, "answer", "r1")
    ledger.on_delta("r1", 1.0)
    ledger.request("answer", closing=False)
    assert ledger.supersede() is None and ledger.is_live("r1")


def test_only_an_answer_behind_an_answer_supersedes_it():
    ledger = ResponseLedger()
    created(ledger, "greeting", "r1")
    ledger.request("answer", closing=False)
    assert ledger.supersede() is None  # the greeting is not an answer to drop
    ledger.on_done("r1")
    created(ledger, "answer", "r2")
    ledger.request("goodbye", closing=False)
    assert ledger.supersede() is None  # a goodbye waits, not an answer
    assert ledger.is_live("r2")

