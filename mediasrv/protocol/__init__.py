"""Wire formats: the Twilio Media Stream and the OpenAI Realtime API. Data in, data out.

Layer: protocol. Parsing takes `str | bytes` and returns a frozen dataclass (or raises a
ProtocolError saying why the message is dropped); building returns a `str`. No I/O, no
threads, no time here: sockets live in mediasrv.backends and mediasrv.call. Modules
here may import the base modules (audio, clock, errors) and nothing else of mediasrv.
"""
