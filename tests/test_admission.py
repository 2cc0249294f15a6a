"""The admission ledger (pure): /voice reserves, the stream claims, slots are never
promised twice, and a reservation nobody claims lapses."""

from __future__ import annotations

from mediasrv.web.admission import Ledger

TTL = 10.0


def ledger(capacity: int = 1) -> Ledger:
    return Ledger(capacity, ttl_s=TTL)


def test_a_reservation_holds_the_slot_against_a_second_webhook() -> None:
    led, now = ledger(1), 0.0
    assert led.reserve("CA1", now, draining=False) is None
    why = led.reserve("CA2", now, draining=False)
    assert why is not None and why.startswith("at capacity: 0 calls, 1 reserved")


def test_the_stream_of_a_reserved_call_is_admitted_and_keeps_its_one_slot() -> None:
    led, now = ledger(1), 0.0
    led.reserve("CA1", now, draining=False)
    assert led.open("stream-1", now, draining=False) is None
    assert led.usage(now, draining=False).held == 1  # not counted as reserved and opening
    assert led.claim("stream-1", "CA1", now, draining=False) is None
    usage = led.usage(now, draining=False)
    assert (usage.calls, usage.reserved, usage.opening, usage.free) == (1, 0, 0, 0)


def test_an_unreserved_stream_cannot_take_a_reserved_calls_slot() -> None:
    led, now = ledger(1), 0.0
    led.reserve("CA1", now, draining=False)
    assert led.open("intruder", now, draining=False) is None  # its call sid is unknown yet
    why = led.claim("intruder", "CA9", now, draining=False)
    assert why is not None and "no reservation for this call" in why
    assert led.open("stream-1", now, draining=False) is None  # the reserved call still fits
    assert led.claim("stream-1", "CA1", now, draining=False) is None


def test_an_unreserved_stream_takes_a_free_slot() -> None:
    led, now = ledger(2), 0.0
    led.reserve("CA1", now, draining=False)
    assert led.open("direct", now, draining=False) is None
    assert led.claim("direct", "CA9", now, draining=False) is None
    assert led.usage(now, draining=False).held == 2


def test_a_second_stream_is_refused_at_the_upgrade_when_one_is_already_opening() -> None:
    led, now = ledger(1), 0.0
    led.reserve("CA1", now, draining=False)
    led.open("stream-1", now, draining=False)
    why = led.may_open(now, draining=False)
    assert why is not None and why.startswith("at capacity")


def test_a_reservation_nobody_claims_lapses_after_the_ttl() -> None:
    led, now = ledger(1), 0.0
    led.reserve("CA1", now, draining=False)
    now += TTL - 0.1
    assert led.reserve("CA2", now, draining=False) is not None
    assert led.take_expired() == []
    now += 0.1
    assert led.reserve("CA2", now, draining=False) is None
    assert led.take_expired() == ["CA1"]
    assert led.take_expired() == []  # reported once


def test_a_repeated_webhook_renews_its_reservation_instead_of_taking_another() -> None:
    led, now = ledger(1), 0.0
    led.reserve("CA1", now, draining=False)
    now += TTL - 1.0
    assert led.reserve("CA1", now, draining=False) is None
    now += 2.0  # past the first reservation's end, within the renewed one
    assert led.usage(now, draining=False).reserved == 1


def test_draining_refuses_new_calls_but_honours_reserved_ones() -> None:
    led, now = ledger(2), 0.0
    led.reserve("CA1", now, draining=False)
    assert led.reserve("CA2", now, draining=True) == "draining: no new calls"
    assert led.open("stream-1", now, draining=True) is None
    assert led.open("stream-2", now, draining=True) == "draining: no call reserved"
    assert led.claim("stream-1", "CA1", now, draining=True) is None


def test_an_unreserved_stream_is_refused_at_start_while_draining() -> None:
    led, now = ledger(2), 0.0
    led.reserve("CA1", now, draining=False)
    led.open("stream-x", now, draining=True)
    assert led.claim("stream-x", "CA9", now, draining=True) == (
        "draining: no reservation for this call")


def test_closing_a_call_frees_its_slot_and_closing_twice_is_harmless() -> None:
    led, now = ledger(1), 0.0
    led.open("s", now, draining=False)
    led.claim("s", "CA1", now, draining=False)
    assert led.room(now, draining=False) is not None
    led.close("s")
    led.close("s")
    assert led.room(now, draining=False) is None
    assert led.keys() == []


def test_free_slots_are_zero_while_draining() -> None:
    led = ledger(5)
    assert led.usage(0.0, draining=False).free == 5
    assert led.usage(0.0, draining=True).free == 0
