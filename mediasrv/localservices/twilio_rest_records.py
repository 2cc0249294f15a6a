"""The Twilio REST stand-in's records: calls, recordings, their JSON and callbacks. Pure.

Resource JSON follows the fields twilio-python 9.13.0 reads (`CallInstance`,
`RecordingInstance`); callback fields follow PROTOCOLS-2 6 (status callbacks: CallSid,
CallStatus, CallDuration, Timestamp, SequenceNumber; AMD: AnsweredBy,
MachineDetectionDuration) plus AccountSid, From, To, Direction and ApiVersion, which every
Twilio voice request carries. `read_twiml` reads a TwiML document into verbs. Also the
value objects the account answers with (`Reply`, the `Effect`s) and `Callee`, how a
dialled number behaves.

Layer: stand-ins.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from mediasrv.errors import ConfigError

from .twilio_rest_wire import API_VERSION, MAX_TWIML, Form, JsonObj, TwilioError, rfc2822

TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
RECORDING_EVENTS = ("in-progress", "completed", "absent")
# TwiML verbs the stand-in runs; others are recorded as not simulated and skipped.
VERBS = frozenset({"Connect", "Dial", "Hangup", "Say", "Play", "Pause"})

AMD_RESULTS = ("human", "machine_start", "machine_end_beep", "machine_end_silence",
               "machine_end_other", "fax", "unknown")
OUTCOMES = ("answer", "busy", "no-answer", "failed")


@dataclass(frozen=True)
class Callee:
    """How a dialled number behaves: answered (by whom) or not, and how fast."""

    answered_by: str = "human"
    outcome: str = "answer"
    ring_s: float = 1.0
    amd_s: float = 2.0  # detection time; Twilio's DetectMessageEnd waits for the beep

    def __post_init__(self) -> None:
        if self.answered_by not in AMD_RESULTS or self.outcome not in OUTCOMES:
            raise ConfigError(f"callee: answered_by one of {AMD_RESULTS}, outcome one of "
                              f"{OUTCOMES}")
        if self.ring_s < 0 or self.amd_s < 0:
            raise ConfigError("callee: ring_s and amd_s must be >= 0")


@dataclass(frozen=True)
class Webhook:
    kind: str  # status | amd | recording | voice
    call_sid: str
    url: str
    method: str
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RunTwiml:
    call_sid: str
    twiml: str


@dataclass(frozen=True)
class StopStream:
    call_sid: str
    reason: str


Effect = Webhook | RunTwiml | StopStream


@dataclass(frozen=True)
class Reply:
    status: int
    body: JsonObj


CREATE_KEYS = frozenset({
    "To", "From", "Url", "Method", "Twiml", "StatusCallback", "StatusCallbackEvent",
    "StatusCallbackMethod", "MachineDetection", "MachineDetectionTimeout", "AsyncAmd",
    "AsyncAmdStatusCallback", "AsyncAmdStatusCallbackMethod", "Record", "RecordingChannels",
    "RecordingTrack", "RecordingStatusCallback", "RecordingStatusCallbackEvent",
    "RecordingStatusCallbackMethod", "Trim", "Timeout", "TimeLimit", "CallerId",
    "FallbackUrl", "FallbackMethod", "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold", "MachineDetectionSilenceTimeout"})
UPDATE_KEYS = frozenset({"Url", "Method", "Status", "Twiml", "FallbackUrl", "FallbackMethod",
                         "StatusCallback", "StatusCallbackMethod", "TimeLimit"})
RECORDING_KEYS = frozenset({"RecordingStatusCallback", "RecordingStatusCallbackEvent",
                            "RecordingStatusCallbackMethod", "Trim", "RecordingChannels",
                            "RecordingTrack", "RecordingConfigurationId"})


@dataclass
class Callback:
    """Where and how a resource's callbacks go, and which events are wanted."""

    url: str = ""
    method: str = "POST"
    events: frozenset[str] = frozenset()


@dataclass
class CallRecord:
    sid: str
    account_sid: str
    to: str
    from_: str
    direction: str  # inbound | outbound-api
    status: str
    created: float  # unix seconds, for the resource's dates
    started: float | None = None
    ended: float | None = None
    answered_by: str | None = None
    status_callback: Callback = field(default_factory=Callback)
    amd: str = ""  # "", Enable or DetectMessageEnd
    amd_callback: Callback | None = None  # set = asynchronous AMD
    url: str = ""
    method: str = "POST"
    twiml: str = ""
    record: bool = False
    recording_options: Form = field(default_factory=dict)
    sequence: int = 0
    stream_live: bool = False  # a <Connect><Stream> is running: a media party holds it
    after_stream: tuple[ET.Element, ...] = ()  # verbs after </Connect>
    dialed: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.status not in TERMINAL

    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"

    def json(self) -> JsonObj:
        duration = None
        if self.started is not None and self.ended is not None:
            duration = str(round(self.ended - self.started))
        base = self.uri()[: -len(".json")]
        return {
            "sid": self.sid, "account_sid": self.account_sid, "parent_call_sid": None,
            "date_created": rfc2822(self.created), "date_updated": rfc2822(self.created),
            "to": self.to, "to_formatted": self.to, "from": self.from_,
            "from_formatted": self.from_, "phone_number_sid": None, "status": self.status,
            "start_time": rfc2822(self.started), "end_time": rfc2822(self.ended),
            "duration": duration, "price": None, "price_unit": "USD",
            "direction": self.direction, "answered_by": self.answered_by,
            "api_version": API_VERSION, "forwarded_from": None, "group_sid": None,
            "caller_name": None, "queue_time": "0", "trunk_sid": None, "uri": self.uri(),
            "subresource_uris": {"recordings": f"{base}/Recordings.json",
                                 "notifications": f"{base}/Notifications.json"},
        }

    def params(self) -> dict[str, str]:
        """Return the fields every request about this call carries."""
        return {"AccountSid": self.account_sid, "CallSid": self.sid, "From": self.from_,
                "To": self.to, "Caller": self.from_, "Called": self.to,
                "Direction": self.direction, "ApiVersion": API_VERSION,
                "CallStatus": self.status}

    def status_params(self, unix: float) -> dict[str, str]:
        self.sequence += 1
        params = {**self.params(), "Timestamp": rfc2822(unix) or "",
                  "SequenceNumber": str(self.sequence - 1),
                  "CallbackSource": "call-progress-events"}
        if self.ended is not None and self.started is not None:
            params["CallDuration"] = str(round(self.ended - self.started))
        if self.answered_by:
            params["AnsweredBy"] = self.answered_by
        return params


@dataclass
class RecordingRecord:
    sid: str
    call: CallRecord
    status: str  # in-progress | paused | stopped | completed
    channels: int
    track: str
    source: str
    started: float
    callback: Callback
    ended: float | None = None

    def uri(self) -> str:
        return (f"/{API_VERSION}/Accounts/{self.call.account_sid}/Calls/{self.call.sid}"
                f"/Recordings/{self.sid}.json")

    def json(self) -> JsonObj:
        duration = None if self.ended is None else str(round(self.ended - self.started))
        return {
            "account_sid": self.call.account_sid, "api_version": API_VERSION,
            "call_sid": self.call.sid, "conference_sid": None,
            "date_created": rfc2822(self.started), "date_updated": rfc2822(self.started),
            "start_time": rfc2822(self.started), "duration": duration, "sid": self.sid,
            "price": None, "price_unit": "USD", "uri": self.uri(),
            "encryption_details": None, "status": self.status, "channels": self.channels,
            "source": self.source, "error_code": None, "track": self.track,
        }

    def callback_params(self) -> dict[str, str]:
        account = self.call.account_sid
        params = {"AccountSid": account, "CallSid": self.call.sid, "RecordingSid": self.sid,
                  "RecordingUrl": f"https://api.twilio.com/{API_VERSION}/Accounts/{account}"
                                  f"/Recordings/{self.sid}",
                  "RecordingStatus": self.status, "RecordingChannels": str(self.channels),
                  "RecordingSource": self.source, "RecordingTrack": self.track,
                  "RecordingStartTime": rfc2822(self.started) or ""}
        if self.ended is not None:
            params["RecordingDuration"] = str(round(self.ended - self.started))
        return params


def read_twiml(text: str, inline: bool) -> tuple[ET.Element, ...]:
    """Return the verbs of a TwiML document; raise TwilioError if it is not one."""
    if inline and len(text) > MAX_TWIML:
        raise TwilioError(400, 32018, f"Twiml is {len(text)} characters, at most {MAX_TWIML}")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TwilioError(400, 12100, f"Document parse failure: {exc}") from None
    if root.tag != "Response":
        raise TwilioError(400, 12100, f"Document parse failure: the root is <{root.tag}>, "
                                      "not <Response>")
    return tuple(root)
