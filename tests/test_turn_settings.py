"""The end-of-turn settings: TURN_MODEL and its silences in local mode, OpenAI's
semantic_vad in server mode; read once, checked together, wired into each call."""

from __future__ import annotations

import pytest

from mediasrv.errors import ConfigError
from mediasrv.web.settings import load_settings
from mediasrv.web.wiring import call_config, realtime_config, turn_checks

KEY = {"OPENAI_API_KEY": "sk-test"}


def test_local_calls_use_the_model_by_default_with_the_measured_policy() -> None:
    end_turn = call_config(load_settings({})).turn.end_turn
    assert end_turn is not None
    assert (end_turn.check_silence_ms, end_turn.max_silence_ms, end_turn.threshold) == (
        200, 1500, 0.9)
    assert end_turn.fallback_silence_ms == 500  # END_SILENCE_MS, when a check cannot run


def test_turn_model_off_ends_every_turn_at_the_fixed_silence() -> None:
    s = load_settings({"TURN_MODEL": "off", "END_SILENCE_MS": "700"})
    turn = call_config(s).turn
    assert turn.end_turn is None and turn.end_silence_ms == 700
    assert turn_checks(s) is None


def test_server_mode_never_runs_our_model() -> None:
    s = load_settings({"TURN_DETECTION": "server"})
    assert call_config(s).turn.end_turn is None
    assert turn_checks(s) is None


def test_the_model_settings_reach_the_policy() -> None:
    s = load_settings({"TURN_CHECK_SILENCE_MS": "300", "TURN_MAX_SILENCE_MS": "2000",
                       "TURN_MODEL_THRESHOLD": "0.6", "END_SILENCE_MS": "800"})
    end_turn = call_config(s).turn.end_turn
    assert end_turn is not None
    assert (end_turn.check_silence_ms, end_turn.max_silence_ms, end_turn.threshold,
            end_turn.fallback_silence_ms) == (300, 2000, 0.6, 800)


def test_a_check_silence_not_below_the_cap_is_refused_in_words() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"TURN_CHECK_SILENCE_MS": "800", "TURN_MAX_SILENCE_MS": "800"})
    assert str(info.value).startswith(
        "TURN_CHECK_SILENCE_MS (800) must be below TURN_MAX_SILENCE_MS (800)")


@pytest.mark.parametrize(("env", "message"), [
    ({"TURN_MODEL": "whisper"}, "TURN_MODEL: 'whisper' is not one of smart-turn, off"),
    ({"TURN_MODEL_THRESHOLD": "1"}, "TURN_MODEL_THRESHOLD: '1' is out of range (0.01 to 0.99)"),
    ({"TURN_CHECK_SILENCE_MS": "60"},
     "TURN_CHECK_SILENCE_MS: '60' is out of range (100 to 1000)"),
    ({"SERVER_VAD_EAGERNESS": "eager"},
     "SERVER_VAD_EAGERNESS: 'eager' is not one of low, medium, high, auto"),
])
def test_bad_turn_values_are_explained_in_words(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value) == message


def test_server_mode_can_ask_openai_for_semantic_vad_with_its_eagerness() -> None:
    s = load_settings({**KEY, "TURN_DETECTION": "server", "SERVER_VAD_TYPE": "semantic_vad",
                       "SERVER_VAD_EAGERNESS": "low"})
    # we still decide what gets answered (our VAD must have heard the caller): no
    # automatic responses, no automatic interruptions
    assert realtime_config(s).turn_detection == {
        "type": "semantic_vad", "eagerness": "low", "create_response": False,
        "interrupt_response": False}


def test_server_mode_keeps_server_vad_by_default() -> None:
    s = load_settings({"TURN_DETECTION": "server"})
    turn = realtime_config(s).turn_detection
    assert turn is not None and turn["type"] == "server_vad"


def test_local_mode_asks_openai_for_no_turn_detection() -> None:
    s = load_settings({"SERVER_VAD_TYPE": "semantic_vad"})
    assert realtime_config(s).turn_detection is None


def test_semantic_vad_with_the_built_in_backend_is_refused_in_words() -> None:
    with pytest.raises(ConfigError, match="SERVER_VAD_TYPE=semantic_vad needs OpenAI"):
        load_settings({"TURN_DETECTION": "server", "SERVER_VAD_TYPE": "semantic_vad"})


def test_semantic_vad_with_the_cascade_is_refused_in_words() -> None:
    with pytest.raises(ConfigError, match="with AGENT_BACKEND=cascade, server turns are Deepgram"):
        load_settings({**KEY, "AGENT_BACKEND": "cascade", "TURN_DETECTION": "server",
                       "SERVER_VAD_TYPE": "semantic_vad"})


def test_the_early_check_is_at_80_ms_by_default_and_off_at_0() -> None:
    default = call_config(load_settings({})).turn.end_turn
    off = call_config(load_settings({"TURN_EARLY_CHECK_MS": "0"})).turn.end_turn
    on = call_config(load_settings({"TURN_EARLY_CHECK_MS": "120"})).turn.end_turn
    assert default is not None and default.early_check_ms == 80
    assert off is not None and off.early_check_ms is None
    assert on is not None and on.early_check_ms == 120


def test_the_early_check_must_come_before_the_check_silence() -> None:
    with pytest.raises(ConfigError, match="TURN_EARLY_CHECK_MS"):
        load_settings({"TURN_EARLY_CHECK_MS": "200", "TURN_CHECK_SILENCE_MS": "200"})
