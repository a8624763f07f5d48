#!/usr/bin/env python
"""Tokens/s of three MoE layers with identical weights: minilib's sorted dispatch, the
tutorial-style masked loop, and `transformers`' MixtralSparseMoeBlock.

    python benchmarks/bench_moe.py                     # E=8, k=2, d_model=256, 4096 tokens
    python benchmarks/bench_moe.py --device cuda --repeats 20

Rows, all computing the same function (checked before timing, fp32 atol 1e-4):
- minilib        `minilib.moe.MoE`: sort the N·k (token, expert) slots by expert, run each
                 expert once on its contiguous slice, scatter back with index_add_.
- tutorial loop  the same router, then `dispatch_loop`: for every expert and every slot a
                 boolean mask, a gather, the expert, a masked add (E·k small launches).
- dense loop     the other common tutorial shortcut: every expert runs on EVERY token and a
                 sparse gate zeroes the unused outputs (E/k times the FLOPs).
- hf eager       MixtralSparseMoeBlock with experts_implementation "eager" (its per-expert loop).
- hf grouped_mm  the same block with `torch.nn.functional.grouped_mm` (transformers' default for
                 from_pretrained models; skipped where this torch/device cannot run it).

Numbers are the best of --repeats runs after one warm-up; on a shared CPU they still vary.
"""

from __future__ import annotations

import argparse
import time

import torch

from minilib.moe import MoE, dispatch_loop


def dense_loop(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, then keep the routed ones: (N, C) -> (N, C)."""
    _, _, weights, indices = moe.router(x)  # (N, k), (N, k)
    gates = torch.zeros(x.shape[0], moe.n_experts, dtype=x.dtype, device=x.device)
    gates = gates.scatter(1, indices, weights)  # (N, E), zero for unrouted experts
    out = torch.zeros_like(x)
    for e, expert in enumerate(moe.experts):
        out = out + gates[:, e:e + 1] * expert(x)  # (N, C): computed for all N tokens
    return out


def tutorial_loop(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    _, _, weights, indices = moe.router(x)
    return dispatch_loop(x, weights, indices, moe.experts)


def make_layers(d_model: int, n_experts: int, top_k: int, hidden: int):
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    moe = MoE(d_model, n_experts, top_k, hidden)
    hf_layers = {}
    for impl in ("eager", "grouped_mm"):
        cfg = MixtralConfig(hidden_size=d_model, intermediate_size=hidden,
                            num_local_experts=n_experts, num_experts_per_tok=top_k,
                            router_jitter_noise=0.0)
        cfg._experts_implementation = impl
        block = MixtralSparseMoeBlock(cfg)
        with torch.no_grad():
            block.gate.weight.copy_(moe.router.gate.weight)
            for e, ex in enumerate(moe.experts):
                block.experts.gate_up_proj[e].copy_(torch.cat([ex.w_gate.weight, ex.w_up.weight]))
                block.experts.down_proj[e].copy_(ex.w_down.weight)
        hf_layers[impl] = block
    return moe, hf_layers


def time_all(fns: dict, x: torch.Tensor, backward: bool, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` seconds of each fn(x) (plus backward of a scalar loss). The contenders
    take turns within every round, so a burst of load on a shared machine hits them all alike."""
    def once(fn):
        xi = x.detach().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            y = fn(xi)
            if backward:
                y.float().pow(2).mean().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    best = {}
    for name, fn in list(fns.items()):  # warm-up: allocator, kernels, lazy init
        try:
            once(fn)
            best[name] = float("inf")
        except Exception as e:  # noqa: BLE001  (report the row as unavailable)
            print(f"  skip {name} ({x.dtype}, backward={backward}): {type(e).__name__}: {str(e)[:80]}")
    for _ in range(repeats):
        for name in best:
            t0 = time.perf_counter()
            once(fns[name])
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=4096, help="tokens per batch (N = B·T)")
    p.add_argument("--d-model", type=int, default=256, help="model width C")
    p.add_argument("--experts", type=int, default=8, help="routed experts E")
    p.add_argument("--top-k", type=int, default=2, help="experts per token k")
    p.add_argument("--hidden", type=int, default=None,
                   help="expert SwiGLU width (default 8/3·d_model rounded up to 32)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per cell (best of)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps")
    args = p.parse_args(argv)
    hidden = args.hidden or 32 * -(-8 * args.d_model // 3 // 32)

    torch.manual_seed(0)
    device = torch.device(args.device)
    moe32, hf32 = make_layers(args.d_model, args.experts, args.top_k, hidden)
    print(f"E={args.experts} k={args.top_k} d_model={args.d_model} hidden={hidden} "
          f"tokens={args.tokens} device={device} torch {torch.__version__} "
          f"threads {torch.get_num_threads()}")

    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        moe = moe32.to(device=device, dtype=dtype)
        hf = {k: v.to(device=device, dtype=dtype) for k, v in hf32.items()}
        x = torch.randn(args.tokens, args.d_model, device=device, dtype=dtype)
        fns = {
            "minilib": lambda t, moe=moe: moe(t[None])[0][0],
            "tutorial loop": lambda t, moe=moe: tutorial_loop(moe, t),
            "dense loop": lambda t, moe=moe: dense_loop(moe, t),
            "hf eager": lambda t, hf=hf: hf["eager"](t[None])[0],
            "hf grouped_mm": lambda t, hf=hf: hf["grouped_mm"](t[None])[0],
        }
        with torch.no_grad():  # all rows compute the same function (checked in fp32 only)
            ref = fns["minilib"](x)
            for name, fn in list(fns.items()):
                try:
                    y = fn(x)
                    if dtype == torch.float32:
                        torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)
                except Exception as e:  # noqa: BLE001  (report the row as unavailable)
                    print(f"  skip {name} ({dtype_name}): {type(e).__name__}: {str(e)[:80]}")
                    fns.pop(name)
        for mode in ("forward", "forward+backward"):
            backward = mode != "forward"
            secs = time_all(fns, x, backward, args.repeats)
            for name, s in secs.items():
                rows.append((dtype_name, mode, name, args.tokens / s, secs["minilib"] / s))

    print(f"\n{'dtype':<9} {'pass':<17} {'implementation':<14} {'tokens/s':>10} "
          f"{'minilib speed-up':>17}")
    for dtype_name, mode, name, tps, rel in rows:
        speedup = 1.0 / rel  # how many times faster minilib is than this row
        print(f"{dtype_name:<9} {mode:<17} {name:<14} {tps:>10,.0f} {speedup:>16.2f}×")


if __name__ == "__main__":
    main()
