"""The cascade backend: Deepgram speech-to-text -> an OpenAI chat model -> ElevenLabs
text-to-speech, behind the backend seam (issue 12).

Layer: backends. Pure parts: the wire formats (`stt_wire`, `chat_wire`, `tts_wire`),
the caller's turns from Deepgram's results (`transcript`), the chat's text cut for the
voice and the voice's alignment turned into heard words (`speech`), the conversation
(`history`), the two sockets' retry policy (`links`) and the decisions of one call
(`pipeline`, emitting `actions`). Thread shells: one WebSocket per service
(`sockets`), the chat worker (`chat`), and the seam with its dispatcher (`backend`).
"""
