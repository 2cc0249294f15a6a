"""What an answering-machine-detection result means for the call (POST /amd).

Layer: web.

`amd_action` reads Twilio's `AnsweredBy` (PROTOCOLS-2 6): a person (or "unknown", rather
than hang up on one) keeps the agent; a machine gets VOICEMAIL_MESSAGE after the beep,
then a hang-up; a fax is hung up on. Apart from rest.py, which acts on it, so that the
app imports the twilio REST client only when it is configured.
"""

from __future__ import annotations

from enum import Enum


class AmdAction(Enum):
    AGENT = "the agent goes on"
    VOICEMAIL = "voicemail after the beep, then hang up"
    HANG_UP = "hang up"


def amd_action(answered_by: str) -> AmdAction:
    """Return what to do with a call answered by `answered_by` (Twilio's AnsweredBy)."""
    if answered_by.startswith("machine"):
        return AmdAction.VOICEMAIL
    if answered_by == "fax":
        return AmdAction.HANG_UP
    return AmdAction.AGENT
