"""Tests for minilib.train and minilib.packing: schedule, optimizer groups, loss, the loop, resume."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from minilib.model import MiniLLM, ModelConfig
from minilib.packing import PackedBatches, rows_from_stream
from minilib.train import (
    NonFiniteLossError,
    TrainConfig,
    configure_optimizer,
    lm_loss,
    lr_at,
    train,
)

TINY = ModelConfig(vocab_size=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return MiniLLM(TINY)


def tiny_rows(n=64, seq_len=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    # a learnable stream: counting modulo 61 with random restarts
    stream = (torch.arange(n * (seq_len + 1)) + torch.randint(0, 3, (1,), generator=g)) % 61
    return rows_from_stream(stream, seq_len)


def cfg(**kw):
    base = dict(batch_size=4, seq_len=16, max_steps=6, lr=1e-2, min_lr=1e-3, warmup_steps=2,
                eval_every=0, eval_steps=2, log_every=1, dtype="float32")
    return TrainConfig(**{**base, **kw})


def losses(history):
    return [v for _, v in history["train_loss"]]


def test_config_validation_names_field_and_value():
    """A bad TrainConfig field raises ValueError naming the field and the value."""
    with pytest.raises(ValueError, match="batch_size.*0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="dtype.*float16"):
        TrainConfig(dtype="float16")
    with pytest.raises(TypeError):
        TrainConfig(16)  # keyword-only


def test_lr_schedule_warmup_then_cosine():
    """lr rises linearly to the peak over warmup, then decays by a cosine to min_lr."""
    c = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, c) == pytest.approx(0.1)
    assert lr_at(4, c) == pytest.approx(0.5)
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(10, c) == pytest.approx(1.0)
    assert lr_at(60, c) == pytest.approx(0.55)  # halfway through the cosine: the midpoint
    assert lr_at(110, c) == pytest.approx(0.1)
    assert lr_at(500, c) == pytest.approx(0.1)
    decay = [lr_at(s, c) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_optimizer_decays_matrices_not_norms():
    """Weight decay applies to 2-D+ tensors only; every trainable parameter is in one group once."""
    model = tiny_model()
    opt = configure_optimizer(model, cfg(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    n = sum(len(g["params"]) for g in opt.param_groups)
    assert n == len(list(model.parameters()))


def test_lm_loss_matches_cross_entropy_and_masks():
    """lm_loss is torch's mean CE; a mask (or -100 targets) removes positions from the mean."""
    logits, targets = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    want = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1))
    assert torch.allclose(lm_loss(logits, targets), want, atol=1e-6)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 1, 1]])
    keep = mask.bool()
    want = F.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(lm_loss(logits, targets, mask), want, atol=1e-6)
    ignored = targets.masked_fill(~keep, -100)
    assert torch.allclose(lm_loss(logits, ignored), want, atol=1e-6)


def test_packed_batches_shift_determinism_and_position():
    """targets are inputs shifted by one; same seed = same order; a loaded position resumes it."""
    rows = tiny_rows()
    b = next(PackedBatches(rows, 4, seed=1))
    assert torch.equal(b["input_ids"][:, 1:], b["targets"][:, :-1])
    it1, it2 = PackedBatches(rows, 4, seed=1), PackedBatches(rows, 4, seed=1)
    seq1 = [next(it1)["input_ids"] for _ in range(40)]  # crosses several epochs
    assert all(torch.equal(a, next(it2)["input_ids"]) for a in seq1)
    it3 = PackedBatches(rows, 4, seed=1)
    for _ in range(23):
        next(it3)
    it4 = PackedBatches(rows, 4, seed=1)
    it4.load_state_dict(it3.state_dict())
    assert all(torch.equal(next(it3)["input_ids"], next(it4)["input_ids"]) for _ in range(20))
    assert not torch.equal(next(PackedBatches(rows, 4, seed=2))["input_ids"], seq1[0])


def test_ranks_split_the_global_batch():
    """Under data parallelism the ranks' batches concatenate to the single-process batch."""
    rows = tiny_rows()
    single = PackedBatches(rows, 8, seed=3)
    r0 = PackedBatches(rows, 4, seed=3, rank=0, world_size=2)
    r1 = PackedBatches(rows, 4, seed=3, rank=1, world_size=2)
    for _ in range(10):
        both = torch.cat([next(r0)["input_ids"], next(r1)["input_ids"]])
        assert torch.equal(both, next(single)["input_ids"])


def test_training_reduces_loss():
    """A tiny model learns the counting stream: final loss well below the initial ln(V)."""
    model = tiny_model()
    h = train(model, PackedBatches(tiny_rows(), 8), cfg(max_steps=20, lr=2e-2), plot=False,
              progress=False, device="cpu")
    assert losses(h)[0] > 3.5 and losses(h)[-1] < 1.5
    assert len(h["train_loss"]) == 20 and h["lr"][0][1] == pytest.approx(1e-2)


def test_grad_accumulation_equals_big_batch():
    """2 micro-batches of 4 give the same update as one batch of 8 (fp32, atol 1e-5)."""
    rows = tiny_rows()
    a, b = tiny_model(), tiny_model()
    train(a, PackedBatches(rows, 4, seed=0), cfg(batch_size=4, grad_accum=2, max_steps=3),
          plot=False, progress=False, device="cpu")
    train(b, PackedBatches(rows, 8, seed=0), cfg(batch_size=8, max_steps=3),
          plot=False, progress=False, device="cpu")
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5), name


def test_validation_loss_is_reported():
    """With val_batches, validation runs every eval_every steps and at the end."""
    rows = tiny_rows()
    h = train(tiny_model(), PackedBatches(rows, 4), cfg(max_steps=6, eval_every=3), plot=False,
              progress=False, device="cpu", val_batches=lambda: PackedBatches(rows, 4, seed=9))
    assert [s for s, _ in h["val_loss"]] == [3, 6]
    assert all(math.isfinite(v) for _, v in h["val_loss"])


class Crash(Exception):
    pass


def crash_after(batches, n):
    """Wrap a PackedBatches so that drawing batch n+1 raises (a simulated power cut)."""
    class Wrapper:
        def __init__(self):
            self.count = 0

        def __iter__(self):
            return self

        def __next__(self):
            self.count += 1
            if self.count > n:
                raise Crash
            return next(batches)

        def state_dict(self):
            return batches.state_dict()

        def load_state_dict(self, s):
            batches.load_state_dict(s)
    return Wrapper()


def test_resume_continues_with_the_same_losses(tmp_path):
    """Crash at step 5, resume from the step-4 checkpoint: the losses equal an uninterrupted run, bitwise."""
    rows = tiny_rows()
    c = cfg(max_steps=8, ckpt_every=2, grad_accum=2, seed=5)
    full = train(tiny_model(), PackedBatches(rows, 4, seed=7), c, plot=False, progress=False,
                 device="cpu")
    with pytest.raises(Crash):
        train(tiny_model(), crash_after(PackedBatches(rows, 4, seed=7), 9), c, plot=False,
              progress=False, device="cpu", ckpt_dir=tmp_path / "ckpt")
    # a fresh process would start from other weights and another data position
    resumed = train(tiny_model(seed=123), PackedBatches(rows, 4, seed=7), c, plot=False,
                    progress=False, device="cpu", ckpt_dir=tmp_path / "ckpt", resume=True)
    assert losses(resumed) == losses(full)  # bitwise: the first 4 come from the checkpoint
    assert resumed["train_loss"][4] == full["train_loss"][4]


def test_non_finite_loss_names_the_step_and_keeps_the_checkpoint(tmp_path):
    """A NaN loss raises NonFiniteLossError (a FloatingPointError) naming the step; the last checkpoint survives."""
    rows = tiny_rows()
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        logits, _ = model(batch["input_ids"])
        loss = lm_loss(logits, batch["targets"])
        return (loss * float("nan") if calls["n"] == 4 else loss), batch["targets"].numel()

    model = tiny_model()
    with pytest.raises(FloatingPointError, match="step 3") as err:
        train(model, PackedBatches(rows, 4), cfg(max_steps=6, ckpt_every=2), loss_fn=loss_fn,
              plot=False, progress=False, device="cpu", ckpt_dir=tmp_path / "ckpt")
    assert isinstance(err.value, NonFiniteLossError) and err.value.step == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    from minilib.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "ckpt", tiny_model())["step"] == 2


def test_base_model_stage_trains_once_then_loads(tmp_path, monkeypatch):
    """get_base_model trains and saves the stage on the first call and loads it (same weights) after."""
    from minilib import pretrain, tokenizer
    from minilib.data import world_stories

    monkeypatch.setenv("MINILIB_RUNS", str(tmp_path))
    tok = tokenizer.train_tokenizer(world_stories("train", n=200), vocab_size=300)
    monkeypatch.setattr(tokenizer, "get_tokenizer", lambda run="default": tok)
    recipe = {"model": {"d_model": 32, "n_layer": 1, "n_head": 4, "n_kv_head": 2, "max_seq_len": 32},
              "train": {"batch_size": 4, "seq_len": 32, "max_steps": 3, "warmup_steps": 1,
                        "eval_every": 0, "eval_steps": 2},
              "data": {"source": "world", "n_train": 100, "n_val": 20, "seed": 0}}
    assert not pretrain.base_is_trained("t", recipe=recipe)
    m1, _ = pretrain.get_base_model("t", device="cpu", recipe=recipe, progress=False, plot=False)
    assert pretrain.base_is_trained("t", recipe=recipe)
    summary = json.loads((tmp_path / "t" / "base" / "stage.json").read_text())["summary"]
    assert {"val_loss", "train_seconds", "tokens_seen", "n_params"} <= set(summary)
    monkeypatch.setattr(pretrain, "pretrain", lambda *a, **k: pytest.fail("trained twice"))
    m2, _ = pretrain.get_base_model("t", device="cpu", recipe=recipe)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    assert not m2.training
