"""Keypad digits grouped into one caller message. Pure: `now` moves in the test."""

from __future__ import annotations

from mediasrv.callctl.keypad import KeyIgnored, Keypad, KeypadEntry


def press_all(keypad: Keypad, keys: str, now: float, step: float = 0.25) -> list[object]:
    events: list[object] = []
    for key in keys:
        events.extend(keypad.press(key, now))
        now += step
    return events


def test_digits_within_the_inter_digit_timeout_make_one_message_at_the_timeout() -> None:
    keypad = Keypad(inter_digit_s=2.0)
    assert press_all(keypad, "1234", now=10.0) == []
    assert keypad.next_deadline() == 10.75 + 2.0
    assert keypad.tick(12.74) is None
    entry = keypad.tick(12.75)
    assert entry == KeypadEntry("1234", "timeout", 10.0)
    assert entry.caller_message() == "The caller pressed 1 2 3 4"


def test_hash_ends_the_group_at_once_and_is_part_of_the_message() -> None:
    keypad = Keypad(inter_digit_s=2.0)
    events = press_all(keypad, "42#", now=0.0)
    assert [e.caller_message() for e in events if isinstance(e, KeypadEntry)] == \
        ["The caller pressed 4 2 #"]
    assert keypad.next_deadline() is None


def test_a_key_after_the_timeout_first_delivers_the_old_group_then_starts_a_new_one() -> None:
    keypad = Keypad(inter_digit_s=2.0)
    keypad.press("1", 0.0)
    events = keypad.press("2", 5.0)  # tick() was never called in between
    assert events == (KeypadEntry("1", "timeout", 0.0),)
    assert keypad.flush() == KeypadEntry("2", "flush", 5.0)


def test_a_group_ends_at_the_digit_limit() -> None:
    keypad = Keypad(inter_digit_s=2.0, max_digits=4)
    events = press_all(keypad, "123456", now=0.0, step=0.1)
    assert events == [KeypadEntry("1234", "limit", 0.0)]


def test_a_dtmf_value_that_is_not_a_phone_key_is_ignored_with_a_reason() -> None:
    keypad = Keypad()
    (event,) = keypad.press("x", 0.0)
    assert isinstance(event, KeyIgnored) and "not a phone key" in event.reason
    assert keypad.next_deadline() is None


def test_star_and_lowercase_letter_keys_are_accepted() -> None:
    keypad = Keypad()
    press_all(keypad, "*a", now=0.0)
    entry = keypad.flush()
    assert entry is not None and entry.digits == "*A"


def test_flush_with_no_open_group_returns_nothing() -> None:
    assert Keypad().flush() is None
