"""Where a process's resident memory is, by kind of mapping: for the memory-per-call work.

    python scripts/mem_where.py PID [PID ...]   # e.g. the gunicorn master and its worker

Reads /proc/PID/smaps (Linux) and adds up each mapping's RSS by kind: the brk heap, glibc
malloc arenas (a read-write mapping followed by its reserved, inaccessible rest), thread
stacks (8 MB mappings behind a guard page: only the touched pages are resident), other
anonymous mappings (pymalloc's arenas, numpy's and onnxruntime's large buffers), and
shared libraries (onnxruntime, numpy, the rest). Run it on the gunicorn worker idle and
during `scripts/bench.py`: what grows with calls is what calls cost (docs/performance.md).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
_STACK_SIZES = {8 << 20, (8 << 20) + 4096, (8 << 20) - 4096}
_ARENA_SPAN = 64 << 20  # glibc reserves each non-main arena's heap 64 MB at a time


@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_kb: int = 0


def read_maps(pid: int) -> list[Mapping]:
    maps: list[Mapping] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        header = _HEADER.match(line)
        if header:
            start, end, perms, path = header.groups()
            maps.append(Mapping(int(start, 16), int(end, 16), perms, path.strip()))
        elif line.startswith("Rss:") and maps:
            maps[-1].rss_kb = int(line.split()[1])
    return maps


def kind(maps: list[Mapping], i: int) -> str:
    """Name the kind of mapping `i` from its path, permissions and neighbours."""
    m = maps[i]
    if m.path.startswith("/"):
        for lib in ("onnxruntime", "numpy"):
            if lib in m.path:
                return f"file: {lib}"
        return "file: other"
    if m.path:
        return m.path  # [heap], [stack], [vdso] ...
    if not m.perms.startswith("rw"):
        return "anon: reserved"
    after = maps[i + 1] if i + 1 < len(maps) else None
    before = maps[i - 1] if i else None
    if (before is not None and before.end == m.start and not before.path
            and before.perms.startswith("---") and m.end - m.start in _STACK_SIZES):
        return "thread stacks"
    if (after is not None and after.start == m.end and not after.path
            and after.perms.startswith("---") and after.end - m.start <= _ARENA_SPAN):
        return "malloc arenas"
    return "anon: other (pymalloc, large buffers)"


def summary(pid: int) -> Counter[str]:
    maps = read_maps(pid)
    totals: Counter[str] = Counter()
    for i, m in enumerate(maps):
        totals[kind(maps, i)] += m.rss_kb
    return totals


def rollup(pid: int) -> dict[str, int]:
    """Return /proc/PID/smaps_rollup's totals in kB (Rss, Pss, Shared_Clean, ...)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields


def rss_and_pss(r: dict[str, int]) -> str:
    """RSS counts every page the process maps, shared or not (the pages a gunicorn worker
    inherited from its master count in both); PSS divides each shared page among its
    sharers, so the PSS of several processes adds up to what they cost together."""
    shared = r["Shared_Clean"] + r["Shared_Dirty"]
    return (f"RSS {r['Rss'] / 1024:.1f} MB, PSS {r['Pss'] / 1024:.1f} MB "
            f"(shared {shared / 1024:.1f}, private {(r['Rss'] - shared) / 1024:.1f})")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rollups = {}
    for pid in map(int, argv):
        totals = summary(pid)
        rollups[pid] = rollup(pid)  # once: the "all" line adds up the lines printed
        print(f"pid {pid}: {rss_and_pss(rollups[pid])}")
        for name, kb in totals.most_common():
            if kb >= 100:
                print(f"  {kb / 1024:8.1f} MB  {name}")
    if len(argv) > 1:
        rss = sum(r["Rss"] for r in rollups.values()) / 1024
        pss = sum(r["Pss"] for r in rollups.values()) / 1024
        print(f"all: RSS {rss:.1f} MB, PSS {pss:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
