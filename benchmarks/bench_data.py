#!/usr/bin/env python
"""How fast the synthetic world is generated: MB/s of stories, items/s of everything else.

    python benchmarks/bench_data.py [--stories 20000]

Each generator is timed on a fresh seed (its results are memoised per seed), best of 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minilib.data import (  # noqa: E402
    load_vqa,
    world_instructions,
    world_preferences,
    world_scenes,
    world_stories,
    world_tasks,
)


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for r in range(repeats):
        t = time.perf_counter()
        out = fn(100 + r)  # a new seed each time: nothing memoised
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=20000, help="stories per timing run")
    ap.add_argument("--items", type=int, default=5000, help="items per run for the others")
    args = ap.parse_args()
    dt, s = best_of(lambda seed: world_stories("train", args.stories, seed))
    mb = sum(len(x.encode()) for x in s) / 1e6
    print(f"stories       {args.stories:>6} in {dt:6.2f} s  {mb / dt:6.1f} MB/s  ({mb:.1f} MB)")
    for name, fn in [("instructions", world_instructions), ("preferences", world_preferences),
                     ("tasks", world_tasks), ("scenes", world_scenes)]:
        dt, _ = best_of(lambda seed, fn=fn: fn("train", args.items, seed))
        print(f"{name:<13} {args.items:>6} in {dt:6.2f} s  {args.items / dt:8.0f} items/s")
    t = time.perf_counter()
    ds = load_vqa(n=1000, seed=999)
    print(f"load_vqa        1000 scenes → {len(ds)} rows in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
