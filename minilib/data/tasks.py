"""Verifiable tasks for RL (PPO, GRPO): a prompt, an exact answer, a difficulty and a reward.

The reward is the "verifiable reward" of RLVR (Lambert et al., 2024, Tülu 3, arXiv:2411.15124;
DeepSeek-R1, 2025, arXiv:2501.12948): 1 when the checker accepts the answer, 0 when it does not,
plus a small format term (FORMAT_BONUS) when the response is exactly the bare answer, so that
among correct answers the concise one scores highest. Tasks come in three difficulties so that
a freshly fine-tuned small model gets some right and some wrong: GRPO learns nothing from a group
whose rewards are all equal (its advantages are all zero).

    1  one step on small numbers, a fact stated once in a story
    2  two-digit numbers or a product, a fact named after an event
    3  several steps: a + b - c, a count that changes through a story
"""

from __future__ import annotations

import random
from functools import lru_cache

from .instructions import (
    chat,
    check_answer,
    make_arithmetic,
    make_counting,
    make_rewrite,
    make_story_qa,
)
from .world import check_n, check_split, make_rng, take_split

TASK_SIZES = {"train": 5000, "validation": 300, "test": 500}
TASK_KINDS = ("arithmetic", "counting", "story_qa", "rewrite")
FORMAT_BONUS = 0.1
_KIND_WEIGHTS = (35, 30, 25, 10)
_MAKERS = {"arithmetic": make_arithmetic, "counting": make_counting, "story_qa": make_story_qa,
           "rewrite": make_rewrite}


def _make_task(difficulty: int | None):
    def make(rng: random.Random):
        kind = rng.choices(TASK_KINDS, _KIND_WEIGHTS)[0]
        return _MAKERS[kind](rng, difficulty or rng.randint(1, 3))
    return make


@lru_cache(maxsize=16)
def _tasks(split: str, n: int, seed: int, difficulty: int | None) -> tuple:
    rng = make_rng(f"tasks-{difficulty}", seed)
    return tuple(take_split(_make_task(difficulty), lambda p: p[0], split, n, rng))


def world_tasks(split: str = "train", n: int | None = None, seed: int = 0,
                difficulty: int | None = None) -> list[dict]:
    """`n` tasks {"prompt": messages, "answer", "difficulty", "kind"} (difficulty None: mixed)."""
    check_split(split)
    check_n(n)
    if difficulty is not None and difficulty not in (1, 2, 3):
        raise ValueError(f"difficulty must be None, 1, 2 or 3; got {difficulty!r}")
    probs = _tasks(split, TASK_SIZES[split] if n is None else n, seed, difficulty)
    return [{"prompt": chat(user), "answer": ans, "difficulty": d, "kind": kind}
            for _key, user, ans, kind, d in probs]


def task_reward(task: dict, response: str) -> float:
    """1 for a correct answer (+FORMAT_BONUS when it is exactly the bare answer), else 0."""
    if not check_answer(task, response):
        return 0.0
    # the format term: no period, no other casing, nothing around the answer but whitespace
    return 1.0 + (FORMAT_BONUS if response.strip() == task["answer"].strip() else 0.0)
