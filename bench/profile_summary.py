"""Summarize py-spy ``--format raw`` files (collapsed stacks): top frames by self and total time.

.venv/bin/python bench/profile_summary.py DIR_OR_FILES... [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once \(asyncio|run_forever)\b")


def load(paths: list[Path]) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for p in paths:
        files = sorted(p.glob("*.txt")) if p.is_dir() else [p]
        for f in files:
            for line in f.read_text().splitlines():
                stack, _, n = line.rpartition(" ")
                if stack and n.isdigit():
                    stacks[stack] += int(n)
    return stacks


def short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    path = m[2]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m[1]} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grep", default=None, help="total time of frames matching this")
    args = parser.parse_args()
    stacks = load(args.paths)
    total = sum(stacks.values()) or 1
    busy = sum(n for s, n in stacks.items() if not _IDLE.search(s.rsplit(";", 1)[-1]))
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = [short(f) for f in stack.split(";")]
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"{total} samples, {100 * busy / total:.0f}% not idle in the event loop")
    print(f"\n{'self %':>7}  frame")
    for f, n in self_t.most_common(args.top):
        print(f"{100 * n / total:7.1f}  {f}")
    print(f"\n{'total %':>7}  frame")
    for f, n in incl.most_common(args.top * 2):
        print(f"{100 * n / total:7.1f}  {f}")


if __name__ == "__main__":
    main()
