import pytest

from mediasrv.errors import ConfigError
from mediasrv.settings import load_settings


def test_defaults_follow_the_contract():
    s = load_settings({})
    assert (s.host, s.port, s.drain_timeout_ms, s.turn_detection) == ("0.0.0.0", 5050, 500, "local")
    assert s.local_backend and s.realtime_url() == ""
    assert "stop immediately" in s.instructions


def test_realtime_url_is_built_from_the_model():
    s = load_settings({"OPENAI_API_KEY": "sk-x", "OPENAI_REALTIME_MODEL": "gpt-realtime-2.1"})
    assert s.realtime_url() == "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"
    assert not s.local_backend


@pytest.mark.parametrize(("env", "name"), [
    ({"PORT": "http"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"DRAIN_TIMEOUT_MS": "-1"}, "DRAIN_TIMEOUT_MS"),
    ({"MIN_UTTERANCE_MS": "700"}, "MIN_UTTERANCE_MS"),
    ({"TURN_DETECTION": "magic"}, "TURN_DETECTION"),
    ({"PUBLIC_URL": "example.com"}, "PUBLIC_URL"),
    ({"OPENAI_REALTIME_URL": "http://x"}, "OPENAI_REALTIME_URL"),
])
def test_bad_values_fail_naming_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_secrets_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as info:
        load_settings({"PORT": "x", "OPENAI_API_KEY": "sk-secret"})
    assert "sk-secret" not in str(info.value)


def test_empty_greeting_disables_it():
    assert load_settings({"GREETING": ""}).greeting == ""


def test_stream_url_uses_public_url_host():
    s = load_settings({"PUBLIC_URL": "https://bridge.example.com"})
    assert s.stream_url("internal:5050") == "wss://bridge.example.com/media"


def test_echo_cancel_is_on_by_default_and_parsed_as_a_boolean():
    assert load_settings({}).echo_cancel is True
    assert load_settings({"ECHO_CANCEL": "false"}).echo_cancel is False
    with pytest.raises(ConfigError, match="ECHO_CANCEL"):
        load_settings({"ECHO_CANCEL": "maybe"})
