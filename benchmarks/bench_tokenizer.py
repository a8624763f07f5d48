#!/usr/bin/env python
"""How long training the course tokenizer takes: byte-level BPE on N MB of world text.

Checks the claim that "the tokenizer trains on 5 MB of text in a few seconds". Takes the
first --mb megabytes of the world's training stories, trains minilib.tokenizer.train_tokenizer
(the Rust `tokenizers` BpeTrainer) at each --vocab size, and prints wall time, throughput and
the compression reached (UTF-8 bytes per token on the validation stories). "reached" is
the vocabulary actually learned: BPE stops early once every word of the small world is a token. The best of
--repeats runs is reported, since a shared machine makes single timings noisy.

    python benchmarks/bench_tokenizer.py                    # 5 MB, vocab 4096
    python benchmarks/bench_tokenizer.py --mb 15 --vocab 1024 4096 8192
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minilib.data import world_stories  # noqa: E402
from minilib.tokenizer import bytes_per_token, train_tokenizer  # noqa: E402


def take_mb(texts: list[str], mb: float) -> list[str]:
    """The first texts whose UTF-8 size adds up to `mb` megabytes (1 MB = 10^6 bytes)."""
    out, total = [], 0
    for t in texts:
        if total >= mb * 1e6:
            break
        out.append(t)
        total += len(t.encode("utf-8"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=5.0, help="megabytes of training text")
    parser.add_argument("--vocab", type=int, nargs="+", default=[4096], help="vocabulary sizes")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size (best kept)")
    args = parser.parse_args(argv)

    texts = take_mb(world_stories("train"), args.mb)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if n_bytes < args.mb * 1e6 * 0.99:
        print(f"note: the world has only {n_bytes / 1e6:.1f} MB of training stories")
    val = world_stories("validation")
    print(f"training text: {len(texts)} stories, {n_bytes / 1e6:.2f} MB · {os.cpu_count()} CPUs "
          f"(tokenizers trains on all cores; timings on a shared machine are noisy)")
    print(f"{'vocab':>7} {'reached':>8} {'best s':>8} {'MB/s':>7} {'bytes/token (val)':>18}")
    for vocab in args.vocab:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tok = train_tokenizer(texts, vocab_size=vocab)
            times.append(time.perf_counter() - start)
        best = min(times)
        print(f"{vocab:>7} {tok.vocab_size:>8} {best:>8.2f} {n_bytes / 1e6 / best:>7.1f} "
              f"{bytes_per_token(tok, val):>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
