"""The supervisor's one clock, pure: `now` is a local variable and the tests move it."""

from dataclasses import replace

from mediasrv.policy.drain import DrainOutcome
from mediasrv.policy.silence import Action as SilenceAction
from mediasrv.policy.supervisor import (
    TX_FAILURE_GRACE_S,
    DeadAir,
    Drained,
    Silence,
    Snapshot,
    Stalled,
    Superseded,
    Supervisor,
    SupervisorConfig,
    TxFailed,
)

CONFIG = SupervisorConfig(silence_timeout_s=15.0, max_call_s=1800.0, stall_timeout_s=4.0,
                          drain_timeout_s=0.5)
IDLE = Snapshot(live_response=None, queued=0, last_sent_at=None, ai_busy=False,
                wait_reason="", backend_busy=False, connected=True)


def test_an_idle_call_sleeps_until_the_silence_timeout_then_asks():
    sup = Supervisor(CONFIG, started=0.0)
    assert sup.tick(0.0, IDLE) == []
    assert sup.next_deadline() == 15.0
    assert sup.tick(14.99, IDLE) == []
    [action] = sup.tick(15.0, IDLE)
    assert isinstance(action, Silence)
    assert action.decision.action is SilenceAction.ASK_STILL_THERE


def test_a_talking_caller_keeps_the_silence_clock_from_running():
    sup = Supervisor(CONFIG, started=0.0)
    sup.caller_started(1.0)
    assert sup.tick(30.0, IDLE) == []
    sup.caller_stopped(31.0, turn=False)  # skipped, but it was the caller: silence from here
    assert sup.tick(31.0, IDLE) == []
    assert sup.next_deadline() == 46.0


def test_an_utterance_skipped_as_echo_does_not_restart_the_silence_clock():
    sup = Supervisor(CONFIG, started=0.0)
    sup.tick(0.0, IDLE)
    sup.caller_stopped(10.0, turn=False)  # never started: not the caller
    assert sup.next_deadline() == 15.0


def test_drain_ends_when_the_buffer_is_empty():
    sup = Supervisor(CONFIG, started=0.0)
    assert sup.watch_drain("r1", 1.0)
    playing = replace(IDLE, live_response="r1", queued=30, last_sent_at=1.0, ai_busy=True)
    assert sup.tick(1.2, replace(playing, last_sent_at=1.2)) == []
    assert sup.next_deadline() == 1.7  # no frame for 500 ms would end it
    [done] = sup.tick(1.6, replace(playing, queued=0, last_sent_at=1.6))
    assert done == Drained("r1", DrainOutcome.EMPTY, 600)


def test_drain_times_out_when_no_frame_leaves():
    sup = Supervisor(CONFIG, started=0.0)
    sup.watch_drain("r1", 1.0)
    stuck = replace(IDLE, live_response="r1", queued=30, last_sent_at=0.9, ai_busy=True)
    assert sup.tick(1.49, stuck) == []
    assert sup.tick(1.5, stuck) == [Drained("r1", DrainOutcome.TIMEOUT, 500)]


def test_a_response_is_watched_once_and_a_cut_off_one_is_superseded():
    sup = Supervisor(CONFIG, started=0.0)
    assert sup.watch_drain("r1", 1.0)
    assert not sup.watch_drain("r1", 1.1)
    other = replace(IDLE, live_response="r2", queued=10, ai_busy=True)
    assert sup.tick(1.25, other) == [Superseded("r1", 250)]
    assert sup.tick(2.0, other) == []  # gone: never decided again


def test_dead_air_is_reported_once_per_silence_and_reason():
    sup = Supervisor(CONFIG, started=0.0)
    waiting = replace(IDLE, wait_reason="request not answered", backend_busy=True,
                      ai_busy=True)
    assert sup.tick(1.0, waiting) == []
    assert sup.next_deadline() == 3.0
    [dead] = sup.tick(3.0, waiting)
    assert dead == DeadAir(2.0, "request not answered")
    assert sup.tick(3.5, waiting) == []
    [again] = sup.tick(3.6, replace(waiting, wait_reason="no audio yet"))
    assert again.reason == "no audio yet" and sup.dead_air_events == 2


def test_audio_leaving_starts_a_new_silence():
    sup = Supervisor(CONFIG, started=0.0)
    waiting = replace(IDLE, wait_reason="not connected", connected=False)
    sup.tick(1.0, waiting)
    assert sup.tick(3.5, replace(waiting, last_sent_at=2.0)) == []  # "one moment" played
    assert sup.next_deadline() == 4.0


def test_a_caller_mid_utterance_is_not_waiting_for_audio():
    sup = Supervisor(CONFIG, started=0.0)
    sup.caller_started(0.5)
    waiting = replace(IDLE, wait_reason="not connected", connected=False)
    assert sup.tick(1.0, waiting) == [] and sup.tick(5.0, waiting) == []


def test_a_backend_silent_past_the_stall_timeout_is_stalled_once():
    sup = Supervisor(CONFIG, started=0.0)
    busy = replace(IDLE, backend_busy=True, ai_busy=True)
    sup.backend_heard(10.0)
    assert sup.tick(13.9, busy) == []
    assert sup.next_deadline() == 14.0
    [stalled] = [a for a in sup.tick(14.0, busy) if isinstance(a, Stalled)]
    assert "no event for 4 s" in stalled.reason
    assert not any(isinstance(a, Stalled) for a in sup.tick(14.1, busy))


def test_no_stall_while_nothing_is_in_flight_or_the_backend_reconnects():
    sup = Supervisor(CONFIG, started=0.0)
    assert sup.tick(100.0, replace(IDLE, ai_busy=True)) == []
    gone = replace(IDLE, backend_busy=True, connected=False, ai_busy=True)
    assert not any(isinstance(a, Stalled) for a in sup.tick(200.0, gone))


def test_a_failed_send_ends_the_call_after_the_grace():
    sup = Supervisor(CONFIG, started=0.0)
    sup.tx_failed(5.0, "twilio send failed")
    assert sup.next_deadline() == 5.0 + TX_FAILURE_GRACE_S
    assert sup.tick(5.5, IDLE) == []
    assert sup.tick(6.0, IDLE) == [TxFailed("twilio send failed")]


def test_every_deadline_is_decided_when_it_comes():
    # A deadline that is reached must be acted on, or a shell sleeping until it spins.
    sup = Supervisor(CONFIG, started=0.0)
    sup.watch_drain("r1", 0.0)
    snap = replace(IDLE, live_response="r1", queued=5, backend_busy=True, ai_busy=True,
                   wait_reason="no audio yet")
    now = 0.0
    for _ in range(50):
        sup.tick(now, snap)
        deadline = sup.next_deadline()
        assert deadline is not None and deadline > now
        now = deadline
