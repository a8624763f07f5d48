"""SFT (minilib.sft): the assistant-only loss mask, truncation, padding, bad input, a tiny overfit."""

import pytest
import torch

from minilib.sft import (
    batches,
    build_example,
    build_loss_mask,
    collate,
    sft_loss_fn,
)
from minilib.tokenizer import MIN_VOCAB_SIZE, train_tokenizer

SYS = {"role": "system", "content": "Be brief."}


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


@pytest.fixture(scope="module")
def tok():
    texts = ["What is two plus two? It is four. The red kite flies over the green park.",
             "Mia has three apples and gives one to Leo. How many are left? Two."] * 10
    return train_tokenizer(texts, vocab_size=MIN_VOCAB_SIZE + 60)


def counted_text(tok, ex):
    """The text of exactly the targets that the loss counts."""
    return tok.decode(ex["targets"][ex["loss_mask"].bool()].tolist())


def test_single_turn_mask_counts_exactly_answer_and_end(tok):
    """One exchange: the counted targets are the answer's tokens and its <|end|>, nothing else."""
    ex = build_example(tok, [SYS, U("What is two plus two?"), A("four")], max_len=128)
    assert counted_text(tok, ex) == "four<|end|>"
    assert int(ex["loss_mask"].sum()) == len(tok.encode("four")) + 1
    assert ex["targets"][ex["loss_mask"].bool()][-1] == tok.eot_id


def test_multi_turn_mask_counts_every_assistant_turn(tok):
    """Several exchanges: every assistant turn counts (content + <|end|>); user/system never."""
    msgs = [SYS, U("What is two plus two?"), A("four"), U("And the kite?"), A("The red kite flies.")]
    ex = build_example(tok, msgs, max_len=256)
    assert counted_text(tok, ex) == "four<|end|>The red kite flies.<|end|>"
    ids, mask = tok.encode_chat(msgs)
    # the mask is the tokenizer's assistant mask, shifted onto targets
    assert ex["loss_mask"].tolist() == mask[1:len(ex["targets"]) + 1]


def test_targets_are_inputs_shifted_by_one(tok):
    """targets[t] == input_ids[t + 1]: position t predicts the next token; all three are (T,)."""
    ex = build_example(tok, [U("What is two plus two?"), A("four")], max_len=64)
    T = len(ex["input_ids"])
    assert ex["targets"].shape == ex["loss_mask"].shape == (T,)
    assert torch.equal(ex["input_ids"][1:], ex["targets"][:-1])
    assert ex["input_ids"][0] == tok.bos_id


def test_messages_after_last_answer_are_dropped(tok):
    """A trailing user turn teaches nothing: the example ends with the last answer's <|end|>."""
    ex = build_example(tok, [U("What is two plus two?"), A("four"), U("Thanks!")], max_len=64)
    assert ex["targets"][-1] == tok.eot_id and ex["loss_mask"][-1] == 1


def test_truncation_drops_oldest_turns_keeps_system_and_answer(tok):
    """Too long: whole old exchanges go first; the system prompt and the final answer stay."""
    msgs = [SYS] + [U("Mia has three apples and gives one to Leo."), A("Two.")] * 6 \
        + [U("What is two plus two?"), A("It is four.")]
    full = build_example(tok, msgs, max_len=1024)
    max_len = len(full["input_ids"]) // 2
    ex = build_example(tok, msgs, max_len=max_len)
    assert len(ex["input_ids"]) <= max_len
    text = tok.decode(ex["input_ids"].tolist() + ex["targets"][-1:].tolist())
    assert text.startswith("<|bos|><|system|>\nBe brief.<|end|>\n<|user|>\n")  # cut at a turn boundary
    assert text.endswith("<|user|>\nWhat is two plus two?<|end|>\n<|assistant|>\nIt is four.<|end|>")
    assert counted_text(tok, ex).endswith("It is four.<|end|>")


def test_truncation_cuts_oldest_prompt_tokens_never_the_answer(tok):
    """A single over-long question is cut from the left (BOS kept); the answer stays whole."""
    long_q = "The red kite flies over the green park. " * 20 + "What is two plus two?"
    msgs = [U(long_q), A("four")]
    ex = build_example(tok, msgs, max_len=24)
    assert len(ex["input_ids"]) == 24
    assert ex["input_ids"][0] == tok.bos_id
    assert counted_text(tok, ex) == "four<|end|>"
    seen = tok.decode(ex["input_ids"].tolist() + ex["targets"][-1:].tolist())
    assert seen.endswith("What is two plus two?<|end|>\n<|assistant|>\nfour<|end|>")


def test_answer_that_cannot_fit_raises(tok):
    """An answer longer than the context cannot be truncated away: ValueError."""
    with pytest.raises(ValueError, match="final assistant answer"):
        build_example(tok, [U("Hi"), A("The red kite flies over the green park. " * 10)], max_len=16)


def test_truncation_error_mode_raises(tok):
    """truncation='error' refuses to cut; an unknown mode is a ValueError naming the choices."""
    msgs = [U("The red kite flies over the green park. " * 5), A("four")]
    with pytest.raises(ValueError, match="longer than max_len=8"):
        build_example(tok, msgs, max_len=8, truncation="error")
    with pytest.raises(ValueError, match="truncation must be one of"):
        build_example(tok, msgs, max_len=8, truncation="right")


@pytest.mark.parametrize("msgs, match", [
    ([], "empty conversation"),
    ([SYS, U("What is two plus two?")], "no assistant turn"),
    ([{"role": "robot", "content": "hi"}, A("x")], "role"),
])
def test_bad_conversations_raise(tok, msgs, match):
    """Empty, assistant-less or malformed conversations -> ValueError saying which."""
    with pytest.raises(ValueError, match=match):
        build_example(tok, msgs, max_len=64)


def test_collate_right_pads_and_masks_padding(tok):
    """collate gives (B, T) tensors; padding is pad_id in inputs/targets and 0 in loss_mask."""
    e1 = build_example(tok, [U("What is two plus two?"), A("four")], max_len=64)
    e2 = build_example(tok, [SYS, U("Mia has three apples."), A("The red kite flies.")], max_len=64)
    b = collate([e1, e2], tok.pad_id)
    T = max(len(e1["input_ids"]), len(e2["input_ids"]))
    assert {k: tuple(v.shape) for k, v in b.items()} == {k: (2, T) for k in ("input_ids", "targets", "loss_mask")}
    n1 = len(e1["input_ids"])
    assert (b["input_ids"][0, n1:] == tok.pad_id).all() and (b["targets"][0, n1:] == tok.pad_id).all()
    assert (b["loss_mask"][0, n1:] == 0).all()
    assert torch.equal(b["loss_mask"][0, :n1], e1["loss_mask"])
    assert int(b["loss_mask"].sum()) == int(e1["loss_mask"].sum() + e2["loss_mask"].sum())


class FixedLogits(torch.nn.Module):
    """A stand-in model that returns given logits (and no auxiliary loss)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, idx):
        return self.logits, None


def test_sft_loss_ignores_unmasked_positions():
    """sft_loss_fn is the mean CE over loss_mask=1 positions; other logits do not affect it."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 0, 0, 0]])
    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long), "targets": targets, "loss_mask": mask}
    loss, n = sft_loss_fn(FixedLogits(logits), batch)
    sel = mask.bool()
    want = torch.nn.functional.cross_entropy(logits[sel], targets[sel])
    torch.testing.assert_close(loss, want)
    assert n == 3
    logits2 = logits.clone()
    logits2[~sel] = 100 * torch.randn_like(logits2[~sel])
    torch.testing.assert_close(sft_loss_fn(FixedLogits(logits2), batch)[0], want)


def test_build_loss_mask_recovers_tokenizer_mask(tok):
    """Scanning ids for <|assistant|> ... <|end|> gives exactly encode_chat's assistant mask."""
    for msgs in ([U("What is two plus two?"), A("four")],
                 [SYS, U("Hi"), A("The red kite."), U("And?"), A("Two apples.")],
                 [SYS, U("Hi"), A("")]):
        ids, mask = tok.encode_chat(msgs)
        assert build_loss_mask(ids, tok.assistant_id, tok.eot_id) == mask


@pytest.mark.parametrize("group", [False, True])
def test_batches_are_seeded_full_and_cover_each_epoch(group):
    """batches() yields full batches in a seed-determined order, each example once per epoch."""
    exs = [{"input_ids": torch.full((1 + i % 4,), i), "targets": torch.full((1 + i % 4,), i),
            "loss_mask": torch.ones(1 + i % 4, dtype=torch.long)} for i in range(12)]
    run = lambda: [b["input_ids"][:, 0].tolist() for b in batches(exs, 3, pad_id=-1, seed=1,
                                                                   epochs=2, group_by_length=group)]
    a = run()
    assert a == run() and len(a) == 8 and all(len(x) == 3 for x in a)
    assert sorted(sum(a[:4], [])) == list(range(12))  # the first epoch sees every example once
    if group:  # sorted windows: every batch holds examples of one length, so no padding at all
        for b in batches(exs, 3, pad_id=-1, seed=1, epochs=1):
            assert (b["input_ids"] != -1).all()


def test_tiny_sft_overfit_reduces_masked_loss(tok):
    """A tiny MiniLLM fine-tuned for 25 steps on 4 conversations: the masked loss falls > 3x."""
    model_mod = pytest.importorskip("minilib.model")
    torch.manual_seed(0)
    cfg = model_mod.ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_kv_head=1,
                                d_model=32, max_seq_len=64)
    model = model_mod.MiniLLM(cfg)
    convs = [[U("What is two plus two?"), A("four")], [U("Mia has three apples."), A("Two.")],
             [SYS, U("The kite?"), A("red")], [U("Leo?"), A("The green park.")]]
    batch = collate([build_example(tok, c, max_len=64) for c in convs], tok.pad_id)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    first, n_tok = sft_loss_fn(model, batch)
    assert n_tok == int(batch["loss_mask"].sum())
    for _ in range(25):
        loss, _ = sft_loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last, _ = sft_loss_fn(model, batch)
    assert last.item() < first.item() / 3, (first.item(), last.item())


def test_ch08_checkers_accept_reference_and_reject_wrong(capsys):
    """The chapter's checkers pass minilib's functions, fail wrong ones, report stubs; never raise."""
    from minilib.checks import ch08

    assert ch08.check_build_loss_mask(build_loss_mask)
    assert not ch08.check_build_loss_mask(lambda ids, a, e: [int(t != a) for t in ids])
    no_eot = lambda ids, a, e: [m if t != e else 0 for t, m in zip(ids, build_loss_mask(ids, a, e))]
    assert not ch08.check_build_loss_mask(no_eot)

    def stub(*args):
        raise NotImplementedError

    assert not ch08.check_build_loss_mask(stub)
    ref = lambda x, w, b, A, B, s: torch.nn.functional.linear(x, w, b) + s * (x @ A.T) @ B.T
    assert ch08.check_lora_forward(ref)
    assert not ch08.check_lora_forward(lambda x, w, b, A, B, s: torch.nn.functional.linear(x, w, b))
    assert not ch08.check_lora_forward(lambda x, w, b, A, B, s: x @ w.T + s * (x @ A.T) @ B.T)  # no bias
    assert not ch08.check_lora_forward(stub)
    out = capsys.readouterr().out
    assert out.count("✅") == 2 and "not implemented yet" in out


def test_evaluate_scores_greedy_replies(tok):
    """evaluate() returns accuracy/format in [0, 1], per-kind keys and one sample per example."""
    model_mod = pytest.importorskip("minilib.model")
    from minilib.data import world_instructions
    from minilib.sft import evaluate

    torch.manual_seed(0)
    model = model_mod.MiniLLM(model_mod.ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2,
                                                    n_kv_head=1, d_model=32, max_seq_len=256))
    exs = world_instructions("test", n=6)
    res = evaluate(model, tok, exs, max_new_tokens=4)
    assert res["n"] == 6 and len(res["samples"]) == 6
    assert 0 <= res["accuracy"] <= 1 and 0 <= res["format_rate"] <= 1
    assert set(res["per_kind"]) == {e["kind"] for e in exs}
    assert all(len(tok.encode(s["response"])) <= 4 for s in res["samples"])


def test_get_sft_model_trains_once_then_loads(tok, tmp_path, monkeypatch):
    """The SFT stage is trained, saved with a summary, and loaded (same logits) on the next call."""
    model_mod = pytest.importorskip("minilib.model")
    import minilib.train
    from minilib.sft import SFT_RECIPE, get_sft_model, sft_stage
    from minilib.utils import mark_stage_done, run_dir

    monkeypatch.setenv("MINILIB_RUNS", str(tmp_path))

    def fake_base(run="default", device=None):
        torch.manual_seed(0)
        cfg = model_mod.ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_kv_head=1,
                                    d_model=32, max_seq_len=256)
        mark_stage_done(run_dir(run) / "base", {"stage": "base", "tiny": True})
        return model_mod.MiniLLM(cfg).to(device).eval(), tok

    monkeypatch.setattr(minilib.train, "get_base_model", fake_base)
    recipe = {**SFT_RECIPE, "n_train": 48, "max_steps": 3, "batch_size": 4, "warmup_steps": 1,
              "n_eval": 3}
    model, _ = get_sft_model("t", device="cpu", recipe=recipe)
    summary = sft_stage("t")["summary"]
    assert {"accuracy_before", "accuracy_after", "format_rate_after", "train_seconds"} <= set(summary)
    assert len(sft_stage("t")["history"]["train_loss"]) == 3
    again, _ = get_sft_model("t", device="cpu", recipe=recipe)
    idx = torch.randint(0, tok.vocab_size, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(again(idx)[0], model(idx)[0])
