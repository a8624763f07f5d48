#!/usr/bin/env python
"""RMSNorm vs LayerNorm: forward and forward+backward time at several widths (chapter 02's table).

Tests the claim that RMSNorm "reduces computational overhead by ~40%" compared with LayerNorm.
Four implementations over a (rows, width) float32 activation of fixed size (rows = numel // width):
    LayerNorm torch     torch.nn.LayerNorm (a fused native kernel)
    RMSNorm torch       torch.nn.RMSNorm
    LayerNorm formula   (x - mean) / sqrt(var + eps) * w + b, written with tensor ops
    RMSNorm minilib     minilib.norm.RMSNorm, written with tensor ops (fp32 statistic)
eager, and compiled with torch.compile when --compile is given and compilation works here.
Timings are the minimum over interleaved rounds (one thread by default); on a shared machine
they are still noisy, so read the ratios, not the milliseconds.

    python benchmarks/bench_norm.py                       # eager, widths 256..4096
    python benchmarks/bench_norm.py --compile --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minilib.norm import RMSNorm  # noqa: E402


class FormulaLayerNorm(nn.Module):
    """LayerNorm written from the formula, the fair twin of a hand-written RMSNorm."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim)), eps

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)  # (..., 1)
        var = (x - mu).pow(2).mean(-1, keepdim=True)  # (..., 1), biased as in LayerNorm
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias  # (..., C)


IMPLS = {
    "LayerNorm torch": lambda c: nn.LayerNorm(c, eps=1e-6),
    "RMSNorm torch": lambda c: nn.RMSNorm(c, eps=1e-6),
    "LayerNorm formula": FormulaLayerNorm,
    "RMSNorm minilib": RMSNorm,
}


def make_step(module: nn.Module, x: torch.Tensor, backward: bool):
    """One forward (no grad: inference) or one forward+backward (training) as a closure."""
    if not backward:
        def step():
            with torch.no_grad():
                module(x)
        return step
    xg = x.clone().requires_grad_(True)
    grad = torch.randn_like(x)

    def step():
        module(xg).backward(grad)
    return step


def time_steps(steps: dict, rounds: int = 5, target_s: float = 0.02) -> dict:
    """Minimum seconds per call of each step, measured in interleaved rounds.

    Interleaving (A B C D, A B C D, ...) and taking the minimum over rounds makes the
    comparison fair on a shared machine: a burst of load from another process slows one
    round of every implementation instead of one implementation's whole measurement.
    """
    n_iter = {}
    for name, step in steps.items():
        step()  # warm up (and trigger compilation)
        once = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            step()
            once = min(once, time.perf_counter() - t0)
        n_iter[name] = max(1, int(target_s / max(once, 1e-6)))
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(n_iter[name]):
                step()
            best[name] = min(best[name], (time.perf_counter() - t0) / n_iter[name])
    return best


def run(widths, numel: int = 2**21, modes=("eager",), rounds: int = 5, progress=None):
    """Rows of {"mode", "impl", "width", "fwd_ms", "fwdbwd_ms"}; a failed compile gives an "error".

    Every width normalises the same number of activations `numel` (rows = numel // width), so
    times compare across widths and no tensor is so large that allocation dominates.
    """
    results = []
    torch.manual_seed(0)
    for mode in modes:
        for width in widths:
            x = torch.randn(numel // width, width)  # (rows, C)
            rows_here = {name: {"mode": mode, "impl": name, "width": width} for name in IMPLS}
            for key, backward in (("fwd_ms", False), ("fwdbwd_ms", True)):
                steps = {}
                if mode == "compile":
                    torch._dynamo.reset()  # fresh compile caches: no recompile limit across widths
                for name, make in IMPLS.items():
                    if "error" in rows_here[name]:
                        continue
                    try:
                        module = torch.compile(make(width)) if mode == "compile" else make(width)
                        steps[name] = make_step(module, x, backward)
                        steps[name]()  # compile now, so a failure is caught here
                    except Exception as e:  # noqa: BLE001  (compile needs a C++ toolchain; report)
                        rows_here[name]["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                        steps.pop(name, None)
                for name, sec in time_steps(steps, rounds).items():
                    rows_here[name][key] = 1e3 * sec
                if progress:
                    progress.update(1)
            results.extend(rows_here.values())
    return results


def ratios(results):
    """{(mode, width, pass): time(RMSNorm)/time(LayerNorm)} for the torch pair and the formula pair."""
    out = {}
    idx = {(r["mode"], r["width"], r["impl"]): r for r in results if "error" not in r}
    for (mode, width, impl), r in idx.items():
        for rms, ln, label in (("RMSNorm torch", "LayerNorm torch", "torch"),
                               ("RMSNorm minilib", "LayerNorm formula", "formula")):
            if impl == rms and (mode, width, ln) in idx:
                for key in ("fwd_ms", "fwdbwd_ms"):
                    out[(mode, width, label, key)] = r[key] / idx[(mode, width, ln)][key]
    return out


def format_table(results) -> str:
    lines = [f"{'mode':8} {'width':>6} {'implementation':18} {'fwd ms':>9} {'fwd+bwd ms':>11}"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['mode']:8} {r['width']:>6} {r['impl']:18} failed: {r['error']}")
        else:
            lines.append(f"{r['mode']:8} {r['width']:>6} {r['impl']:18} {r['fwd_ms']:9.3f} {r['fwdbwd_ms']:11.3f}")
    lines.append("")
    lines.append("time(RMSNorm) / time(LayerNorm)   (< 1: RMSNorm faster; 0.60 would be the '~40% less' claim)")
    lines.append(f"{'mode':8} {'width':>6} {'pair':8} {'fwd':>6} {'fwd+bwd':>8}")
    rs = ratios(results)
    for mode, width, label in sorted({k[:3] for k in rs}):
        lines.append(f"{mode:8} {width:>6} {label:8} {rs[(mode, width, label, 'fwd_ms')]:6.2f} "
                     f"{rs[(mode, width, label, 'fwdbwd_ms')]:8.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 4096], help="hidden sizes")
    p.add_argument("--numel", type=int, default=2**21,
                   help="activations per batch; rows = numel // width")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is the most repeatable on a busy machine)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd modules")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (minimum kept)")
    args = p.parse_args(argv)
    modes = ("eager", "compile") if args.compile else ("eager",)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.numel} activations")
    print(format_table(run(args.widths, args.numel, modes, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
