"""Keypad: group the caller's DTMF digits into one message for the model. Pure.

Twilio sends one `dtmf` event per key on a bidirectional stream (PROTOCOLS.md 1.2). A
model given "1", "2", "3", "4" as four user turns would answer four times, so digits are
grouped: a group ends when no key follows within the inter-digit timeout, when `#` is
pressed (the usual "end of entry" key on phone menus), or at MAX_DIGITS. The group becomes
one caller message: "The caller pressed 1 2 3 4 #" (digits spaced, so a model reads them
as keys, not as the number 1234).

Time comes in as `now`; the caller asks `next_deadline()` and calls `tick(now)` then.

Layer: call control (pure: no threads, no I/O; `now` as an argument).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Twilio reports the 12 phone keys; A-D exist on some handsets and test tools, and are
# kept rather than dropped because a caller did press them.
KEYS = frozenset("0123456789*#ABCD")
TERMINATOR = "#"
# A bound, not a feature: no phone menu asks for more than a card number's worth of keys,
# and a stuck key (or a flood) must not grow one message without end.
MAX_DIGITS = 32
INTER_DIGIT_S = 2.0  # proposed DTMF_INTER_DIGIT_MS default: slow typists pause ~1 s

EndedBy = Literal["terminator", "timeout", "limit", "flush"]


@dataclass(frozen=True, slots=True)
class KeypadEntry:
    """One group of keys, complete."""

    digits: str
    ended_by: EndedBy
    started_at: float

    def caller_message(self) -> str:
        """Return the text the model gets as the caller's turn."""
        return "The caller pressed " + " ".join(self.digits)


@dataclass(frozen=True, slots=True)
class KeyIgnored:
    """A `dtmf` event that was not a key (logged with this reason and dropped)."""

    reason: str


KeypadEvent = KeypadEntry | KeyIgnored


class Keypad:
    """Collects digits into groups; see the module docstring."""

    def __init__(self, inter_digit_s: float = INTER_DIGIT_S, max_digits: int = MAX_DIGITS
                 ) -> None:
        if inter_digit_s <= 0 or max_digits < 1:
            raise ValueError("inter_digit_s must be > 0 and max_digits >= 1")
        self._inter_digit_s = inter_digit_s
        self._max_digits = max_digits
        self._digits = ""
        self._started_at = 0.0
        self._last_at = 0.0

    def press(self, key: str, now: float) -> tuple[KeypadEvent, ...]:
        """Take one key; return the groups it completed (and a group it timed out)."""
        key = key.strip().upper()
        if len(key) != 1 or key not in KEYS:
            return (KeyIgnored(f"dtmf digit {key[:8]!r} is not a phone key: dropped"),)
        done: list[KeypadEvent] = []
        expired = self.tick(now)  # a group whose timeout passed before this key came
        if expired is not None:
            done.append(expired)
        if not self._digits:
            self._started_at = now
        self._digits += key
        self._last_at = now
        if key == TERMINATOR:
            done.append(self._take("terminator"))
        elif len(self._digits) >= self._max_digits:
            done.append(self._take("limit"))
        return tuple(done)

    def next_deadline(self) -> float | None:
        """Return when the open group times out, or None when no group is open."""
        if not self._digits:
            return None
        return self._last_at + self._inter_digit_s

    def tick(self, now: float) -> KeypadEntry | None:
        """Return the open group if its inter-digit timeout has passed at `now`."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        return self._take("timeout")

    def flush(self) -> KeypadEntry | None:
        """Return the open group now (the call is ending or the model must hear it)."""
        return self._take("flush") if self._digits else None

    def _take(self, ended_by: EndedBy) -> KeypadEntry:
        entry = KeypadEntry(self._digits, ended_by, self._started_at)
        self._digits = ""
        return entry
