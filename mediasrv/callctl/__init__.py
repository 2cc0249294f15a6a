"""Call control: keypad, tools, transfer and hang-up, recording. Mostly pure.

Layer: decision code in the policy style (no threads, no sockets, `now` as an argument,
value objects in and out), plus two thin shells that say so in their docstrings:

    keypad.py      DTMF digits -> one caller message ("The caller pressed 1 2 3 4 #")
    tools.py       the tool registry: end_call, transfer_call(to), TOOLS_FILE webhooks;
                   the tools as the seam offers them, Chat Completions' `tools`
    tracker.py     a call's tool calls: running, results waiting for the backend
    tools_file.py  TOOLS_FILE and TRANSFER_NUMBERS, validated at start-up in words
    exits.py       the spoken exits: end-call (goodbye -> heard -> hang up) and transfer
                   (handover line -> heard -> REST update -> stream stopped)
    stereo.py      placing caller and AI frames on the call clock (the stereo recording)
    transcript.py  the JSON transcript of a call
    rest.py        the Twilio REST client pointed at TWILIO_API_BASE_URL; TwiML builders
    webhook.py     SHELL: runs a webhook tool on its own thread, bounded by TOOL_TIMEOUT_S
    recorder.py    SHELL: writes one call's stereo WAV and transcript on its own thread

The call uses it through mediasrv/call/control.py and recording.py; the web layer
through rest.py (REST actions) and settings.py (TOOLS_FILE, TRANSFER_NUMBERS). Tool calls
off the wire are mediasrv.protocol.toolcalls (both backends read them).
"""
