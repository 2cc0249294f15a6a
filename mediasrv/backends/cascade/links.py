"""The cascade's two sockets (Deepgram, ElevenLabs): which connection is current, and
what a loss costs. Pure: time comes in as `now`.

Layer: backends.

Like the Realtime backend, each service is redialled once in a call; a second loss (or
a redial that fails) is final: the call hears the apology and hangs up. Two losses are
not failures and cost nothing:
- ElevenLabs closing an idle socket (no answer speaking) it has held for
  `IDLE_LIFETIME_S` or more: its inactivity timeout did what it is for; the socket is
  redialled at once so the next answer finds it open;
- anything after the call began to end.

Before the session was ever ready a loss is reported as `ConnectionLost(retrying=True)`
(the call says "one moment"); later ones are repaired without the call's help -- a
Deepgram redial loses no more than the audio in flight -- and only giving up is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mediasrv.backends import base
from mediasrv.backends.cascade.actions import STT, TTS, Dial

IDLE_LIFETIME_S = 10.0  # an idle socket that lived this long was closed for inactivity


@dataclass
class _Link:
    serial: int = 0
    up: bool = False
    up_since: float = 0.0
    retries: int = 1


@dataclass(frozen=True, slots=True)
class Loss:
    """What a lost connection leads to: a redial, and what the call is told (if anything)."""

    redial: Dial | None
    report: base.ConnectionLost | None
    expected: bool  # an idle close: nothing went wrong


@dataclass
class Links:
    """The current connection of each service and its retry budget."""

    _links: dict[str, _Link] = field(default_factory=lambda: {STT: _Link(), TTS: _Link()})
    ready: bool = False  # SessionReady was reported
    gone: bool = False  # ConnectionLost(retrying=False) was reported

    def dial_all(self) -> list[Dial]:
        return [self._dial(service) for service in self._links]

    def is_current(self, service: str, serial: int) -> bool:
        return not self.gone and self._links[service].serial == serial

    def up(self, service: str) -> bool:
        return self._links[service].up

    def down(self) -> list[str]:
        return [name for name, link in self._links.items() if not link.up]

    def opened(self, service: str, serial: int, now: float) -> bool:
        """Record a connection up; True if it is the current one."""
        link = self._links[service]
        if not self.is_current(service, serial):
            return False
        link.up, link.up_since = True, now
        return True

    def becomes_ready(self) -> bool:
        """Tell (once) that every service is up for the first time."""
        if self.ready or self.gone or self.down():
            return False
        self.ready = True
        return True

    def lost(self, service: str, serial: int, reason: str, now: float, *,
             busy: bool) -> Loss | None:
        """Decide what the loss of a connection costs (None: not the current one)."""
        link = self._links[service]
        if not self.is_current(service, serial):
            return None
        was_up, link.up = link.up, False
        if service == TTS and was_up and not busy and now - link.up_since >= IDLE_LIFETIME_S:
            return Loss(self._dial(service), None, expected=True)
        if link.retries > 0:
            link.retries -= 1
            report = None if self.ready else base.ConnectionLost(reason, retrying=True)
            return Loss(self._dial(service), report, expected=False)
        self.gone = True
        return Loss(None, base.ConnectionLost(reason, retrying=False), expected=False)

    def serial(self, service: str) -> int:
        return self._links[service].serial

    def _dial(self, service: str) -> Dial:
        link = self._links[service]
        link.serial += 1
        return Dial(service, link.serial)
