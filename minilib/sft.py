"""Supervised fine-tuning (SFT): chat-formatted examples, the assistant-only loss, evaluation.

Instruction tuning as in Ouyang et al., "Training language models to follow instructions with
human feedback" (InstructGPT, 2022, arXiv:2203.02155, Section 3.5 "SFT") and Wei et al.,
"Finetuned Language Models Are Zero-Shot Learners" (FLAN, arXiv:2109.01652): keep the
next-token loss of pretraining, but on rendered conversations, and count only the tokens the
assistant writes. The model is never trained to imitate the user or the system prompt.

Choices:
- The loss counts each assistant turn's content tokens *and* its closing end-of-turn token:
  learning to emit `<|end|>` is what makes generation stop (the same span as `trl`'s
  `SFTConfig(assistant_only_loss=True)`; the mask comes from `Tokenizer.encode_chat`).
- Right padding, no attention mask: attention is causal, so a real token never attends to the
  padding that follows it; padded positions are excluded from the loss by `loss_mask`.
- Truncation (`truncation="left"`) never cuts the final answer; it drops the oldest turns
  first, then the oldest prompt tokens (see `build_example`).
- Batches are grouped by length (short arithmetic chats with short ones, stories with
  stories), which roughly halves the compute spent on padding.
- Evaluation is greedy decoding, so held-out accuracy is deterministic.

Shapes: B batch, T sequence length, V vocabulary.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch

from .train import lm_loss
from .utils import (
    QUICK,
    mark_stage_done,
    pick_device,
    run_dir,
    seed_everything,
    stage_is_current,
    stage_summary,
)

ROLES = ("system", "user", "assistant")
TRUNCATIONS = ("left", "error")


# ----------------------------------------------------------------------------- examples


def check_messages(messages: Sequence[dict]) -> None:
    """ValueError unless `messages` is a non-empty conversation with at least one assistant turn."""
    if not messages:
        raise ValueError("empty conversation: messages must hold at least one user and one assistant turn")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} must be a dict with role in {ROLES} and a str content, got {m!r}")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("conversation has no assistant turn: there is nothing to learn from "
                         f"(roles: {[m['role'] for m in messages]})")


def _encode(tokenizer, messages) -> tuple[list[int], list[int]]:
    """Chat ids and assistant mask, cut after the last assistant token (nothing to learn past it)."""
    ids, mask = tokenizer.encode_chat(list(messages))
    ids, mask = list(ids), [int(m) for m in mask]
    last = max((i for i, m in enumerate(mask) if m), default=-1)
    if last < 0:
        raise ValueError("the chat template marked no assistant token (all assistant turns empty?)")
    return ids[: last + 1], mask[: last + 1]


def _drop_oldest_turn(messages: list[dict]) -> list[dict] | None:
    """Drop the oldest exchange after the system prompt, keeping the conversation opening on a
    user turn; None when only the final exchange (last user turn onwards) is left."""
    head = messages[:1] if messages[0]["role"] == "system" else []
    body = messages[len(head):]
    last_user = max((i for i, m in enumerate(body) if m["role"] == "user"), default=0)
    if last_user == 0:
        return None
    cut = 1
    while cut < last_user and body[cut]["role"] != "user":  # drop up to the next user turn
        cut += 1
    return head + body[cut:]


def build_example(tokenizer, messages: Sequence[dict], max_len: int,
                  truncation: str = "left") -> dict[str, torch.Tensor]:
    """One training example: input_ids, targets (ids shifted by one) and loss_mask, each (T,), T <= max_len.

    loss_mask[t] = 1 when targets[t] is an assistant content token or its end-of-turn token.
    Messages after the last assistant turn are ignored. Truncation policy when the chat is
    longer than max_len + 1 tokens (`truncation="left"`):
      1. drop the oldest turns after the system prompt, while the final exchange is kept;
      2. then drop the oldest tokens (a leading BOS is kept), as long as the final assistant
         answer stays whole and at least one token precedes it;
      3. an answer that cannot fit that way raises ValueError.
    `truncation="error"` raises ValueError instead of truncating.
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    if not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"max_len must be an int >= 2, got {max_len!r}")
    check_messages(messages)
    last_asst = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    msgs = [dict(m) for m in messages[: last_asst + 1]]
    ids, mask = _encode(tokenizer, msgs)
    budget = max_len + 1  # inputs are ids[:-1] and targets ids[1:], so T = len(ids) - 1
    if len(ids) > budget and truncation == "error":
        raise ValueError(f"conversation is {len(ids) - 1} tokens, longer than max_len={max_len} "
                         "(use truncation='left' to drop the oldest context)")
    while len(ids) > budget:  # step 1: whole turns, oldest first
        shorter = _drop_oldest_turn(msgs)
        if shorter is None:
            break
        msgs = shorter
        ids, mask = _encode(tokenizer, msgs)
    if len(ids) > budget:  # step 2: oldest tokens
        answer_start = len(mask) - 1
        while answer_start > 0 and mask[answer_start - 1]:
            answer_start -= 1  # the final answer is the last run of 1s in the mask
        bos = getattr(tokenizer, "bos_id", None)
        keep_head = 1 if bos is not None and ids[0] == bos else 0
        cut = len(ids) - budget + keep_head  # tokens [keep_head, cut) are dropped
        if cut >= answer_start:
            raise ValueError(f"the final assistant answer ({len(ids) - answer_start} tokens) does not "
                             f"fit in max_len={max_len} with any of its prompt; raise max_len or "
                             "shorten the answer")
        ids, mask = ids[:keep_head] + ids[cut:], mask[:keep_head] + mask[cut:]
    t = torch.tensor(ids, dtype=torch.long)
    m = torch.tensor(mask, dtype=torch.long)
    return {"input_ids": t[:-1], "targets": t[1:], "loss_mask": m[1:]}  # each (T,)


def build_loss_mask(ids: Sequence[int], assistant_id: int, eot_id: int, skip: int = 1) -> list[int]:
    """The assistant mask recovered from token ids alone (the chapter's exercise), len(ids).

    A token counts when it lies inside an assistant turn: after the `assistant_id` header (and
    `skip` template tokens that follow the header: the course template's newline), up to and
    including the turn's `eot_id`. `trl`'s older `DataCollatorForCompletionOnlyLM` searched
    for a response template in the ids the same way.
    """
    out, inside, to_skip = [], False, 0
    for tok in ids:
        if inside and to_skip:
            out.append(0)
            to_skip -= 1
        elif inside:
            out.append(1)
            inside = tok != eot_id  # the end-of-turn token counts, then the turn is over
        else:
            out.append(0)
            if tok == assistant_id:
                inside, to_skip = True, skip
    return out


def collate(examples: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad examples to the longest one: input_ids, targets, loss_mask, each (B, T)."""
    if not examples:
        raise ValueError("collate needs at least one example")
    T = max(len(e["input_ids"]) for e in examples)
    B = len(examples)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), pad_id, dtype=torch.long)
    loss_mask = torch.zeros((B, T), dtype=torch.long)  # padding never counts
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n] = e["input_ids"]
        targets[i, :n] = e["targets"]
        loss_mask[i, :n] = e["loss_mask"]
    return {"input_ids": input_ids, "targets": targets, "loss_mask": loss_mask}


def batches(examples: Sequence[dict], batch_size: int, pad_id: int, seed: int = 0,
            epochs: int | None = None, group_by_length: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled, collated batches, reshuffled every epoch (forever when epochs is None).

    With `group_by_length`, each window of 32 batches' worth of examples is sorted by length
    before it is cut into batches (the batches are then shuffled): similar lengths share a
    batch, so less compute goes into padding (the `group_by_length` of `transformers`).
    """
    if batch_size < 1 or batch_size > len(examples):
        raise ValueError(f"batch_size must be in [1, {len(examples)} examples], got {batch_size}")
    rng = random.Random(seed)
    order = list(range(len(examples)))
    epoch = 0
    while epochs is None or epoch < epochs:
        rng.shuffle(order)
        groups = [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        if group_by_length:  # drop the ragged last batch; sort inside windows of 32 batches
            window = 32 * batch_size
            groups = []
            for w in range(0, len(order) - batch_size + 1, window):
                chunk = sorted(order[w:w + window], key=lambda j: len(examples[j]["input_ids"]))
                groups += [chunk[i:i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
            rng.shuffle(groups)
        for g in groups:
            yield collate([examples[j] for j in g], pad_id)
        epoch += 1


# ----------------------------------------------------------------------------- loss


def sft_loss_fn(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """(loss, number of counted tokens) for one batch; plugs into `minilib.train.train`."""
    device = next(model.parameters()).device
    idx = batch["input_ids"].to(device)
    targets = batch["targets"].to(device)
    mask = batch["loss_mask"].to(device)
    logits, aux = model(idx)  # (B, T, V)
    loss = lm_loss(logits, targets, mask)  # mean over the counted (assistant) tokens
    if aux is not None and torch.is_tensor(aux):
        loss = loss + aux  # MoE load-balancing term (already weighted by the model)
    return loss, int(mask.sum())


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def respond(model, tokenizer, messages: Sequence[dict], max_new_tokens: int = 16) -> tuple[str, bool]:
    """Greedy reply to a conversation: (text, ended_with_end_of_turn)."""
    from .generate import generate

    prompt = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    room = model.cfg.max_seq_len - len(prompt)
    if room < 1:
        return "", False
    new = generate(model, list(prompt), max_new_tokens=min(max_new_tokens, room), temperature=0.0,
                   stop_ids=[tokenizer.eot_id])
    ended = bool(new) and new[-1] == tokenizer.eot_id
    text_ids = new[:-1] if ended else new
    return tokenizer.decode(text_ids).strip(), ended


def evaluate(model, tokenizer, examples: Sequence[dict], max_new_tokens: int = 16,
             n: int | None = None) -> dict:
    """Greedy answers to held-out examples, scored by the world's exact checkers.

    Each example's final (reference) assistant turn is removed and the model answers instead.
    Returns accuracy, format_rate (share of answers that end with the end-of-turn token),
    per_kind accuracy, n and samples (prompt, response, answer, correct, kind, formatted).
    """
    from .data import check_answer

    examples = list(examples)[:n] if n is not None else list(examples)
    if not examples:
        raise ValueError("evaluate needs at least one example")
    was_training = model.training
    model.eval()
    samples, by_kind = [], defaultdict(list)
    for ex in examples:
        msgs = ex["messages"]
        prompt = msgs[:-1] if msgs and msgs[-1]["role"] == "assistant" else msgs
        response, formatted = respond(model, tokenizer, prompt, max_new_tokens)
        correct = bool(check_answer(ex, response))
        by_kind[ex.get("kind", "?")].append(correct)
        samples.append({"prompt": prompt[-1]["content"], "response": response, "answer": ex.get("answer"),
                        "correct": correct, "kind": ex.get("kind", "?"), "formatted": formatted})
    model.train(was_training)
    return {
        "accuracy": sum(s["correct"] for s in samples) / len(samples),
        "format_rate": sum(s["formatted"] for s in samples) / len(samples),
        "per_kind": {k: sum(v) / len(v) for k, v in sorted(by_kind.items())},
        "n": len(samples),
        "samples": samples,
    }


# ----------------------------------------------------------------------------- the course stage


SFT_RECIPE = {
    "stage": "sft",
    "data": "world",
    "n_train": 20000,  # world instruction conversations (the whole train split): ~one epoch
    "max_len": 256,  # tokens; capped at the base model's context
    "max_steps": 600,
    "batch_size": 32,  # ~2 answer tokens per conversation: large batches for a usable signal
    "lr": 1e-3,  # with the 2.8M-parameter base: 9.3% held-out accuracy vs 7.3% at 3e-3
    "min_lr": 1e-4,
    "warmup_steps": 20,
    "weight_decay": 0.0,
    "n_eval": 150,  # held-out test prompts for the before/after accuracy
    "seed": 0,
}


def sft_examples(tokenizer, split: str = "train", n: int | None = None, max_len: int = 256,
                 seed: int = 0) -> list[dict]:
    """World instruction conversations rendered with `build_example` (over-long ones skipped)."""
    from .data import world_instructions

    out = []
    for ex in world_instructions(split, n=n, seed=seed):
        try:
            out.append(build_example(tokenizer, ex["messages"], max_len))
        except ValueError:
            continue  # an answer longer than the context: nothing sensible to train on
    return out


def train_sft(model, tokenizer, recipe: dict = SFT_RECIPE, *, device=None, plot: bool = True,
              progress: bool = True) -> dict:
    """Fine-tune `model` (all of it, or its LoRA adapters) on world instructions; the history."""
    from .train import TrainConfig, train

    max_len = min(recipe["max_len"], model.cfg.max_seq_len)
    examples = sft_examples(tokenizer, "train", n=recipe["n_train"], max_len=max_len, seed=recipe["seed"])
    cfg = TrainConfig(batch_size=recipe["batch_size"], seq_len=max_len, max_steps=recipe["max_steps"],
                      lr=recipe["lr"], min_lr=recipe["min_lr"], warmup_steps=recipe["warmup_steps"],
                      weight_decay=recipe["weight_decay"], eval_every=0, seed=recipe["seed"])
    stream = batches(examples, recipe["batch_size"], tokenizer.pad_id, seed=recipe["seed"])
    return train(model, stream, cfg, loss_fn=sft_loss_fn, plot=plot, progress=progress, device=device)


def get_sft_model(run: str = "default", device=None, recipe: dict | None = None):
    """The course's SFT model and tokenizer: loaded from runs/<run>/sft when current, else trained.

    Fine-tunes the base model of `run` (chapter 07's stage, itself trained if missing). The
    stage summary (`sft_stage(run)`) holds held-out accuracy and format rate before and after,
    the per-kind accuracy and the training time; the checkpoint keeps the loss history.
    """
    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import world_instructions
    from .train import get_base_model

    recipe = dict(SFT_RECIPE if recipe is None else recipe)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model, tokenizer = get_base_model(run, device=device)  # cheap when cached; retrains if stale
    stage = run_dir(run) / "sft"
    # the base stage's own recipe is part of ours: a new base model invalidates this stage
    base_recipe = json.loads((run_dir(run) / "base" / "stage.json").read_text())["recipe"]
    full_recipe = {**recipe, "base": base_recipe}
    if stage_is_current(stage, full_recipe):
        return load_checkpoint(stage, map_location=device)["model"].to(device).eval(), tokenizer
    print(f"fine-tuning the base model on world instructions ({recipe['max_steps']} steps) -> {stage}",
          flush=True)
    held_out = world_instructions("test", n=recipe["n_eval"], seed=recipe["seed"])
    before = evaluate(model, tokenizer, held_out)
    seed_everything(recipe["seed"])
    history = train_sft(model, tokenizer, recipe, device=device, plot=not QUICK)
    after = evaluate(model, tokenizer, held_out)
    summary = {"accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
               "format_rate_before": before["format_rate"], "format_rate_after": after["format_rate"],
               "per_kind_before": before["per_kind"], "per_kind_after": after["per_kind"],
               "train_seconds": round(history["seconds"], 1), "n_eval": after["n"],
               "final_loss": round(history["train_loss"][-1][1], 4)}
    save_checkpoint(stage, model, step=recipe["max_steps"],
                    history={k: v for k, v in history.items() if k != "seconds"},
                    extra={"summary": summary})
    mark_stage_done(stage, full_recipe, summary)
    print(f"done in {summary['train_seconds']:.0f} s: held-out accuracy {before['accuracy']:.0%} -> "
          f"{after['accuracy']:.0%}, format {before['format_rate']:.0%} -> {after['format_rate']:.0%}",
          flush=True)
    return model.eval(), tokenizer


def sft_stage(run: str = "default") -> dict:
    """The finished SFT stage of `run`: {"summary": ..., "history": ...} (empty when missing)."""
    from .checkpoint import checkpoint_exists, load_checkpoint

    stage = run_dir(run) / "sft"
    if not checkpoint_exists(stage):
        return {"summary": {}, "history": {}}
    state = load_checkpoint(stage)
    return {"summary": stage_summary(stage), "history": state["history"]}
