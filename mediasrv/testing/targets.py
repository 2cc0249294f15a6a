"""Issue 9's targets: which calls to place, what each call shows, the table they make.

Layer: testing.

`issue9_jobs(runs)` lists the scenarios (catalogue.py) with their turn modes;
`call_row(outcome)` reduces one finished call to plain figures (JSON-able), judged by the
emulator, never by the server's own accounting; `targets_table(rows)` prints the table of
issue 9 from those rows. Pure apart from reading the outcomes.

Definitions (all times are the emulator's call time):
- onset: the caller's first speech frame (first 20 ms over -45 dBFS at the recording's
  natural level), as captured at Twilio;
- barge-in latency: onset -> the `clear` *leaving the server* (read from the loopback
  socket); it includes the inbound transit and framing the server cannot avoid, not the
  downlink transit after it;
- detected: a `clear` after the onset and before the caller's speech ended (+0.5 s);
  early: a `clear` before the onset (the echo was taken for the caller);
- answered once: exactly one answer created after the onset; heard once: exactly one
  answer after the onset of which the caller heard at least `FALSE_START_MS` -- an answer
  cut off sooner (the caller went on right after a turn end the model called, and the
  continuation barged in) is a false start: its first syllable or two were heard, then
  one answer to the whole utterance (both user items stay in the conversation);
- first syllable at the backend: when the onset frame reached the Realtime backend's
  input buffer (found by its bytes, truth.py), and `clear` minus that time;
- truncation error: the server's `audio_end_ms` minus what had played of the item when
  the `clear` reached Twilio (truth.py); heard after clear: interrupted audio that still
  played after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.report import ai_turns
from mediasrv.emulator.scenarios import MODES, Scenario
from mediasrv.emulator.truth import forwards_as_sent, onset_frame, received_at
from mediasrv.testing.harness import Outcome, percentile

DETECT_SLACK_S = 0.5  # a clear this long after the caller stopped still counts as theirs
# Less of an answer than this heard before a barge-in cut it: a false start, not an answer
# heard (the barge-in latency target's p95: what a caller's continuation lets through).
FALSE_START_MS = 300.0
NON_SPEECH = ("music_on_hold", "tones", "noise_bursts", "quiet_room")


def issue9_jobs(runs: int) -> list[tuple[Scenario, str]]:
    """Return (scenario, mode) for every call of the issue 9 table."""
    few = max(1, runs // 4)
    scenarios = [
        cat.barge_in(gain, line, run)
        for gain in cat.GAINS_DB
        for line in cat.LINES
        for run in range(runs)
    ]
    scenarios += [cat.echo_alone(name, run) for name in cat.echo_lines() for run in range(few)]
    scenarios += [cat.three_interruptions(run) for run in range(few)]
    scenarios += [
        cat.pause_then_barge_in(mode, run, gain)
        for gain in (cat.NOMINAL_GAIN_DB, -10.0)
        for mode in MODES
        for run in range(few)
    ]
    named = cat.catalogue()
    scenarios += [named[name] for name in NON_SPEECH]
    return [(s, mode) for s in scenarios for mode in s.modes]


def cell_jobs(cells: Sequence[tuple[float, str]], runs: int) -> list[tuple[Scenario, str]]:
    """Return (scenario, mode) for some barge-in cells (gain dB, line name) of the table,
    `runs` each, and the three-interruption calls: a quicker look at detection and
    truncation than the whole table."""
    scenarios = [cat.barge_in(gain, line, run) for gain, line in cells for run in range(runs)]
    scenarios += [cat.three_interruptions(run) for run in range(max(1, runs // 4))]
    return [(s, mode) for s in scenarios for mode in s.modes]


def _voice_times(o: Outcome) -> list[tuple[float, float, int]]:
    """Return (onset, end, segment index) of each placed clip with sound, call time."""
    r = o.result
    return [
        (r.media_t0 + s.onset, r.media_t0 + s.end, i)
        for i, s in enumerate(r.speech)
        if s.onset is not None and s.end is not None
    ]


def _ms(x: float) -> float:
    return round(x * 1000.0, 1)


def call_row(o: Outcome) -> dict[str, Any]:
    """Return one call's figures."""
    r, s = o.result, o.summary
    sent = [r.clear_sent_at(i) for i in range(len(r.clears))]
    truths = o.truths()
    read_lags = [_ms(lag) for lag in o.clear_read_lags()]  # emulator health
    row: dict[str, Any] = {
        "scenario": o.scenario.name,
        "kind": o.scenario.kind,
        "group": o.scenario.group,
        "mode": o.mode,
        "line": o.scenario.line.describe() if o.scenario.line else "no line model",
        "caller_gain_db": o.scenario.caller_gain_db,
        "caller_dbov": o.scenario.caller_level_dbov(),
        "network": s["network"],
        "connected": s["connected"],
        "clears_sent_s": [round(t, 3) for t in sent],
        "answers_s": [round(t, 3) for t in o.answers()],
        "purposes": o.purposes,
        "truncations": [
            {"item": c.item_id, "played_ms": c.played_ms, "audio_end_ms": c.audio_end_ms,
             "error_ms": c.error_ms, "dropped_ms": c.dropped_ms,
             "read_lag_ms": read_lags[t.index] if t.index < len(read_lags) else None}
            for t in truths for c in t.items
        ],
        "heard_after_clear_ms": [c["heard_after_ms"] for c in s["clears"]],
        "vad_starts_s": [round(t, 3) for t in o.vad_starts()],
        "tx_late_max_ms": s["emulator"]["tx_late_max_ms"],
        "clear_read_lag_ms": read_lags,
        "speech": [],
    }
    appends = o.appends()
    judged = bool(appends) and forwards_as_sent(r.sent_ulaw, appends)
    voices = _voice_times(o)
    answers = o.answers()
    heard = {t.response_id: t.heard_ms for t in ai_turns(r)}
    answer_heard = [(c.t, heard.get(c.detail, 0.0)) for c in o.created() if c.what == "answer"]
    for k, (onset, end, seg) in enumerate(voices):
        nxt = voices[k + 1][0] if k + 1 < len(voices) else float("inf")
        frame = onset_frame(r, seg)
        rx = received_at(r.sent_ulaw, frame, appends) if judged and frame is not None else None
        after = [t for t in sent if t >= onset]
        clear = after[0] if after and after[0] <= end + DETECT_SLACK_S else None
        row["speech"].append({
            "onset_s": round(onset, 3),
            "end_s": round(end, 3),
            "ai_playing": any(b.start <= onset < b.end for b in r.bursts()),
            "clear_latency_ms": None if clear is None else _ms(clear - onset),
            "backend_judged": judged,  # False: forwarded audio is not the caller's bytes
            "backend_rx_s": None if rx is None else round(rx, 3),
            "clear_after_rx_ms": None if clear is None or rx is None else _ms(clear - rx),
            "answers_after": sum(1 for t in answers if t >= onset),
            "answer_heard_ms": [ms for t, ms in answer_heard if t >= onset],
            "answers_heard_after": answers_heard_after(answer_heard, onset),
            "answers_before_next": sum(1 for t in answers if onset <= t < nxt),
            "early_clears": sum(1 for t in sent if t < onset),
        })
    return row


def answers_heard_after(answers: Sequence[tuple[float, float]], onset: float) -> int:
    """Count the answers (created at t, heard ms) after `onset` the caller heard at least
    `FALSE_START_MS` of."""
    return sum(1 for t, ms in answers if t >= onset and ms >= FALSE_START_MS)


def _fmt(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"p50 {percentile(values, 50):.0f} / p95 {percentile(values, 95):.0f}"


def barge_in_cell(rows: Sequence[dict[str, Any]]) -> str:
    """Summarise barge-in calls: detected, latency, answered once, backend got onset."""
    n = len(rows)
    firsts = [r["speech"][0] for r in rows if r["speech"]]
    lat = [x["clear_latency_ms"] for x in firsts if x["clear_latency_ms"] is not None]
    early = sum(1 for x in firsts if x["early_clears"])
    once = sum(1 for x in firsts if x["answers_after"] == 1)
    heard = sum(1 for x in firsts if x["answers_heard_after"] == 1)
    cell = (f"{len(lat)}/{n} detected, {_fmt(lat)} ms, early {early}, answered once {once}/{n} "
            f"(heard once {heard}/{n})")
    judged = [x for x in firsts if x["backend_judged"]]
    rx = [x for x in judged if x["backend_rx_s"] is not None]
    after = [x["clear_after_rx_ms"] for x in rx if x["clear_after_rx_ms"] is not None]
    if judged:
        cell += f"; backend got onset {len(rx)}/{len(judged)}, clear after it {_fmt(after)} ms"
    return cell


def echo_cell(rows: Sequence[dict[str, Any]]) -> str:
    """Summarise calls that must get no barge-in and no answer; name the ones that did."""
    clears = sum(len(r["clears_sent_s"]) for r in rows)
    answers = sum(len(r["answers_s"]) for r in rows)
    starts = sum(len(r["vad_starts_s"]) for r in rows)
    bad = sorted({r["group"] or r["scenario"] for r in rows
                  if r["clears_sent_s"] or r["answers_s"]})
    cell = f"{clears} barge-ins, {answers} answers ({len(rows)} calls; backend VAD starts {starts})"
    return cell + (f"; failing: {', '.join(bad)}" if bad else "")


def interruptions_cell(rows: Sequence[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        errs = [t["error_ms"] for t in r["truncations"]]
        each = [x["answers_before_next"] for x in r["speech"]]
        parts.append(f"{len(r['clears_sent_s'])} clears, errors {errs} ms, "
                     f"answers after each {each}")
    return "; ".join(parts) or "-"


def paused_cell(rows: Sequence[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        if len(r["speech"]) < 2:
            parts.append("n/a")
            continue
        first, second = r["speech"][:2]
        started = any(t < second["onset_s"] for t in r["answers_s"])
        parts.append(
            f"{r['caller_dbov']} dBov: "
            + ("AI answering in the pause" if started else "AI silent in the pause (n/a)")
            + f", continuation clear {second['clear_latency_ms']} ms,"
            f" answers after it {second['answers_after']}"
            f" (heard {second['answers_heard_after']})"
        )
    return "; ".join(parts) or "-"


def truncation_cell(rows: Sequence[dict[str, Any]]) -> str:
    errs = [t["error_ms"] for r in rows for t in r["truncations"] if t["error_ms"] is not None]
    missing = sum(1 for r in rows for t in r["truncations"] if t["error_ms"] is None)
    if not errs:
        return f"no truncations (missing {missing})"
    a = np.abs(np.asarray(errs))
    return (f"|error| p50 {np.percentile(a, 50):.0f} / p95 {np.percentile(a, 95):.0f} / max "
            f"{a.max():.0f} ms, mean signed {np.mean(errs):+.0f} ms, sd {np.std(errs):.0f}, "
            f"within 20 ms {np.mean(a <= 20.0):.0%} (n={len(errs)}, missing {missing})")


def targets_table(rows: Sequence[dict[str, Any]], modes: Sequence[str]) -> str:
    """Return issue 9's targets table (markdown) for these call rows."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[(r["kind"], r["mode"])].append(r)
    out = ["| case | target | " + " | ".join(modes) + " |",
           "|---|---|" + "---|" * len(modes)]

    def line(case: str, target: str, cells: list[str]) -> None:
        out.append(f"| {case} | {target} | " + " | ".join(cells) + " |")

    for gain in cat.GAINS_DB:
        for name in cat.LINES:
            cells = []
            for mode in modes:
                sel = [r for r in by[("barge_in", mode)]
                       if r["caller_gain_db"] == gain and r["group"] == name]
                cells.append(barge_in_cell(sel) if sel else "-")
            level = next((r["caller_dbov"] for r in rows if r["caller_gain_db"] == gain
                          and r["kind"] == "barge_in"), None)
            line(f"caller {gain:g} dB ({level} dBov), {name}",
                 "every time (bad line -20 dB: 9/10); local p50<=200 p95<=300; server: "
                 "backend gets onset, clear <=300 ms after", cells)
    line("echo only (9 hard paths, ~20 s turn)", "0 barge-ins, 0 answers",
         [echo_cell(by[("echo_only", m)]) for m in modes])
    line("three interruptions, bad line", "3 clears, 3 exact truncations, 1 answer each",
         [interruptions_cell(by[("three_interruptions", m)]) for m in modes])
    line("pause in a sentence, AI starts answering", "continuation barges in, answered once",
         [paused_cell(by[("paused", m)]) for m in modes])
    line("truncation error (all clears)", "<= 20 ms",
         [truncation_cell([r for r in rows if r["mode"] == m]) for m in modes])
    heard = [[x for r in rows if r["mode"] == m for x in r["heard_after_clear_ms"]]
             for m in modes]
    line("heard after clear", "0 ms", [f"max {max(h, default=0):.0f} ms" for h in heard])
    line("music, tones, noise, quiet room", "0 answers",
         [echo_cell([r for r in rows if r["mode"] == m and r["scenario"] in NON_SPEECH])
          for m in modes])
    return "\n".join(out)
