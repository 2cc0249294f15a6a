"""Transit between the server and Twilio: one direction, pure."""

from __future__ import annotations

from mediasrv.emulator.network import Link


def test_each_message_arrives_its_delay_after_it_left() -> None:
    link: Link[str] = Link(delay_ms=30.0)
    assert link.push("a", 1.000) == 1.030
    assert link.push("b", 1.020) == 1.050
    assert link.pop_due(1.029) == []
    assert link.pop_due(1.049) == [(1.030, "a")]
    assert link.next_due() == 1.050


def test_jitter_delays_messages_but_never_reorders_them() -> None:
    link: Link[int] = Link(delay_ms=10.0, jitter_ms=40.0, seed=3)
    dues = [link.push(i, i * 0.005) for i in range(200)]
    assert dues == sorted(dues)
    assert all(due >= i * 0.005 + 0.010 for i, due in enumerate(dues))
    assert max(due - i * 0.005 for i, due in enumerate(dues)) > 0.030  # jitter is there
    assert [item for _, item in link.pop_due(10.0)] == list(range(200))
