#!/usr/bin/env bash
# Regenerate the shipped voice prompts in mediasrv/prompts/ as raw 8 kHz mu-law.
#
# Needs espeak-ng and sox (apt-get install -y espeak-ng sox) only when regenerating;
# mediasrv itself reads the .ulaw files and never calls these tools.
# Pipeline: espeak-ng (22.05 kHz WAV) -> sox: resample to 8 kHz, band-limit to the
# telephone band, normalise to -3 dBFS, trim edge silence, pad 100 ms each side
# -> headerless mu-law (.ulaw), exactly what Twilio Media Streams carry.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/mediasrv/prompts}"
voice="${ESPEAK_VOICE:-en-us}"
wpm="${ESPEAK_WPM:-165}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

render() {  # render NAME TEXT
    local name="$1" text="$2"
    espeak-ng -v "$voice" -s "$wpm" -w "$tmp/$name.wav" "$text"
    sox "$tmp/$name.wav" -r 8000 -c 1 -b 16 "$tmp/$name.8k.wav" \
        highpass 300 lowpass 3400 silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
        norm -3 pad 0.1 0.1
    sox "$tmp/$name.8k.wav" -t raw -e mu-law -b 8 -r 8000 -c 1 "$out/$name.ulaw"
    printf '%-14s %6.2f s\n' "$name" "$(awk -v n="$(wc -c <"$out/$name.ulaw")" 'BEGIN { print n / 8000 }')"
}

mkdir -p "$out"
render greeting "Hello! This is the mediasrv echo test. Say something and I will play it back to you."
render still_there "Are you still there?"
render goodbye "Thanks for calling. Goodbye!"
render you_said "You said:"
render one_moment "One moment please."
render apology "Sorry, we are having technical trouble. Please call again later. Goodbye."
render long_answer "That was the echo of what I heard. This answer is long on purpose, so you can \
test interrupting me. If you talk while I am speaking, I should stop and listen."
