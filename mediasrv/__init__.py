"""mediasrv: a thread-based Twilio Media Streams <-> OpenAI Realtime bridge.

Layer: base.
"""

__version__ = "0.1.0"
