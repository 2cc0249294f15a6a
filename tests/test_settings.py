import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from mediasrv.errors import ConfigError
from mediasrv.web.settings import Settings, limits, load_settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


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


def test_empty_transcription_model_disables_transcription():
    assert load_settings({"INPUT_TRANSCRIPTION_MODEL": ""}).input_transcription_model == ""
    assert load_settings({"OPENAI_VOICE": ""}).openai_voice == "marin"  # others keep defaults


def test_stream_url_uses_public_url_host():
    s = load_settings({"PUBLIC_URL": "https://bridge.example.com"})
    assert s.stream_url("internal:5050") == "wss://bridge.example.com/media"


def test_echo_cancel_is_on_by_default_and_parsed_as_a_boolean():
    assert load_settings({}).echo_cancel is True
    assert load_settings({"ECHO_CANCEL": "false"}).echo_cancel is False
    with pytest.raises(ConfigError, match="ECHO_CANCEL"):
        load_settings({"ECHO_CANCEL": "maybe"})


@pytest.mark.parametrize(("env", "message"), [
    ({"PORT": "abc"}, "PORT: 'abc' is not a whole number"),
    ({"PORT": "70000"}, "PORT: '70000' is out of range (1 to 65535)"),
    ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY: '0' is out of range (1 to 64)"),
    ({"MAX_CALLS": "2.5"}, "MAX_CALLS: '2.5' is not a whole number"),
    ({"SILENCE_TIMEOUT_S": "soon"}, "SILENCE_TIMEOUT_S: 'soon' is not a number"),
    ({"ECHO_ERL_DB": "nan"}, "ECHO_ERL_DB: 'nan' is out of range (0 to 60)"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: 'xml' is not one of text, json"),
    ({"ECHO_CANCEL": "maybe"}, "ECHO_CANCEL: 'maybe' is not true or false"),
])
def test_bad_values_are_explained_in_words(env, message):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value) == message


def test_web_concurrency_is_a_setting():
    assert load_settings({}).web_concurrency == 1
    assert load_settings({"WEB_CONCURRENCY": "3"}).web_concurrency == 3


def test_readme_table_lists_every_variable_with_its_range():
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    names = [f.name.upper() for f in fields(Settings)]  # every setting is an env variable
    assert set(rows) == set(names)
    for name in names:
        assert rows[name][2] == limits(name), name


def test_gunicorn_config_names_the_bad_variable_without_a_traceback():
    env = {**os.environ, "PORT": "abc"}
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "mediasrv: configuration error: PORT: 'abc' is not a whole number"
