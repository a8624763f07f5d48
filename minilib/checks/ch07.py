"""Checkers for chapter 07's exercises (see core.py for the verdicts)."""

from __future__ import annotations

import torch

from .core import check_call, check_function

__all__ = ["check_lr_schedule", "check_train_step"]


def check_lr_schedule(fn) -> bool:
    """fn(step, cfg) -> float must equal minilib.train.lr_at: linear warmup, cosine to min_lr."""
    from minilib.train import TrainConfig, lr_at

    cfgs = [TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110),
            TrainConfig(lr=3e-3, min_lr=0.0, warmup_steps=0, max_steps=50),
            TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=5, max_steps=5)]
    cases = [(step, c) for c in cfgs for step in (0, 1, c.warmup_steps - 1, c.warmup_steps,
                                                  (c.warmup_steps + c.max_steps) // 2,
                                                  c.max_steps - 1, c.max_steps, c.max_steps + 10)
             if step >= 0]
    return check_function("lr_at", lambda s, c: float(fn(s, c)), lr_at, cases,
                          atol=1e-9, rtol=1e-6)


def _reference_step(model, optimizer, batch, lr, grad_clip):
    from minilib.train import lm_loss

    for group in optimizer.param_groups:
        group["lr"] = lr
    logits, aux = model(batch["input_ids"])
    loss = lm_loss(logits, batch["targets"]) + aux
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def check_train_step(fn) -> bool:
    """fn(model, optimizer, batch, lr, grad_clip) -> float: one optimizer step, like minilib's.

    Runs three steps on two copies of a tiny MiniLLM (one with the learner's step, one with the
    reference), with SGD + momentum, and compares the returned losses and the parameters after every step.
    """
    from minilib.model import MiniLLM, ModelConfig

    def run() -> str | None:
        cfg = ModelConfig(vocab_size=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2,
                          max_seq_len=32)
        models = []
        for _ in range(2):
            torch.manual_seed(0)
            models.append(MiniLLM(cfg))
        # SGD, not AdamW: Adam is almost blind to the gradient's scale, so a missing clip
        # would hardly show; with SGD it changes every parameter.
        opts = [torch.optim.SGD(m.parameters(), lr=1.0, momentum=0.9) for m in models]
        g = torch.Generator().manual_seed(1)
        for step, lr in enumerate((1e-2, 5e-3, 2e-3)):
            rows = torch.randint(0, 64, (4, 17), generator=g)
            batch = {"input_ids": rows[:, :-1], "targets": rows[:, 1:]}
            got = fn(models[0], opts[0], {k: v.clone() for k, v in batch.items()}, lr, 0.5)
            want = _reference_step(models[1], opts[1], batch, lr, 0.5)
            if not isinstance(got, float):
                return f"step {step}: return the loss as a Python float (loss.item()), got {type(got).__name__}"
            if abs(got - want) > 1e-5:
                return f"step {step}: loss {got:.6f}, expected {want:.6f}"
            if opts[0].param_groups[0]["lr"] != lr:
                return f"step {step}: the optimizer's lr is {opts[0].param_groups[0]['lr']}, expected {lr}"
            for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
                if a.grad is not None and a.grad.abs().sum() > 0:
                    return f"step {step}: {name}.grad was not reset after the step (zero_grad)"
                if not torch.allclose(a, b, atol=1e-5):
                    return (f"step {step}: parameter {name} differs from the reference by "
                            f"{(a - b).abs().max().item():.3g} (forgot clipping, or the lr?)")
        return None

    return check_call("train_step", run)
