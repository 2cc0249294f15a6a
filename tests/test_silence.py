from mediasrv.policy.silence import GOODBYE_GRACE_S, Action, SilencePolicy


def run_until_action(policy, now, busy=False, step=0.02, limit=100.0):
    end = now + limit
    while now < end:
        now += step
        decision = policy.tick(now, ai_busy=busy)
        if decision is not None:
            return decision, now
    return None, now


def test_silence_prompts_then_says_goodbye_then_hangs_up_after_playback():
    policy = SilencePolicy(15.0, 1800.0, started=0.0)
    decision, t = run_until_action(policy, 0.0)
    assert decision.action is Action.ASK_STILL_THERE and abs(t - 15.0) < 0.05
    policy.tick(t + 0.02, ai_busy=True)  # the prompt plays for 2 s
    decision, t2 = run_until_action(policy, t + 2.0)
    assert decision.action is Action.SAY_GOODBYE and abs(t2 - (t + 2.0 + 15.0)) < 0.05
    for _ in range(100):  # goodbye playing: no hang-up yet
        t2 += 0.02
        assert policy.tick(t2, ai_busy=True) is None
    decision = policy.tick(t2 + 0.02, ai_busy=False)
    assert decision.action is Action.HANG_UP and decision.reason == "silence_timeout"


def test_silence_clock_starts_only_when_playback_is_confirmed():
    policy = SilencePolicy(15.0, 1800.0, started=0.0)
    now = 0.0
    while now < 30.0:  # AI busy (audio unheard at Twilio) for 30 s
        now += 0.02
        assert policy.tick(now, ai_busy=True) is None
    decision, t = run_until_action(policy, now)
    assert decision.action is Action.ASK_STILL_THERE and abs(t - 45.0) < 0.05


def test_caller_speech_resets_the_silence_clock():
    policy = SilencePolicy(15.0, 1800.0, started=0.0)
    policy.tick(10.0, ai_busy=False)
    policy.on_caller_speech(10.0)
    assert policy.tick(20.0, ai_busy=False) is None  # clock restarted at 20 s
    assert policy.tick(34.9, ai_busy=False) is None
    assert policy.tick(35.0, ai_busy=False).action is Action.ASK_STILL_THERE


def test_max_call_duration_says_goodbye():
    policy = SilencePolicy(15.0, 60.0, started=0.0)
    decision = policy.tick(60.0, ai_busy=True)
    assert decision.action is Action.SAY_GOODBYE and decision.reason == "max_call_duration"


def test_unconfirmed_goodbye_hangs_up_after_the_grace():
    policy = SilencePolicy(15.0, 1800.0, started=0.0)
    policy.goodbye(1.0, "shutdown")
    assert policy.tick(1.0 + GOODBYE_GRACE_S - 0.1, ai_busy=False) is None
    decision = policy.tick(1.0 + GOODBYE_GRACE_S, ai_busy=False)
    assert decision.action is Action.HANG_UP and "not confirmed" in decision.reason


def test_next_deadline_is_the_silence_timeout_then_the_goodbye_grace():
    policy = SilencePolicy(15.0, 1800.0, started=0.0)
    assert policy.next_deadline() == 15.0  # idle from the start
    policy.tick(1.0, ai_busy=True)
    assert policy.next_deadline() == 1800.0  # busy: only the call's length is due
    policy.tick(2.0, ai_busy=False)
    assert policy.next_deadline() == 17.0
    policy.goodbye(3.0, "shutdown")
    assert policy.next_deadline() == 3.0 + GOODBYE_GRACE_S
