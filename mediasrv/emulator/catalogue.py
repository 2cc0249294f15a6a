"""The named scenarios: today's behaviours, and the line matrix of issue 9.

Layer: emulator.

Today's (the e2e tests' and the figures of scripts/scenarios.py): a silent caller, an
answer after the greeting, barge-ins, echo alone, music, tones, noise, a quiet room.

Issue 9 (scripts/scenarios.py --issue9): a caller from the real recordings of
tests/audio at 0 / -10 / -20 dB of their natural level, on no echo / a handset / a bad
line (line.py), talking over the greeting at varied onsets, over varied networks;
echo alone over a ~20 s bot turn on every hard path; three interruptions in one call;
a sentence whose pause lets the AI start answering. Each carries `kind`, the figure it
feeds (targets.py).
"""

from __future__ import annotations

import numpy as np

from mediasrv.emulator.line import BAD_LINE, HANDSET, SATURATION_DBFS, EchoPath, Line, PathChange
from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.scenarios import Background, Clip, Scenario

LINE_NOISE = "silence/white_noise_peak-70dBFS_5s.wav"

HELLO = "speech/en_asterisk_allison_hello-world.wav"  # 1.4 s
WEASELS = "speech/en_asterisk_allison_tt-weasels.wav"  # 3.0 s
ONLY_PERSON = "speech/en_asterisk_allison_conf-onlyperson.wav"  # 3.2 s
CALLER = "speech/en_espeak_caller.wav"  # 3.2 s
ECHO_DELAY_MS = 160.0
ECHO_ERLS = (6.0, 10.0, 20.0)


def silent_caller() -> Scenario:
    return Scenario(
        "silent_caller",
        "line noise only after the greeting: ask once, say goodbye, hang up",
        background=Background(LINE_NOISE),
        duration=20.0,
        overrides={"silence_timeout_s": 2.0},
    )


def answer_after_greeting() -> Scenario:
    return Scenario(
        "answer_after_greeting",
        "one sentence 1.3 s after the greeting ended: one answer, no clear",
        clips=(Clip(CALLER, 7.0),),
        duration=13.0,
    )


def talk_over_answer() -> Scenario:
    # The answer (~12 s of audio, streamed at 5x) is done at the backend ~2.5 s after it
    # starts; the caller talks over it ~4 s in: a barge-in after response.done. The echo
    # path makes the caller's speech fall inside the echo guard's window.
    return Scenario(
        "talk_over_answer",
        "short sentence, then talk over the answer ~4 s in (10 dB ERL echo): "
        "clear, truncate at heard ms, one new answer",
        clips=(Clip(HELLO, 6.5), Clip(WEASELS, 12.5)),
        line=Line(echo=EchoPath(ECHO_DELAY_MS, 10.0), hiss_dbov=None),
        duration=17.5,
    )


def barge_in_greeting() -> Scenario:
    return Scenario(
        "barge_in_greeting",
        "talk 0.9 s into the greeting: clear, truncate, one answer",
        clips=(Clip(WEASELS, 1.0),),
        duration=7.5,
    )


def quiet_room(duration: float = 30.0) -> Scenario:
    files = (
        "silence/asterisk_silence_5.wav",
        "silence/pink_noise_peak-55dBFS_5s.wav",
        "silence/white_noise_peak-70dBFS_5s.wav",
        "silence/digital_silence_5s.wav",
    )
    n = int(np.ceil(duration / 5.0))
    return Scenario(
        "quiet_room",
        f"{duration:.0f} s of near silence and low line noise: no response after the greeting",
        clips=tuple(Clip(files[i % len(files)], 5.0 * i) for i in range(n)),
        duration=duration,
        overrides={"silence_timeout_s": 120.0},
    )


def echo_only(erl_db: float) -> Scenario:
    # A 1 s silence timeout makes the AI talk three times (greeting, "are you still
    # there?", goodbye), so three echoes and their tails reach the echo guard.
    return Scenario(
        f"echo_only_{erl_db:g}dB",
        f"only the AI's own audio fed back ({erl_db:g} dB ERL, {ECHO_DELAY_MS:g} ms): "
        "no barge-in, no answer",
        background=Background(LINE_NOISE),
        line=Line(echo=EchoPath(ECHO_DELAY_MS, erl_db), hiss_dbov=None),
        duration=16.0,
        overrides={"silence_timeout_s": 1.0},
    )


def music_on_hold() -> Scenario:
    return Scenario(
        "music_on_hold",
        "two music-on-hold pieces from the start (over the greeting): no response",
        clips=(
            Clip("music/moh_manolo_camp-morning_coffee_0-30s.wav", 0.5, length=6.5),
            Clip("music/moh_macroform-cold_day_0-30s.wav", 7.0, start=5.0, length=6.5),
        ),
        duration=14.0,
        overrides={"silence_timeout_s": 120.0},
    )


def tones() -> Scenario:
    return Scenario(
        "tones",
        "ring-back, DTMF, busy tone and a beep: no response",
        clips=(
            Clip("tones/us_ringback_6s.wav", 0.5),
            Clip("tones/dtmf_123hash.wav", 6.8),
            Clip("tones/freedesktop_busy.wav", 8.0),
            Clip("tones/dtmf_123hash.wav", 11.2),
            Clip("tones/asterisk_beep.wav", 12.5),
        ),
        duration=14.0,
        overrides={"silence_timeout_s": 120.0},
    )


def noise_bursts() -> Scenario:
    bursts = (
        ("noise/white_noise_peak-30dBFS_10s.wav", 20.0),
        ("noise/pink_noise_peak-30dBFS_10s.wav", 20.0),
        ("noise/brown_noise_peak-25dBFS_10s.wav", 15.0),
    )
    clips = [
        Clip(bursts[i % 3][0], 1.0 + 1.5 * i, start=0.5 * i, length=0.6, gain_db=bursts[i % 3][1])
        for i in range(7)
    ]
    clips.append(Clip("noise/freedesktop_alarm-clock.wav", 11.0, length=3.0))
    return Scenario(
        "noise_bursts",
        "loud white/pink/brown noise bursts (0.6 s, from the greeting on) and an alarm "
        "clock: no response",
        clips=tuple(clips),
        duration=14.5,
        overrides={"silence_timeout_s": 120.0},
    )


def speech_in_noise() -> Scenario:
    # Local mode only: in server mode the local backend's energy VAD decides, and steady
    # noise 15 dB over its starting floor holds it in "speaking" for good (the floor
    # adapts only outside speech), so it never commits a turn (reported, not ours).
    return Scenario(
        "speech_in_noise",
        "one sentence in pink noise at 10 dB SNR (noise from the start): one answer",
        clips=(Clip(CALLER, 7.0),),
        background=Background("noise/pink_noise_peak-30dBFS_10s.wav", snr_db=10.0),
        duration=13.0,
        overrides={"silence_timeout_s": 120.0},
        modes=("local",),
    )


def paused_sentence(gap_s: float = 0.3) -> Scenario:
    return Scenario(
        "paused_sentence",
        f"one sentence in three parts with {gap_s * 1000:.0f} ms pauses (< END_SILENCE_MS): "
        "one turn, one answer",
        clips=(Clip(HELLO, 6.5), Clip(WEASELS, gap=gap_s), Clip(ONLY_PERSON, gap=gap_s)),
        duration=16.0,
        overrides={"silence_timeout_s": 120.0},
    )


# "Weasels have eaten our | phone system": the end of "our" (forced alignment), where the
# end-of-turn model hears an unfinished phrase (P 0.03 on our 8 kHz path) and where the
# whole sentence scores finished (0.96): scripts/eot_eval.py -v.
WEASELS_CUT_S = 1.71


def pause_inside_sentence(pause_s: float = 1.0, turn_model: str = "smart-turn") -> Scenario:
    """A pause to think inside one sentence, twice END_SILENCE_MS long: with the model, one
    turn and one answer; with TURN_MODEL=off, the fixed silence cuts the caller off."""
    return Scenario(
        f"pause_inside_sentence_{turn_model}",
        f"'weasels have eaten our ... phone system', a {pause_s * 1000:.0f} ms pause inside "
        f"(TURN_MODEL={turn_model})",
        clips=(Clip(WEASELS, 7.0, length=WEASELS_CUT_S),
               Clip(WEASELS, start=WEASELS_CUT_S, gap=pause_s)),
        duration=15.0,
        overrides={**QUIET, "turn_model": turn_model},
        modes=("local",),
    )


def finished_sentence(end_silence_ms: int = 1000) -> Scenario:
    """A finished sentence: the model ends the turn after its check (asked at 200 ms of
    silence), sooner than the fixed silence would (END_SILENCE_MS, 1,000 here: room for
    a check slowed by a loaded machine)."""
    return Scenario(
        "finished_sentence",
        "'weasels have eaten our phone system.': the model ends the turn at its check",
        clips=(Clip(WEASELS, 7.0),),
        duration=13.0,
        overrides={**QUIET, "turn_model": "smart-turn", "end_silence_ms": end_silence_ms},
        modes=("local",),
    )


def repeated_barge_in(n: int = 4) -> Scenario:
    # Each barge-in utterance (3 s) ends its answer's turn; the next answer starts about
    # 0.6 s after it and the next utterance lands ~3.9 s into it, after response.done.
    said = [Clip(HELLO, 6.5)]
    said += [Clip((WEASELS, ONLY_PERSON)[i % 2], 12.5 + 7.5 * i) for i in range(n)]
    return Scenario(
        "repeated_barge_in",
        f"{n} barge-ins on successive answers (no echo): barge-in latency samples",
        clips=tuple(said),
        duration=12.5 + 7.5 * n,
        overrides={"silence_timeout_s": 120.0},
    )



# --- issue 9 -------------------------------------------------------------------------

VM_INTRO = "speech/en_asterisk_allison_vm-intro.wav"
FRONT_CENTER = "speech/en_alsa_front_center.wav"  # another speaker (ALSA's test voice)
# (file, seconds used): real recordings only; vm-intro cut after its first sentence
CALLERS = ((WEASELS, 3.0), (ONLY_PERSON, 3.2), (FRONT_CENTER, 1.5), (VM_INTRO, 2.6),
           (HELLO, 1.4))
GAINS_DB = (0.0, -10.0, -20.0)
LINES: dict[str, EchoPath | None] = {"no echo": None, "handset": HANDSET, "bad line": BAD_LINE}
# One-way transit per run (ms), 10-80 as the benchmark should vary it; 30 is the default.
TRANSITS_MS = (30, 20, 40, 10, 60, 80, 25, 50, 35, 15)
LONG_GREETING = ("greeting", "long_answer", "apology")  # 5.5 + 9.5 + 5.1 s: a ~20 s turn
QUIET = {"silence_timeout_s": 120.0}  # no idle prompt inside a scenario
NOMINAL_GAIN_DB = -4.0  # Allison's ~-18 dBov down to ~-22 dBov: the nominal level (levels.py)


def network_for(run: int) -> NetworkTiming:
    """Return run `run`'s network: transit from TRANSITS_MS each way, 5 ms jitter."""
    down = TRANSITS_MS[run % len(TRANSITS_MS)]
    up = TRANSITS_MS[(run + 3) % len(TRANSITS_MS)]
    return NetworkTiming(down, up, 5.0, seed=run)


def line_of(
    echo: EchoPath | None,
    *,
    change: PathChange | None = None,
    speaker_clip_dbfs: float | None = None,
    seed: int = 1,
) -> Line:
    """Return a line with this echo path and -70 dBov hiss."""
    return Line(echo, change, speaker_clip_dbfs, hiss_dbov=-70.0, seed=seed)


def barge_in(gain_db: float, line: str, run: int) -> Scenario:
    """A caller talking over the greeting: one clear, then one answer."""
    file, length = CALLERS[run % len(CALLERS)]
    at = 1.0 + (run * 0.37) % 2.6  # 1.0-3.6 s into the 5.5 s greeting, varied phase
    tag = line.replace(" ", "_")
    return Scenario(
        f"barge_in_{gain_db:g}dB_{tag}_{run}",
        f"caller at {gain_db:g} dB ({file.split('/')[-1]}) at {at:.2f} s into the greeting, "
        f"{line}: a clear, then one answer",
        clips=(Clip(file, at, length=length),),
        duration=at + length + 3.5,
        line=line_of(LINES[line], seed=run),
        caller_gain_db=gain_db,
        network=network_for(run),
        overrides=QUIET,
        kind="barge_in",
        group=line,
    )


def echo_lines() -> dict[str, Line]:
    """Return the hard echo paths of issue 9, by name."""
    tail = 12.0
    return {
        "ERL 6 dB, 160 ms": line_of(EchoPath(160.0, 6.0, tail)),
        "ERL 10 dB, 160 ms": line_of(EchoPath(160.0, 10.0, tail)),
        "ERL 20 dB, 160 ms": line_of(EchoPath(160.0, 20.0, tail)),
        "ERL 10 dB, 40 ms": line_of(EchoPath(40.0, 10.0, tail)),
        "ERL 10 dB, 300 ms, 30 ms tail": line_of(EchoPath(300.0, 10.0, 30.0)),
        "bad line (reflection)": line_of(BAD_LINE),
        "bad line, saturated speaker": line_of(BAD_LINE, speaker_clip_dbfs=SATURATION_DBFS),
        "ERL 6 dB, saturated speaker": line_of(
            EchoPath(160.0, 6.0, tail), speaker_clip_dbfs=SATURATION_DBFS
        ),
        "path change 160->60 ms, ERL 20->10 dB at 8 s": line_of(
            EchoPath(160.0, 20.0, tail), change=PathChange(8.0, EchoPath(60.0, 10.0, tail))
        ),
    }


def echo_alone(name: str, run: int = 0) -> Scenario:
    """Only the bot's own ~20 s turn coming back on a hard path: no clear, no answer."""
    return Scenario(
        "echo_alone_" + "".join(ch if ch.isalnum() else "_" for ch in name).strip("_"),
        f"echo only over a ~20 s bot turn, {name}: no barge-in, no answer",
        duration=23.0,
        line=echo_lines()[name],
        network=network_for(run),
        overrides=QUIET,
        greeting_prompts=LONG_GREETING,
        kind="echo_only",
        group=name,
    )


def three_interruptions(run: int = 0, line: EchoPath | None = BAD_LINE) -> Scenario:
    """Talk over the greeting and over two answers: 3 clears, 3 exact truncations, and
    one answer after each. Answers last ~13 s; each interruption lands ~4 s into one.

    The caller speaks at the nominal active level on a line (-19 dBm0, about -22 dBov:
    ITU-T G.169/G.115), a little below the recordings' natural -18 dBov."""
    return Scenario(
        f"three_interruptions_{run}",
        "three interruptions in one call on the bad line (caller at the nominal -22 dBov): "
        "3 clears, 3 truncations at what had played, one answer after each",
        clips=(Clip(WEASELS, 2.0), Clip(ONLY_PERSON, 9.5), Clip(HELLO, 17.0)),
        duration=22.0,
        line=line_of(line, seed=run),
        caller_gain_db=NOMINAL_GAIN_DB,
        network=network_for(run),
        overrides=QUIET,
        kind="three_interruptions",
    )


def pause_then_barge_in(mode: str, run: int = 0, gain_db: float = NOMINAL_GAIN_DB) -> Scenario:
    """A sentence with a pause long enough to end the turn: the AI starts answering in
    the pause, the continuation barges in and gets one answer.

    Local mode: END_SILENCE_MS 250 (TURN_MODEL=off: the fixed silence is what makes
    this pause end the turn) and a 400 ms pause. Server mode: the server VAD's silence
    is at least 500 ms (SERVER_VAD_SILENCE_MS), so the pause is 800 ms there.
    The caller speaks at `gain_db` (default: the nominal level), on a handset.
    """
    gap, overrides = 0.4, {**QUIET, "end_silence_ms": 250, "turn_model": "off"}
    if mode == "server":
        gap, overrides = 0.8, {**QUIET, "server_vad_silence_ms": 500}
    return Scenario(
        f"pause_then_barge_in_{gain_db:g}dB_{mode}_{run}",
        f"a sentence at {gain_db:g} dB with a {gap * 1000:.0f} ms pause in which the AI starts "
        "answering; the continuation barges in and is answered once",
        clips=(Clip(WEASELS, 6.5), Clip(ONLY_PERSON, gap=gap)),
        duration=15.0,
        line=line_of(HANDSET, seed=run),
        caller_gain_db=gain_db,
        network=network_for(run),
        overrides=overrides,
        modes=(mode,),
        kind="paused",
        group=f"{gain_db:g} dB",
    )


def catalogue() -> dict[str, Scenario]:
    """Return every named scenario (issue 9's matrix is built by targets.py)."""
    items = [
        silent_caller(),
        answer_after_greeting(),
        talk_over_answer(),
        barge_in_greeting(),
        quiet_room(),
        *(echo_only(erl) for erl in ECHO_ERLS),
        music_on_hold(),
        tones(),
        noise_bursts(),
        speech_in_noise(),
        paused_sentence(),
        pause_inside_sentence(),
        pause_inside_sentence(turn_model="off"),
        finished_sentence(),
        repeated_barge_in(),
        barge_in(-10.0, "handset", 0),
        echo_alone("bad line, saturated speaker"),
        three_interruptions(),
        pause_then_barge_in("local"),
        pause_then_barge_in("server"),
    ]
    return {s.name: s for s in items}
