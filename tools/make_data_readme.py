#!/usr/bin/env python
"""Regenerate data/README.md, its plots and the small example files under data/examples/.

    python tools/make_data_readme.py            # README + plots + examples
    python tools/make_data_readme.py --examples # only the example files (what the tests load)

Everything comes from the seeded world generator, so running it twice gives the same files
(timings in the README aside).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minilib.data import (  # noqa: E402
    HELD_OUT_COMBOS,
    images,
    instructions,
    preferences,
    stories,
    tasks,
    world,
    world_instructions,
    world_preferences,
    world_scenes,
    world_stories,
    world_tasks,
)

DATA = ROOT / "data"
EX = DATA / "examples"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def make_examples() -> None:
    """One tiny file per documented local format (the loaders' tests read each of them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (EX / "images").mkdir(parents=True, exist_ok=True)
    (EX / "vqa_folder").mkdir(parents=True, exist_ok=True)
    docs = world_stories("test", 3, seed=7)
    (EX / "stories.txt").write_text("\n\n".join(docs) + "\n")
    write_jsonl(EX / "stories.jsonl", [{"text": d} for d in docs])
    pq.write_table(pa.table({"text": docs}), EX / "stories.parquet")
    write_jsonl(EX / "instructions.jsonl", world_instructions("test", 3, seed=7))
    write_jsonl(EX / "preferences.jsonl", world_preferences("test", 3, seed=7))
    write_jsonl(EX / "tasks.jsonl", world_tasks("test", 3, seed=7))
    rows, folder = [], []
    for i, sc in enumerate(world_scenes("test", 3, seed=7, image_size=32)):
        sc["image"].save(EX / "images" / f"scene_{i}.png")
        sc["image"].save(EX / "vqa_folder" / f"scene_{i}.png")
        q = sc["questions"][0]
        rows.append({"image": f"images/scene_{i}.png", **q})
        folder.append({"file_name": f"scene_{i}.png", **q})
    write_jsonl(EX / "vqa.jsonl", rows)
    pq.write_table(pa.Table.from_pylist(rows), EX / "vqa.parquet")
    write_jsonl(EX / "vqa_folder" / "metadata.jsonl", folder)


def plot_lengths(path: Path, story_words, user_words, answer_words) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, xs, title in zip(axes, (story_words, user_words, answer_words),
                             ("story length (words)", "instruction prompt (words)",
                              "answer length (words)")):
        ax.hist(xs, bins=range(0, max(xs) + 2, max(1, max(xs) // 40)), color="#4c72b0")
        ax.set_title(title)
        ax.set_ylabel("count")
        ax.axvline(statistics.mean(xs), color="k", ls="--", lw=1, label="mean")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_scenes(path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = world_scenes("train", 12, image_size=64)
    comp = world_scenes("compositional", 6, image_size=64)
    fig, axes = plt.subplots(3, 6, figsize=(12, 7.2))
    for ax, sc, tag in zip(axes.flat, train + comp, ["train"] * 12 + ["compositional"] * 6):
        ax.imshow(sc["image"])
        ax.set_xticks([])
        ax.set_yticks([])
        q = sc["questions"][-1]
        ax.set_title(f"{tag}\n{q['question'][:34]}\n→ {q['answer']}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def fence(text: str) -> str:
    return "```\n" + text + "\n```"


def chat_block(msgs: list[dict]) -> str:
    return fence("\n".join(f"[{m['role']}] {m['content']}" for m in msgs))


def make_readme() -> None:
    t0 = time.perf_counter()
    train = world_stories("train")
    dt = time.perf_counter() - t0
    mb = sum(len(s.encode()) for s in train) / 1e6
    story_words = [len(s.split()) for s in train]
    vocab = {w.strip('.,!?"').lower() for s in train for w in s.split()}
    ins = world_instructions("train")
    prefs = world_preferences("train", 2000)
    tks = world_tasks("test")
    plot_lengths(DATA / "lengths.png", story_words,
                 [len(x["messages"][1]["content"].split()) for x in ins],
                 [len(x["answer"].split()) for x in ins])
    plot_scenes(DATA / "scenes.png")

    sizes = [("stories", stories.STORY_SIZES), ("instructions", instructions.INSTRUCTION_SIZES),
             ("preferences", preferences.PREFERENCE_SIZES), ("tasks", tasks.TASK_SIZES),
             ("scenes", images.SCENE_SIZES_PER_SPLIT)]
    rows = "\n".join(f"| {name} | {d['train']:,} | {d['validation']:,} | {d['test']:,} | "
                     f"{d.get('compositional', '—')} |" for name, d in sizes)
    by_kind = {}
    for x in ins:
        by_kind.setdefault(x["kind"], x)
    kinds_md = "\n\n".join(f"**{k}**\n\n{chat_block(x['messages'])}" for k, x in by_kind.items())
    by_flaw = {}
    for p in prefs:
        by_flaw.setdefault(p["flaw"], p)
    pref_md = "\n".join(f"| {f} | `{p['prompt'][1]['content'][:60]}` | `{p['chosen']}` | "
                        f"`{p['rejected'][:90]}` |" for f, p in sorted(by_flaw.items()))
    by_d = {}
    for t in tks:
        by_d.setdefault((t["difficulty"], t["kind"]), t)
    def short(text: str) -> str:  # a story question: show the question, elide the story
        return "Story: … " + text.split("\n")[-1] if text.startswith("Story:") else text
    task_md = "\n".join(f"| {d} | {k} | `{short(t['prompt'][1]['content'])}` | `{t['answer']}` |"
                        for (d, k), t in sorted(by_d.items()))
    sc = world_scenes("train", 1)[0]
    qa = "\n".join(f"- {q['question']} → `{q['answer']}`" for q in sc["questions"])
    kind_counts = {}
    for x in ins:
        kind_counts[x["kind"]] = kind_counts.get(x["kind"], 0) + 1
    mix = ", ".join(f"{k} {100 * v / len(ins):.0f}%" for k, v in kind_counts.items())
    held = ", ".join(f"{c} {s}" for c, s in sorted(HELD_OUT_COMBOS))

    text = f"""# Data

Every chapter trains on data from `minilib.data`. With no network (the default) that is the
**synthetic world**: a seeded generator of stories, instructions, preference pairs, verifiable
tasks and rendered scenes. The same loaders read local files and Hub datasets, with the same
columns. This page is generated by `python tools/make_data_readme.py`.

## The world

| | |
|---|---|
| characters | {len(world.CHARACTERS)} named children and animals, each with pronouns |
| things | {len(world.THINGS)} kinds, {len(world.COLORS)} colours, {len(world.SIZES)} sizes |
| countable items | {len(world.ITEMS)} (apples, marbles, shells, …) |
| places | {len(world.PLACES)} |
| feelings, games, foods | {len(world.FEELINGS)}, {len(world.GAMES)}, {len(world.FOODS)} |
| distinct words in the train stories | {len(vocab)} |
| scene colours × shapes × sizes | {len(images.SCENE_COLORS)} × {len(images.SCENE_SHAPES)} × 2 |
| held-out colour–shape pairs | {held} |

A story is a small simulation written as prose: the generator tracks who owns what, where
everyone is and how many items the hero has, and writes each sentence from that state, so
counts add up and facts stay put. The same generator records facts as questions with answers,
which the instruction and task data ask about.

## Splits

Splits are **disjoint by construction**: an item's split is a hash of the content that defines
it (`minilib.data.split_of`): the story text, the story behind a question, or the numbers of an
arithmetic problem (so "What is 3 + 4?" and "Add 3 and 4." share a split). About 90% of the
hash space is train, 5% validation, 5% test. Generation walks one seeded random stream and keeps
what falls in the requested split: the same seed gives byte-identical data, and a larger `n`
extends a smaller one. Default sizes (`n=None`):

| data | train | validation | test | compositional |
|---|---|---|---|---|
{rows}

The default train stories are {mb:.1f} MB of text (mean {statistics.mean(story_words):.0f} words per
story), generated in {dt:.1f} s ({mb / dt:.1f} MB/s on a shared 2-core CPU; `python
benchmarks/bench_data.py` measures it).

![length distributions](lengths.png)

## Stories (pretraining)

{fence(train[0])}

{fence(train[1])}

## Instructions (SFT)

Mix: {mix}. Every conversation is system, user, assistant; the assistant's answer is short and
exact, and `check_answer(example, response)` grades a response (surrounding whitespace, a final
period and letter case are forgiven, except case in rewrites).

{kinds_md}

## Preference pairs (reward model, DPO)

The chosen answer is the reference answer; the rejected one has one recorded flaw.

| flaw | prompt | chosen | rejected |
|---|---|---|---|
{pref_md}

## Verifiable tasks (PPO, GRPO)

`task_reward(task, response)`: 1 for a correct answer plus {tasks.FORMAT_BONUS} when the response
is exactly the bare answer, 0 when wrong. Difficulty 1 is one step on small numbers, 3 is several
steps, so a small fine-tuned model gets some right and some wrong.

| difficulty | kind | prompt | answer |
|---|---|---|---|
{task_md}

## Scenes (vision)

1–4 shapes rendered with PIL, a caption and questions about colour, shape, size, count and
position. The held-out pairs ({held}) appear only in the `compositional` split. First two rows:
train scenes; last row: compositional scenes.

![sample scenes](scenes.png)

Caption of one train scene: *{sc['caption']}*

{qa}

## Loaders and local formats

```python
from minilib.data import load_corpus, load_instructions, load_preferences, load_tasks, load_vqa
load_corpus()                                   # the world, split="train"
load_corpus("data/examples/stories.txt")        # a local file, folder or glob
load_corpus("corpus/{{split}}.jsonl", split="validation")   # {{split}} is filled in
load_corpus("roneneldan/TinyStories")           # a Hub dataset (needs the network)
```

| loader | columns | local files (example under `data/examples/`) |
|---|---|---|
| `load_corpus` | text | `.txt`/`.md`: documents separated by blank lines, or by `<\\|endoftext\\|>` when present (`stories.txt`); `.jsonl`/`.json`/`.parquet` with a `text` column (`stories.jsonl`, `stories.parquet`) |
| `load_instructions` | messages, answer, kind | `.jsonl` with `messages` (list of `{{"role", "content"}}` ending with the assistant); `answer` defaults to the last message, `kind` to `local` (`instructions.jsonl`) |
| `load_preferences` | prompt, chosen, rejected, flaw | `.jsonl` with `prompt` (string or messages), `chosen`, `rejected` (strings or message lists); `flaw` defaults to `unknown` (`preferences.jsonl`) |
| `load_tasks` | prompt, answer, difficulty, kind | `.jsonl` with `prompt` (or `question`) and `answer` (GSM8K's `#### 42` is cut to `42`) (`tasks.jsonl`) |
| `load_vqa` | image, question, answer | `.jsonl`/`.parquet` whose `image` is a path relative to the file (`vqa.jsonl`, `vqa.parquet`, `images/`), or an image folder with a `metadata.jsonl` naming each image in `file_name` (`vqa_folder/`) |

Text files must be UTF-8. Errors name the file and the problem: a path that does not exist →
`FileNotFoundError`; a file with no rows → `ValueError`; a missing column → `ValueError` naming
it; an image that is not there → `FileNotFoundError` naming it; bad UTF-8 or JSON → `ValueError`.
A Hub name when `HF_HUB_OFFLINE=1` or huggingface.co is unreachable (a 2-second probe) →
`NoNetworkError` (a `ConnectionError`) that suggests `source="world"` or a local path.

## Tokenized cache

`cache_tokenized(items, tokenize_fn, cache_dir, key=...)` tokenizes once and stores every
example's ids in one flat array with offsets (and an optional loss mask) in
`cache_dir/tokens-<hash>.npz`, where the hash covers `key` (name the tokenizer and its settings)
and the content. The next call with the same recipe loads the file instead of tokenizing:

```python
from minilib.data import cache_tokenized, load_corpus
from minilib.utils import run_dir
cache = cache_tokenized(load_corpus()["text"], tok.encode, run_dir() / "tokens", key=tok_hash)
cache.tokens      # (N,) all ids, uint16 when they fit
cache[i]          # ids of example i;  cache.mask_of(i) when tokenize_fn returns (ids, mask)
```
"""
    (DATA / "README.md").write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", action="store_true", help="only write data/examples/")
    args = ap.parse_args()
    make_examples()
    if not args.examples:
        make_readme()
    print("wrote", EX if args.examples else DATA)


if __name__ == "__main__":
    main()
