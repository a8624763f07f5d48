"""Tests for minilib.data: the synthetic world, its checkers, the loaders and the token cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from minilib import data as D
from minilib.data import images, instructions, preferences, stories, tasks
from minilib.data.preferences import wrong_answer
from minilib.data.world import make_rng, split_of

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def _clear_caches():
    for fn in (stories._stories, instructions._instructions, preferences._pairs, tasks._tasks,
               images._scenes):
        fn.cache_clear()


# ----------------------------------------------------------------------------- determinism


def test_generators_are_byte_identical_for_a_seed():
    """The same seed gives byte-identical data (after dropping every memoised result)."""
    def snapshot():
        _clear_caches()
        return json.dumps([
            D.world_stories("train", 30, seed=5), D.world_instructions("test", 30, seed=5),
            D.world_preferences("train", 30, seed=5), D.world_tasks("validation", 30, seed=5),
        ]).encode(), [images.png_bytes(s["image"]) for s in D.world_scenes("train", 10, seed=5)]
    assert snapshot() == snapshot()
    assert D.world_stories("train", 30, seed=6) != D.world_stories("train", 30, seed=5)


def test_larger_n_extends_smaller_n():
    """Generation is a single seeded stream: n=10 is a prefix of n=40."""
    assert D.world_stories("test", 40, seed=1)[:10] == D.world_stories("test", 10, seed=1)
    assert D.world_tasks("train", 40, seed=1)[:10] == D.world_tasks("train", 10, seed=1)


# ----------------------------------------------------------------------------- splits


def test_split_of_gives_roughly_90_5_5():
    """The content hash spreads keys over train/validation/test in about 90/5/5 proportions."""
    counts = {s: 0 for s in D.SPLITS}
    for i in range(20000):
        counts[split_of(f"key {i}")] += 1
    assert 17600 < counts["train"] < 18400
    assert 800 < counts["validation"] < 1200 and 800 < counts["test"] < 1200


def test_splits_are_disjoint_by_content():
    """No story, instruction prompt, task prompt or scene appears in two splits (any seeds)."""
    train_st = set(D.world_stories("train", 2000, seed=0))
    for split in ("validation", "test"):
        assert not train_st & set(D.world_stories(split, 200, seed=1))

    def users(xs, key):
        return {x[key][1]["content"] for x in xs}
    train_ins = users(D.world_instructions("train", 5000, seed=0), "messages")
    test_ins = users(D.world_instructions("test", 500, seed=2), "messages")
    assert not train_ins & test_ins
    train_t = users(D.world_tasks("train", 3000, seed=0, difficulty=1), "prompt")
    test_t = users(D.world_tasks("test", 300, seed=0, difficulty=1), "prompt")
    assert not train_t & test_t
    key = lambda s: json.dumps(s["objects"])
    assert not ({key(s) for s in D.world_scenes("train", 500, image_size=32)}
                & {key(s) for s in D.world_scenes("test", 100, seed=3, image_size=32)})


def test_arithmetic_split_ignores_wording():
    """An arithmetic problem's split depends on its numbers, not on how it is phrased."""
    rng = make_rng("t", 0)
    for _ in range(300):
        key, user, ans, kind, d = instructions.make_arithmetic(rng, 2)
        assert key.startswith("arith:") and key[6:] in user.replace("plus", "+").replace(
            "minus", "-").replace("times", "*")


# ----------------------------------------------------------------------------- content


def test_stories_are_varied_and_big_enough():
    """Train stories use hundreds of distinct words, and the default split is several MB."""
    sts = D.world_stories("train", 2000)
    words = {w.strip('.,!?"').lower() for s in sts for w in s.split()}
    assert len(words) > 350
    mean_bytes = np.mean([len(s.encode()) for s in sts])
    assert mean_bytes * stories.STORY_SIZES["train"] > 5e6
    assert len(set(sts)) == len(sts)


def test_story_counts_are_consistent():
    """The count a story states at its end ("still had N") is the answer its facts record."""
    rng = make_rng("consistency", 0)
    checked = 0
    for _ in range(500):
        text, facts = stories.make_story(rng)
        m = re.search(r"still had (\w+) (\w+)\.", text)
        end = [a for q, a, k in facts if k == "count"]
        assert len(end) == 1
        if m:
            assert D.world.NUMBER_WORDS.index(m.group(1)) == int(end[0])
            checked += 1
    assert checked > 300


def test_story_questions_are_answerable_from_the_story():
    """Every fact a story records is stated in its text (counts after events aside, which
    must be worked out), and no question is asked twice with different answers."""
    rng = make_rng("answerable", 0)
    for short in (False, True):
        for _ in range(400):
            text, facts = stories.make_story(rng, short=short)
            qs = [q for q, _, _ in facts]
            assert len(qs) == len(set(qs))
            for q, a, kind in facts:
                if kind == "count":
                    continue
                if a.isdigit():
                    assert D.world.number_word(int(a)) in text, (q, a, text)
                else:
                    assert a in text, (q, a, text)


def test_instruction_format_and_lengths():
    """Messages are system, user, assistant(answer); prompts stay short enough for 256 tokens."""
    ins = D.world_instructions("train", 2000)
    assert {x["kind"] for x in ins} == set(instructions.KINDS)
    for x in ins:
        roles = [m["role"] for m in x["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert x["messages"][-1]["content"] == x["answer"]
        assert len(x["messages"][1]["content"].split()) < 130
        assert len(x["answer"].split()) <= 6


def test_check_answer_accepts_reference_and_rejects_wrong():
    """Every instruction and task kind: the reference passes (with whitespace and a final
    period), a wrong answer of the same type fails."""
    rng = make_rng("wrong", 0)
    items = D.world_instructions("validation", 400) + D.world_tasks("validation", 300)
    for x in items:
        assert D.check_answer(x, x["answer"])
        assert D.check_answer(x, f"  {x['answer']}.\n")
        assert not D.check_answer(x, wrong_answer(rng, x["answer"]))
        assert not D.check_answer(x, x["answer"] + " or maybe not")


def test_check_answer_case_rules():
    """Letter case is forgiven except in rewrites, where it is the task."""
    assert D.check_answer({"answer": "red", "kind": "story_qa"}, "Red.")
    assert not D.check_answer({"answer": "THE RED KITE", "kind": "rewrite"}, "the red kite")
    with pytest.raises(ValueError, match="answer"):
        D.check_answer({"kind": "story_qa"}, "red")


def test_task_reward_ordering():
    """exact bare answer > correct but decorated > wrong = 0."""
    for t in D.world_tasks("test", 100):
        exact = D.task_reward(t, t["answer"])
        decorated = D.task_reward(t, t["answer"] + ".")
        wrong = D.task_reward(t, wrong_answer(make_rng("w", 1), t["answer"]))
        assert exact == pytest.approx(1.0 + D.FORMAT_BONUS)
        assert decorated == pytest.approx(1.0) and wrong == 0.0


def test_task_difficulties():
    """difficulty=k gives only level k; the mixed set holds all three levels."""
    for d in (1, 2, 3):
        assert {t["difficulty"] for t in D.world_tasks("train", 200, difficulty=d)} == {d}
    assert {t["difficulty"] for t in D.world_tasks("train", 300)} == {1, 2, 3}


def test_preferences_chosen_is_correct_and_flaws_recorded():
    """Chosen is the reference answer; 'wrong' rejections fail the checker, the other flaws
    keep the right content but are longer or shaped differently."""
    prefs = D.world_preferences("train", 1000)
    assert {p["flaw"] for p in prefs} == set(D.FLAWS)
    for p in prefs:
        assert [m["role"] for m in p["prompt"]] == ["system", "user"]
        assert p["chosen"] != p["rejected"]
        ex = {"answer": p["chosen"], "kind": "rewrite" if p["chosen"].isupper() else "x"}
        if p["flaw"] == "wrong":
            assert not D.check_answer(ex, p["rejected"])
        elif p["flaw"] in ("rambling", "rude"):
            assert p["chosen"] in p["rejected"] and len(p["rejected"]) > len(p["chosen"])


def test_held_out_combos_only_in_compositional_split():
    """No train/validation/test scene (or its text) holds a held-out colour-shape pair;
    every compositional scene holds one."""
    for split in ("train", "validation", "test"):
        for s in D.world_scenes(split, 300 if split == "train" else 60, image_size=32):
            assert not {(o["color"], o["shape"]) for o in s["objects"]} & D.HELD_OUT_COMBOS
            text = s["caption"] + " ".join(q["question"] + q["answer"] for q in s["questions"])
            for c, sh in D.HELD_OUT_COMBOS:
                assert f"{c} {sh}" not in text
    for s in D.world_scenes("compositional", 50, image_size=32):
        assert {(o["color"], o["shape"]) for o in s["objects"]} & D.HELD_OUT_COMBOS


def test_scene_answers_match_the_picture():
    """Counts match the object list, and each object's centre pixel has its colour."""
    for s in D.world_scenes("train", 100, image_size=64):
        assert s["image"].size == (64, 64) and s["image"].mode == "RGB"
        assert s["questions"][0] == {"question": "How many shapes are there?",
                                     "answer": str(len(s["objects"]))}
        for o in s["objects"]:
            px = np.array(s["image"].getpixel((o["x"], o["y"])))
            assert np.abs(px - np.array(D.SCENE_COLORS[o["color"]])).max() < 40


def test_bad_arguments_raise_value_error():
    """Unknown split, negative n, bad difficulty or image size → ValueError naming the value."""
    with pytest.raises(ValueError, match="bogus"):
        D.world_stories("bogus")
    with pytest.raises(ValueError, match="-1"):
        D.world_instructions("train", n=-1)
    with pytest.raises(ValueError, match="difficulty"):
        D.world_tasks("train", 5, difficulty=4)
    with pytest.raises(ValueError, match="image_size"):
        D.world_scenes("train", 2, image_size=4)


# ----------------------------------------------------------------------------- loaders


def test_world_loaders_have_the_documented_columns():
    """Every loader on the world returns a Dataset with its documented columns."""
    cases = [(D.load_corpus, ["text"]), (D.load_instructions, ["messages", "answer", "kind"]),
             (D.load_preferences, ["prompt", "chosen", "rejected", "flaw"]),
             (D.load_tasks, ["prompt", "answer", "difficulty", "kind"]),
             (D.load_vqa, ["image", "question", "answer"])]
    for fn, cols in cases:
        ds = fn(n=5)
        assert ds.column_names == cols and len(ds) >= 5
    img = D.load_vqa(n=2, image_size=32)[0]["image"]
    assert img.size == (32, 32)


@pytest.mark.parametrize("loader,name,n_rows", [
    ("load_corpus", "stories.txt", 3), ("load_corpus", "stories.jsonl", 3),
    ("load_corpus", "stories.parquet", 3), ("load_corpus", "stories.*", 9),
    ("load_instructions", "instructions.jsonl", 3), ("load_preferences", "preferences.jsonl", 3),
    ("load_tasks", "tasks.jsonl", 3), ("load_vqa", "vqa.jsonl", 3),
    ("load_vqa", "vqa.parquet", 3), ("load_vqa", "vqa_folder", 3),
])
def test_loaders_read_every_documented_local_format(loader, name, n_rows):
    """Each example under data/examples/ loads, with the same rows as the world wrote."""
    ds = getattr(D, loader)(str(EXAMPLES / name))
    assert len(ds) == n_rows
    if loader == "load_vqa":
        assert ds[0]["image"].size == (32, 32)
    if loader == "load_instructions":
        assert ds[0]["answer"] == ds[0]["messages"][-1]["content"]


def test_split_placeholder_and_separators(tmp_path):
    """'{split}' in a path picks the split's file; <|endoftext|> separates documents."""
    (tmp_path / "train.txt").write_text("one\n\ntwo\n\nthree\n")
    (tmp_path / "validation.txt").write_text("a story\nwith two lines\n\n<|endoftext|>b\n\nc")
    assert D.load_corpus(str(tmp_path / "{split}.txt"))["text"] == ["one", "two", "three"]
    val = D.load_corpus(str(tmp_path / "{split}.txt"), split="validation")["text"]
    assert val == ["a story\nwith two lines", "b\n\nc"]


def test_hub_name_offline_raises_clear_error(monkeypatch):
    """A Hub name with HF_HUB_OFFLINE=1 → NoNetworkError (a ConnectionError) suggesting 'world'."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for fn in (D.load_corpus, D.load_instructions, D.load_vqa):
        with pytest.raises(ConnectionError, match="no network.*source='world'"):
            fn("roneneldan/TinyStories")


def test_bad_local_inputs_name_the_file_and_problem(tmp_path):
    """Missing path, empty file, missing column, missing image, bad UTF-8 → clear errors."""
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        D.load_corpus(str(tmp_path / "nope.jsonl"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.jsonl.*empty"):
        D.load_corpus(str(empty))
    (tmp_path / "blank.txt").write_text("\n\n  \n")
    with pytest.raises(ValueError, match="blank.txt"):
        D.load_corpus(str(tmp_path / "blank.txt"))
    nocol = tmp_path / "nocol.jsonl"
    nocol.write_text('{"story": "hi"}\n')
    with pytest.raises(ValueError, match="nocol.jsonl.*'text'"):
        D.load_corpus(str(nocol))
    with pytest.raises(ValueError, match="'messages'"):
        D.load_instructions(str(nocol))
    noimg = tmp_path / "vqa.jsonl"
    noimg.write_text('{"image": "missing.png", "question": "q?", "answer": "a"}\n')
    with pytest.raises(FileNotFoundError, match="missing.png"):
        D.load_vqa(str(noimg))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.txt.*UTF-8"):
        D.load_corpus(str(latin))
    badjson = tmp_path / "bad.jsonl"
    badjson.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(ValueError, match="bad.jsonl.*line 2"):
        D.load_corpus(str(badjson))


# ----------------------------------------------------------------------------- token cache


def test_cache_tokenized_reuses_and_keys_on_recipe(tmp_path):
    """The second call loads the same arrays from disk; a new key or new content re-tokenizes."""
    texts = D.world_stories("validation", 50)
    enc = lambda s: list(s.encode())  # a byte "tokenizer"
    first = D.cache_tokenized(texts, enc, tmp_path, key="bytes-v1")
    second = D.cache_tokenized(texts, enc, tmp_path, key="bytes-v1")
    assert not first.hit and second.hit and first.path == second.path
    assert np.array_equal(first.tokens, second.tokens) and second.tokens.dtype == np.uint16
    assert len(second) == 50 and bytes(second[3].astype(np.uint8)) == texts[3].encode()
    assert D.cache_tokenized(texts, enc, tmp_path, key="bytes-v2").path != first.path
    assert D.cache_tokenized(texts[:-1], enc, tmp_path, key="bytes-v1").path != first.path


def test_cache_tokenized_with_masks_and_batches(tmp_path):
    """(ids, mask) outputs keep aligned masks; batched tokenize_fn gives the same ids."""
    ds = D.load_instructions(n=20)
    fn = lambda m: ([len(x["content"]) % 50 for x in m], [int(x["role"] == "assistant")
                                                          for x in m])
    c = D.cache_tokenized(ds, fn, tmp_path, key="toy", column="messages")
    assert c.mask is not None and c.mask_of(0).tolist() == [0, 0, 1]
    b = D.cache_tokenized(ds["messages"], lambda batch: [fn(m) for m in batch], tmp_path / "b",
                          key="toy", batched=True, batch_size=7)
    assert np.array_equal(b.tokens, c.tokens) and np.array_equal(b.offsets, c.offsets)
    with pytest.raises(ValueError, match="empty"):
        D.cache_tokenized([], fn, tmp_path, key="toy")
