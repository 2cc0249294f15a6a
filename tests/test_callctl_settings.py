"""Call-control settings: read once, refused in words naming the variable and the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mediasrv.callctl.tools_file import TransferTarget
from mediasrv.errors import ConfigError
from mediasrv.web.settings import load_settings


def test_call_control_is_off_by_default_apart_from_end_call_and_prewarm() -> None:
    s = load_settings({})
    assert (s.transfer_numbers, s.tools_file, s.record_calls, s.twilio_recording) == \
        ((), (), False, "off")
    assert (s.dtmf_barge_in, s.dtmf_inter_digit_ms, s.prewarm_timeout_s) == (False, 2000, 10.0)


def test_transfer_numbers_and_tools_file_are_read_at_start_up(tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps({"tools": [{
        "name": "look_up_order", "description": "Find an order.",
        "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}},
        "url": "https://tools.example.com/order"}]}))
    s = load_settings({"TRANSFER_NUMBERS": "sales=+15551230001", "TOOLS_FILE": str(tools)})
    assert s.transfer_numbers == (TransferTarget("+15551230001", "sales"),)
    assert [t.name for t in s.tools_file] == ["look_up_order"]


@pytest.mark.parametrize(("env", "message"), [
    ({"TRANSFER_NUMBERS": "sales=555"},
     "TRANSFER_NUMBERS: 'sales=555': the number must be E.164, like +15551230001"),
    ({"TOOLS_FILE": "/no/such/tools.json"},
     "TOOLS_FILE: cannot read '/no/such/tools.json': No such file or directory"),
    ({"TWILIO_CALLER_ID": "5551234"},
     "TWILIO_CALLER_ID: '5551234' is not an E.164 number like +15551230001"),
    ({"TWILIO_RECORDING": "mono"}, "TWILIO_RECORDING: 'mono' is not one of off, dual"),
    ({"DTMF_INTER_DIGIT_MS": "100"},
     "DTMF_INTER_DIGIT_MS: '100' is out of range (300 to 10000)"),
    ({"TWILIO_API_BASE_URL": "api.example.com"},
     "TWILIO_API_BASE_URL: 'api.example.com' is not a URL like https://HOST or http://HOST"),
])
def test_bad_call_control_values_are_explained_in_words(env: dict[str, str],
                                                        message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value) == message
