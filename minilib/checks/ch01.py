"""Checkers for chapter 01's exercises (see core.py for the verdicts).

The reference byte-level BPE below is the chapter's from-scratch algorithm (Sennrich et al.,
2016; GPT-2's byte-level variant), kept here so the checkers need nothing from the notebook.
A merge table is a dict {(left_id, right_id): new_id}; new ids are 256, 257, ... in the order
the merges were learned, so a lower id means an earlier (higher-priority) merge.
"""

from __future__ import annotations

from collections import Counter

from .core import Verdict, check_function

__all__ = ["check_merge", "check_encode"]


def reference_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair`, scanning left to right without overlaps."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def reference_train(text: str, n_merges: int) -> dict[tuple[int, int], int]:
    """Learn up to `n_merges` merges on the raw UTF-8 bytes of `text` (ties: first seen)."""
    ids, merges = list(text.encode("utf-8")), {}
    for k in range(n_merges):
        counts = Counter(zip(ids, ids[1:]))
        if not counts:
            break
        pair = max(counts, key=counts.get)
        merges[pair] = 256 + k
        ids = reference_merge(ids, pair, 256 + k)
    return merges


def reference_encode(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    """Apply merges by rank: repeatedly merge the adjacent pair that was learned first."""
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pairs = set(zip(ids, ids[1:]))
        pair = min(pairs, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = reference_merge(ids, pair, merges[pair])
    return ids


def check_merge(merge) -> Verdict:
    """`merge(ids, pair, new_id) -> list[int]`: every non-overlapping occurrence, left to right."""
    cases = [
        ([1, 2, 3, 1, 2], (1, 2), 256),
        ([5, 5, 5], (5, 5), 300),  # overlapping: merge the left pair, leave the last 5
        ([5, 5, 5, 5], (5, 5), 300),
        ([1, 2], (2, 1), 256),  # order matters: (2, 1) does not occur
        ([7], (7, 7), 256),
        ([], (1, 2), 256),
        ([104, 105, 104, 105, 33], (104, 105), 256),
        ([1, 2, 1, 2, 2, 1], (2, 1), 999),
    ]
    return check_function("merge", merge, reference_merge, cases)


_TRAIN_TEXT = ("the cat sat on the mat. the cat ate the rat. " * 8
               + "Über café naïve — 東京 🙂 🙂 " * 3)


def check_encode(encode) -> Verdict:
    """`encode(text, merges) -> list[int]`: UTF-8 bytes, then merges applied lowest id first."""
    merges = reference_train(_TRAIN_TEXT, 40)
    # the same learned table, in a shuffled dict order: encode must follow ranks, not dict order
    shuffled = dict(sorted(merges.items(), key=lambda kv: (kv[1] * 7919) % 41))
    texts = ["the cat sat on the mat.", "", "a", "the rat ate the cat's hat",
             "café 🙂 東京", "xyz never seen", "thethethe"]
    # no merges at all: encode is just the UTF-8 bytes
    cases = [("hi", {})] + [(t, merges) for t in texts] + [("the cat sat on the mat.", shuffled)]
    return check_function("encode", encode, reference_encode, cases)
