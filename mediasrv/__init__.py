"""mediasrv: a thread-based Twilio Media Streams <-> OpenAI Realtime bridge."""

__version__ = "0.1.0"
