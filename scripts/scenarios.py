"""Run the turn-taking scenarios against mediasrv and print their figures.

    python scripts/scenarios.py --issue9 [--runs 10] [--parallel 6] [--out out/issue9.json]
        [--cells '0:no echo,0:handset,0:bad line']
    python scripts/scenarios.py [--runs 3] [--parallel 6] [--modes local,server]
        [--only repeated_barge_in,echo_only_6dB,...] [--url http://127.0.0.1:5050]
        [--out out/scenarios.json] [--list]

--issue9 places every call of issue 9's targets (mediasrv/testing/targets.py: callers at
0/-10/-20 dB on three lines, `--runs` onsets and networks each, echo alone on nine hard
paths, three interruptions, a paused sentence, music/tones/noise/quiet room), in both
turn modes, and prints the targets table with the machine's load and the run time.
With --cells only those barge-in cells (and the three-interruption calls) are placed.

By default every call gets its own in-process server (the real app, werkzeug threads,
the built-in local Realtime backend) with the scenario's settings and turn mode, so
both modes and the scenarios' overrides apply. With --url the calls go to a running
server instead: its own settings and turn mode apply (label "external"), and only
the emulator's view is reported (no server log lines: `answers` is then unknown).

Figures (all from the emulator unless noted):
  - barge-in latency, the caller's first speech frame (first 20 ms above -45 dBFS) to
    the `clear` arriving, p50/p95 per mode over every barge-in of the runs;
  - false barge-ins (clears) and answers on echo alone at 6/10/20 dB ERL, 160 ms delay;
  - answers (server log: response.create for an answer) and clears on music, tones,
    noise bursts and a quiet room; responses heard besides the greeting.
Calls run `--parallel` at a time; the figures are only as good as the machine is idle
(`emulator.tx_late_frames` > 0 in the JSON means the emulator itself fell behind).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from mediasrv.emulator import catalogue as sc  # noqa: E402
from mediasrv.emulator.scenarios import AUDIO_DIR, MODES, Scenario  # noqa: E402
from mediasrv.testing import harness  # noqa: E402
from mediasrv.testing.targets import (  # noqa: E402
    call_row,
    cell_jobs,
    issue9_jobs,
    targets_table,
)

LATENCY = ["repeated_barge_in"]
ECHO = [f"echo_only_{erl:g}dB" for erl in sc.ECHO_ERLS]
NOISE = ["music_on_hold", "tones", "noise_bursts", "quiet_room"]
DEFAULT = LATENCY + ECHO + NOISE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="calls per scenario and mode")
    p.add_argument("--parallel", type=int, default=6, help="calls placed at once")
    p.add_argument("--modes", default="local,server", help="turn modes (in-process only)")
    p.add_argument("--only", help="comma-separated scenario names (default: the figures')")
    p.add_argument("--url", help="run against this server instead of in-process ones")
    p.add_argument("--issue9", action="store_true", help="issue 9's targets table")
    p.add_argument("--cells", help="with --issue9: only these barge-in cells, GAIN:LINE "
                   "comma-separated (e.g. '0:no echo,-20:bad line'), and three interruptions")
    p.add_argument("--audio-dir", type=Path, default=AUDIO_DIR)
    p.add_argument("--out", type=Path, help="also write every call's figures as JSON")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--verbose", action="store_true", help="server INFO logs on stderr")
    return p


def run_batch(
    jobs: list[tuple[Scenario, str]],
    url: str | None,
    backends: harness.BackendPool,
    audio_dir: Path,
    verbose: bool,
) -> list[harness.Outcome]:
    """Place one call per job at once, each on its own in-process server unless `url`."""
    with harness.LogCapture() as logs, ExitStack() as stack:
        specs = []
        for scenario, mode in jobs:
            base = url
            if base is None:
                settings = harness.scenario_settings(scenario, mode, backends.url_for(scenario))
                base = stack.enter_context(harness.LocalServer(settings)).base_url
            specs.append((base, scenario, mode))
        if not verbose:  # create_app logs INFO to stderr; the capture still gets INFO
            for handler in logging.getLogger().handlers:
                handler.setLevel(logging.WARNING)
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if url is not None:
            return harness.run_calls(specs, None, None, audio_dir)
        return harness.run_calls(specs, logs, backends, audio_dir)


def row(o: harness.Outcome) -> dict[str, Any]:
    """Return one call's figures."""
    s = o.summary
    answers = None if not o.lines else sum(c.what == "answer" for c in o.created())
    return {
        "scenario": o.scenario.name,
        "mode": o.mode,
        "connected": s["connected"],
        "barge_in_latency_ms": [float(x) for x in s["barge_in_latency_ms"]],
        "clears": len(s["clears"]),
        "heard_after_clear_ms": [c["heard_after_ms"] for c in s["clears"]],
        "responses": s["responses"],
        "answers": answers,
        "purposes": o.purposes if o.lines else None,
        "hangup": s["hangup"]["by"],
        "tx_late_frames": s["emulator"]["tx_late_frames"],
    }


def report(rows: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    """Print the figures; return them."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[(r["scenario"], r["mode"])].append(r)
    figures: dict[str, Any] = {"barge_in_latency_ms": {}, "echo": {}, "non_speech": {}}
    ran = {name for name, _ in by}
    if ran & set(LATENCY):
        print("\nBarge-in latency: caller's first speech frame -> clear at the caller (ms)")
    for mode in modes:
        if not by[(LATENCY[0], mode)]:
            continue
        lat = [x for name in LATENCY for r in by[(name, mode)] for x in r["barge_in_latency_ms"]]
        runs = by[(LATENCY[0], mode)]
        missed = sum(max(0, 4 - len(r["barge_in_latency_ms"])) for r in runs)
        fig = {"n": len(lat), "p50": harness.percentile(lat, 50),
               "p95": harness.percentile(lat, 95),
               "max": max(lat, default=None), "calls": len(runs), "missed": missed}
        figures["barge_in_latency_ms"][mode] = fig
        print(f"  {mode:8s} n={fig['n']:3d}  p50={fig['p50']}  p95={fig['p95']}  "
              f"max={fig['max']}  (barge-ins expected but not seen: {missed})")
    if ran & set(ECHO):
        print("\nEcho only (160 ms delay): false barge-ins (clears) and answers, summed")
    for name in ECHO:
        for mode in modes:
            rs = by[(name, mode)]
            if not rs:
                continue
            fig = {"calls": len(rs), "false_barge_ins": sum(r["clears"] for r in rs),
                   "answers": _sum(r["answers"] for r in rs)}
            figures["echo"][f"{name}/{mode}"] = fig
            print(f"  {name:18s} {mode:8s} calls={fig['calls']}  "
                  f"false barge-ins={fig['false_barge_ins']}  answers={fig['answers']}")
    if ran & set(NOISE):
        print("\nNon-speech: answers triggered, clears, responses heard besides the greeting")
    for name in NOISE:
        for mode in modes:
            rs = by[(name, mode)]
            if not rs:
                continue
            fig = {"calls": len(rs), "answers": _sum(r["answers"] for r in rs),
                   "clears": sum(r["clears"] for r in rs),
                   "extra_responses": sum(r["responses"] - 1 for r in rs)}
            figures["non_speech"][f"{name}/{mode}"] = fig
            print(f"  {name:18s} {mode:8s} calls={fig['calls']}  answers={fig['answers']}  "
                  f"clears={fig['clears']}  responses besides greeting={fig['extra_responses']}")
    others = sorted({k for k in by if k[0] not in DEFAULT})
    if others:
        print("\nOther scenarios (per call: answers, clears, barge-in latency ms)")
        for name, mode in others:
            for r in by[(name, mode)]:
                print(f"  {name:22s} {mode:8s} purposes={r['purposes']} clears={r['clears']} "
                      f"latency={r['barge_in_latency_ms']}")
    late = sum(r["tx_late_frames"] for r in rows)
    print(f"\n{len(rows)} calls; emulator frames sent late (>10 ms): {late}")
    return figures


def _sum(values: Any) -> int | None:
    vals = list(values)
    return None if any(v is None for v in vals) else sum(vals)


def run_jobs(
    jobs: list[tuple[Scenario, str]], args: argparse.Namespace
) -> list[harness.Outcome]:
    """Run the jobs `--parallel` at a time (similar lengths together); return outcomes."""
    jobs = sorted(jobs, key=lambda job: -job[0].duration)
    outcomes: list[harness.Outcome] = []
    started = time.monotonic()
    with harness.BackendPool() as backends:
        for i in range(0, len(jobs), args.parallel):
            batch = jobs[i : i + args.parallel]
            outcomes += run_batch(batch, args.url, backends, args.audio_dir, args.verbose)
            print(f"\r{len(outcomes)}/{len(jobs)} calls, {time.monotonic() - started:.0f} s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return outcomes


def parse_cells(text: str) -> list[tuple[float, str]]:
    """Parse --cells: 'GAIN:LINE,...' with lines from the catalogue."""
    cells = []
    for part in text.split(","):
        gain, _, line = part.partition(":")
        if line.strip() not in sc.LINES:
            raise SystemExit(f"scenarios: unknown line {line!r}; lines: {sorted(sc.LINES)}")
        cells.append((float(gain), line.strip()))
    return cells


def issue9(args: argparse.Namespace) -> int:
    """Place issue 9's calls, print its targets table; return the exit status."""
    load0 = os.getloadavg()
    started = time.monotonic()
    outcomes = run_jobs(issue9_jobs(args.runs) if not args.cells else
                        cell_jobs(parse_cells(args.cells), args.runs), args)
    rows = [call_row(o) for o in outcomes]
    took = time.monotonic() - started
    load1 = os.getloadavg()
    print(targets_table(rows, list(MODES)))
    late = [r["tx_late_max_ms"] for r in rows]
    lag = [x for r in rows for x in r["clear_read_lag_ms"]]
    print(f"\n{len(rows)} calls ({args.runs} runs per barge-in cell), --parallel "
          f"{args.parallel}, {took:.0f} s; load average before {load0[0]:.2f}, after "
          f"{load1[0]:.2f} ({os.cpu_count()} CPUs); emulator send lateness max "
          f"{max(late):.0f} ms (calls > 10 ms late: {sum(x > 10 for x in late)}); clear's "
          f"arrival after the server's log line of it (<= 0: nothing held it) p50/max "
          f"{harness.percentile(lag, 50)}/"
          f"{max(lag, default=None)} ms")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"calls": rows}, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r["connected"] for r in rows) else 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.issue9:
        return issue9(args)
    catalogue = sc.catalogue()
    if args.list:
        for s in catalogue.values():
            print(f"{s.name:26s} {s.duration:5.1f} s  modes={','.join(s.modes)}  {s.about}")
        return 0
    names = args.only.split(",") if args.only else DEFAULT
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise SystemExit(f"scenarios: unknown scenario(s) {unknown}; see --list")
    modes = ["external"] if args.url else args.modes.split(",")
    jobs = [
        (catalogue[n], mode)
        for _ in range(args.runs)
        for n in names
        for mode in modes
        if args.url or mode in catalogue[n].modes
    ]
    rows = [row(o) for o in run_jobs(jobs, args)]
    figures = report(rows, modes)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"figures": figures, "calls": rows}, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r["connected"] for r in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
