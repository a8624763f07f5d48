#!/usr/bin/env python
"""Training speed of minilib vs a plain PyTorch GPT of the same size, and a val-loss option.

For each configuration (the course's base model, and nanoGPT's CPU Shakespeare-char config:
4 layers, 4 heads, width 128, context 64, batch 12) and each dtype (fp32, bf16 autocast), one
training step (forward, loss, backward, AdamW) is timed for
  - minilib: MiniLLM + minilib.train's loss and optimizer;
  - baseline: the same architecture (pre-norm, RMSNorm, RoPE, GQA, SwiGLU, tied embeddings)
    written plainly below with torch's fused ops (F.rms_norm, SDPA with enable_gqa).
It prints tokens/s, model-FLOPs utilisation (MFU = 3 x forward FLOPs x tokens/s, against this
machine's measured matmul peak in that dtype; PaLM, Chowdhery et al. 2022, appendix B) and the
step-time ratio minilib / baseline (target: <= 1.1). Rounds alternate between the two models so
background load hits both alike; the median round counts.

    python benchmarks/bench_train.py                      # speed table
    python benchmarks/bench_train.py --text input.txt --steps 2000 --config shakespeare
        # validation loss of minilib's recipe on any text file (char-level; --bpe: the course
        # tokenizer); nanoGPT reports val loss ~1.88 for its CPU config on Shakespeare-char
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from minilib.model import MiniLLM, ModelConfig
from minilib.train import TrainConfig, configure_optimizer, lm_loss

CONFIGS = {
    # the course base model's shape (minilib.train.BASE_RECIPE), vocab of the course tokenizer
    "course": dict(model=None, batch_size=None, seq_len=None),
    # nanoGPT config/train_shakespeare_char.py with its "on a CPU" overrides
    "shakespeare": dict(model=dict(vocab_size=65, d_model=128, n_layer=4, n_head=4, n_kv_head=4,
                                   max_seq_len=64), batch_size=12, seq_len=64),
}


def config(name: str, vocab_size: int = 2058) -> tuple[ModelConfig, int, int]:
    if name == "course":
        from minilib.train import BASE_RECIPE

        m, t = BASE_RECIPE["model"], BASE_RECIPE["train"]
        return ModelConfig(vocab_size=vocab_size, **m), t["batch_size"], t["seq_len"]
    c = CONFIGS[name]
    return ModelConfig(**c["model"]), c["batch_size"], c["seq_len"]


# ----------------------------------------------------------------------------- baseline GPT


class BaselineGPT(nn.Module):
    """The same decoder as MiniLLM, written as plainly as possible: idx (B, T) -> logits (B, T, V)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg, C, Hd = cfg, cfg.d_model, cfg.head_dim
        self.emb = nn.Embedding(cfg.vocab_size, C)
        self.layers = nn.ModuleList()
        for _ in range(cfg.n_layer):
            self.layers.append(nn.ModuleDict({
                "n1": nn.RMSNorm(C, eps=cfg.norm_eps), "n2": nn.RMSNorm(C, eps=cfg.norm_eps),
                "qkv": nn.Linear(C, (cfg.n_head + 2 * cfg.n_kv_head) * Hd, bias=False),
                "o": nn.Linear(cfg.n_head * Hd, C, bias=False),
                "gate_up": nn.Linear(C, 2 * cfg.hidden_dim, bias=False),
                "down": nn.Linear(cfg.hidden_dim, C, bias=False)}))
        self.norm = nn.RMSNorm(C, eps=cfg.norm_eps)
        self.head = nn.Linear(C, cfg.vocab_size, bias=False)
        self.head.weight = self.emb.weight
        inv = 1.0 / cfg.rope_theta ** (torch.arange(0, Hd, 2).float() / Hd)
        ang = torch.outer(torch.arange(cfg.max_seq_len).float(), inv)       # (T, D/2)
        self.register_buffer("cos", torch.cat([ang.cos(), ang.cos()], -1), persistent=False)
        self.register_buffer("sin", torch.cat([ang.sin(), ang.sin()], -1), persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def rope(self, x, T):
        x1, x2 = x.chunk(2, -1)
        return x * self.cos[:T] + torch.cat([-x2, x1], -1) * self.sin[:T]

    def forward(self, idx):
        cfg, (B, T) = self.cfg, idx.shape
        H, Hk, D = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        x = self.emb(idx)                                                   # (B, T, C)
        for layer in self.layers:
            q, k, v = layer["qkv"](layer["n1"](x)).split([H * D, Hk * D, Hk * D], -1)
            q = self.rope(q.view(B, T, H, D).transpose(1, 2), T)             # (B, H, T, D)
            k = self.rope(k.view(B, T, Hk, D).transpose(1, 2), T)            # (B, Hk, T, D)
            v = v.view(B, T, Hk, D).transpose(1, 2)                          # (B, Hk, T, D)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=H != Hk)
            x = x + layer["o"](y.transpose(1, 2).reshape(B, T, H * D))       # (B, T, C)
            g, u = layer["gate_up"](layer["n2"](x)).chunk(2, -1)             # (B, T, F) each
            x = x + layer["down"](F.silu(g) * u)                             # (B, T, C)
        return self.head(self.norm(x))                                      # (B, T, V)


# ----------------------------------------------------------------------------- timing


def matmul_peak(dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    """Measured FLOP/s of an n x n matmul in `dtype` (the roofline for MFU)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 * reps / best


def make_step(model, is_minilib: bool, amp: torch.dtype | None):
    opt = configure_optimizer(model, TrainConfig())

    def step(x, y):
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            if is_minilib:
                logits, aux = model(x)
                loss = lm_loss(logits, y) + aux
            else:
                loss = F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def bench(name: str, amp: torch.dtype | None, rounds: int, steps: int) -> dict:
    cfg, B, T = config(name)
    torch.manual_seed(0)
    models = {"minilib": MiniLLM(cfg), "baseline": BaselineGPT(cfg)}
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    steps_fn = {k: make_step(m, k == "minilib", amp) for k, m in models.items()}
    x = torch.randint(0, cfg.vocab_size, (B, T))
    y = torch.randint(0, cfg.vocab_size, (B, T))
    for fn in steps_fn.values():
        for _ in range(2):  # warm-up: allocator, kernels
            fn(x, y)
    times = {k: [] for k in models}
    for _ in range(rounds):
        for k, fn in steps_fn.items():
            t = time.perf_counter()
            for _ in range(steps):
                fn(x, y)
            times[k].append((time.perf_counter() - t) / steps)
    sec = {k: statistics.median(v) for k, v in times.items()}
    flops = 3 * models["minilib"].flops_per_token(T)  # forward + backward per token
    return {"config": name, "dtype": "bf16" if amp else "fp32", "params": n_params["minilib"],
            "baseline_params": n_params["baseline"], "tokens": B * T, "flops_per_token": flops,
            "sec": sec}


def speed_table(args) -> None:
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"threads {torch.get_num_threads()} · measured matmul peak: fp32 "
          f"{peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    print(f"{'config':12} {'dtype':5} {'params':>9} {'model':9} {'ms/step':>8} {'tok/s':>9} "
          f"{'MFU':>6} {'ratio':>6}")
    for name in args.configs:
        for amp in (None, torch.bfloat16):
            r = bench(name, amp, args.rounds, args.steps)
            peak = peaks[r["dtype"]]
            for k in ("minilib", "baseline"):
                tok_s = r["tokens"] / r["sec"][k]
                ratio = r["sec"]["minilib"] / r["sec"]["baseline"]
                print(f"{name:12} {r['dtype']:5} {r['params']:9,} {k:9} {1e3 * r['sec'][k]:8.1f} "
                      f"{tok_s:9,.0f} {100 * tok_s * r['flops_per_token'] / peak:5.1f}% "
                      f"{(f'{ratio:.2f}x' if k == 'minilib' else ''):>6}")


# ----------------------------------------------------------------------------- val loss on a file


def val_loss_on_file(args) -> None:
    from minilib.packing import PackedBatches, rows_from_stream
    from minilib.train import train

    text = open(args.text, encoding="utf-8").read()
    if args.bpe:
        from minilib.tokenizer import get_tokenizer

        tok = get_tokenizer()
        ids, vocab = tok.encode(text), tok.vocab_size
    else:
        chars = sorted(set(text))
        index = {c: i for i, c in enumerate(chars)}
        ids, vocab = [index[c] for c in text], len(chars)
    cfg, B, T = config(args.config)
    cfg = ModelConfig(**{**cfg.to_dict(), "vocab_size": vocab})
    stream = torch.tensor(ids)
    split = int(0.9 * len(stream))  # nanoGPT's split: first 90% train, last 10% validation
    train_rows, val_rows = rows_from_stream(stream[:split], T), rows_from_stream(stream[split:], T)
    tcfg = TrainConfig(batch_size=B, seq_len=T, max_steps=args.steps, lr=1e-3, min_lr=1e-4,
                       warmup_steps=min(100, args.steps // 10), eval_every=max(1, args.steps // 10),
                       eval_steps=20, log_every=10)
    torch.manual_seed(0)
    model = MiniLLM(cfg)
    h = train(model, PackedBatches(train_rows, B), tcfg, plot=False,
              val_batches=lambda: PackedBatches(val_rows, B, seed=1))
    print(f"{args.text}: {len(ids):,} tokens ({'bpe' if args.bpe else 'char'}, vocab {vocab}), "
          f"{model.num_params():,} params, {args.steps} steps, {h['seconds']:.0f} s")
    for s, v in h["val_loss"]:
        print(f"  step {s:5d}  val loss {v:.4f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["course", "shakespeare"], choices=list(CONFIGS))
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (median)")
    p.add_argument("--steps", type=int, default=3, help="steps per round (speed) / training steps (--text)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--text", help="train on this text file and print validation losses")
    p.add_argument("--config", default="shakespeare", choices=list(CONFIGS), help="model for --text")
    p.add_argument("--bpe", action="store_true", help="with --text: the course BPE, not characters")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.text:
        val_loss_on_file(args)
    else:
        speed_table(args)


if __name__ == "__main__":
    main()
