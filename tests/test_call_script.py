"""scripts/call.py refuses, in words, to place a call it cannot place (no network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mediasrv.web.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import call as call_script  # noqa: E402


def test_without_credentials_public_url_or_caller_id_nothing_is_placed() -> None:
    with pytest.raises(call_script.CannotCall) as info:
        call_script.place(call_script.parse_args(["+15551234567"]), load_settings({}))
    why = str(info.value)
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set" in why
    assert "PUBLIC_URL must be set" in why and "give --from or set TWILIO_CALLER_ID" in why


def test_a_number_that_is_not_e164_is_refused() -> None:
    settings = load_settings({}, twilio_account_sid="AC1", twilio_auth_token="t",
                             public_url="https://bridge.example.com")
    with pytest.raises(call_script.CannotCall, match="'5551234' is not an E.164 number"):
        call_script.place(call_script.parse_args(["5551234", "--from", "+15550001111"]),
                          settings)
