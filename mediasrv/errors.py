"""The project's error types.

Layer: base.

    MediasrvError                 base of everything we raise on purpose
    +-- ConfigError               a bad setting; names the variable (start-up only)
    +-- ProtocolError             a peer sent something we cannot use (message dropped)
    |   +-- TwilioProtocolError   ... from the Twilio Media Stream
    |   +-- RealtimeProtocolError ... from the Realtime API socket
    +-- PeerClosed                a socket ended (an outcome, caught at the thread shell)
        +-- ConnectFailed         ... or never opened: says which host, why, what to check

Expected endings of a call (caller hung up, silence timeout) are not errors: they are
reasons carried to the call's end.
"""

from __future__ import annotations


class MediasrvError(Exception):
    """Base class of every error mediasrv raises on purpose."""


class ConfigError(MediasrvError):
    """A setting from the environment is missing or invalid."""


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ConfigError naming `name` unless low <= value <= high."""
    if not low <= value <= high:
        raise ConfigError(f"{name}={value}: must be between {low} and {high}")


class ProtocolError(MediasrvError):
    """A peer sent a message that cannot be used; the message is dropped."""


class TwilioProtocolError(ProtocolError):
    """A Twilio Media Stream message is malformed or out of place."""


class RealtimeProtocolError(ProtocolError):
    """A Realtime API event is malformed."""


class PeerClosed(MediasrvError):
    """A socket was closed by the peer or failed."""


class ConnectFailed(PeerClosed):
    """A connection could not be opened; the message names the host, reason and a hint."""
