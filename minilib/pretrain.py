"""The pretraining stage: the course's base model, its stage cache, and the torchrun entry point.

`get_base_model(run)` returns (MiniLLM, Tokenizer). When `runs/<run>/base/stage.json` records
exactly `BASE_RECIPE` the checkpoint there is loaded; otherwise the recipe is trained on the
spot (progress bar) and saved as a checkpoint plus `stage.json` (written last, so a killed run
never looks finished). Chapter 07, every later chapter and `python -m minilib run` share it.

Multi-process (DistributedDataParallel; same code on CPU with gloo, on GPUs with nccl):

    torchrun --nproc_per_node=2 -m minilib.pretrain --run-name ddp            # 2 CPU processes
    torchrun --nproc_per_node=8 -m minilib.pretrain --run-name gpu --big      # 8 GPUs, bigger model

Each rank reads its slice of every global batch (see minilib/packing.py), so N ranks train on
N x batch_size sequences per step; rank 0 writes the stage.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import torch

from minilib.checkpoint import load_checkpoint, save_checkpoint
from minilib.packing import PackedBatches, pack_tokens
from minilib.train import BASE_RECIPE, TrainConfig, init_distributed, shutdown_distributed, train
from minilib.utils import mark_stage_done, pick_device, run_dir, stage_is_current

# A bigger recipe for a GPU (the `--big` flag and the notebooks' BIG switch): ~30M parameters.
BIG_OVERRIDES = {
    "model": {"d_model": 512, "n_layer": 8, "n_head": 8, "n_kv_head": 4},
    "train": {"batch_size": 64, "max_steps": 3000, "lr": 1e-3, "min_lr": 1e-4,
              "warmup_steps": 200, "eval_every": 250},
}


def merge_recipe(base: dict, overrides: dict) -> dict:
    """A copy of `base` with the per-section `overrides` applied."""
    out = copy.deepcopy(base)
    for section, values in overrides.items():
        out.setdefault(section, {}).update(values)
    return out


def load_texts(data: dict, split: str) -> list[str]:
    """The recipe's corpus: the synthetic world's stories, or anything `load_corpus` accepts."""
    if data["source"] == "world":
        from minilib.data import world_stories

        n = data.get("n_train") if split == "train" else data.get("n_val")
        return world_stories(split, n=n, seed=data.get("seed", 0))
    from minilib.data import load_corpus

    return list(load_corpus(data["source"], split=split)["text"])


def build_model(recipe: dict, tokenizer):
    from minilib.model import MiniLLM, ModelConfig

    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, **recipe["model"])
    return MiniLLM(cfg)


def pretrain(recipe: dict, tokenizer, *, device=None, rank: int = 0, world_size: int = 1,
             ckpt_dir=None, resume: bool = False, plot: bool = True, progress: bool = True):
    """Train the recipe's model on its corpus: (model, history, summary)."""
    cfg = TrainConfig(**recipe["train"])
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(recipe, tokenizer)
    rows = pack_tokens(load_texts(recipe["data"], "train"), tokenizer, cfg.seq_len)
    val_rows = pack_tokens(load_texts(recipe["data"], "validation"), tokenizer, cfg.seq_len)
    batches = PackedBatches(rows, cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world_size)

    def val_batches():
        # a fresh iterator with a fixed seed: the same validation batches at every evaluation
        return PackedBatches(val_rows, min(cfg.batch_size, len(val_rows) // world_size),
                             seed=0, rank=rank, world_size=world_size)

    history = train(model, batches, cfg, val_batches=val_batches, device=device, plot=plot,
                    progress=progress, ckpt_dir=ckpt_dir, resume=resume)
    summary = {"val_loss": round(history["val_loss"][-1][1], 4),
               "train_loss": round(history["train_loss"][-1][1], 4),
               "train_seconds": round(history["seconds"], 1),
               "tokens_seen": history["tokens"][-1][1], "n_params": model.num_params(),
               "train_rows": len(rows), "world_size": world_size}
    return model, history, summary


def _stage_recipe(recipe: dict, tokenizer) -> dict:
    return {"stage": "base", **recipe, "vocab_size": tokenizer.vocab_size}


def base_is_trained(run: str = "default", *, recipe: dict | None = None, stage: str = "base") -> bool:
    """True when runs/<run>/<stage> holds a base model built with `recipe` (default BASE_RECIPE)."""
    from minilib.tokenizer import get_tokenizer

    recipe = BASE_RECIPE if recipe is None else recipe
    return stage_is_current(run_dir(run) / stage, _stage_recipe(recipe, get_tokenizer(run)))


def get_base_model(run: str = "default", device=None, *, recipe: dict | None = None,
                   stage: str = "base", progress: bool = True, plot: bool = True):
    """(MiniLLM in eval mode on `device`, Tokenizer) of runs/<run>/<stage>; trained if needed.

    `recipe` defaults to BASE_RECIPE; another recipe (a bigger model, another corpus) is a
    different stage: pass another `stage` name to keep the course's base model as it is.
    """
    from minilib.tokenizer import get_tokenizer

    recipe = BASE_RECIPE if recipe is None else recipe
    device = pick_device(device) if not isinstance(device, torch.device) else device
    tokenizer = get_tokenizer(run)
    stage_dir = run_dir(run) / stage
    full_recipe = _stage_recipe(recipe, tokenizer)
    if not stage_is_current(stage_dir, full_recipe):
        print(f"pretraining the base model ({recipe['train']['max_steps']} steps) -> {stage_dir}",
              flush=True)
        model, history, summary = pretrain(recipe, tokenizer, device=device, progress=progress,
                                           plot=plot)
        save_checkpoint(stage_dir, model, step=recipe["train"]["max_steps"],
                        history={k: v for k, v in history.items() if k != "seconds"},
                        extra={"summary": summary})
        mark_stage_done(stage_dir, full_recipe, summary)
        print(f"done: val loss {summary['val_loss']:.3f} in {summary['train_seconds']:.0f} s",
              flush=True)
    model = load_checkpoint(stage_dir, map_location=device)["model"]
    return model.to(device).eval(), tokenizer


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Pretrain the course base model (works under torchrun).")
    # not "--run": torchrun would take it for an abbreviation of its own --run-path
    p.add_argument("--run-name", default="default", help="run directory name under runs/")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the recipe's)")
    p.add_argument("--batch-size", type=int, help="sequences per step *per process*")
    p.add_argument("--big", action="store_true", help="the GPU-sized recipe (BIG_OVERRIDES)")
    p.add_argument("--data", help="corpus: 'world', a local .txt/.jsonl file or a Hub dataset name")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), help="autocast dtype")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--resume", action="store_true",
                   help="continue from runs/<run-name>/base.ckpt if an earlier run was interrupted")
    args = p.parse_args(argv)

    recipe = merge_recipe(BASE_RECIPE, BIG_OVERRIDES) if args.big else copy.deepcopy(BASE_RECIPE)
    train_over = {k: v for k, v in (("max_steps", args.steps), ("batch_size", args.batch_size),
                                    ("dtype", args.dtype)) if v is not None}
    if args.compile:
        train_over["compile"] = True
    if train_over.get("max_steps") is not None:  # a shorter run: shorter warmup, 5 checkpoints
        steps = train_over["max_steps"]
        train_over["warmup_steps"] = min(recipe["train"]["warmup_steps"], max(1, steps // 10))
        train_over["ckpt_every"] = max(1, steps // 5)
    recipe = merge_recipe(recipe, {"train": train_over})
    if args.data:
        recipe["data"]["source"] = args.data

    rank, world_size, device = init_distributed()
    from minilib.tokenizer import get_tokenizer

    if rank == 0:
        tokenizer = get_tokenizer(args.run_name)  # rank 0 trains it once; the others then load it
    if world_size > 1:
        torch.distributed.barrier()
    if rank != 0:
        tokenizer = get_tokenizer(args.run_name)
    stage = run_dir(args.run_name) / "base"
    start = time.perf_counter()
    model, history, summary = pretrain(recipe, tokenizer, device=device, rank=rank,
                                       world_size=world_size, plot=False,
                                       ckpt_dir=stage.with_name("base.ckpt"), resume=args.resume)
    if rank == 0:
        full_recipe = _stage_recipe(recipe, tokenizer)
        if world_size > 1:
            full_recipe["world_size"] = world_size  # a different global batch: another recipe
        save_checkpoint(stage, model, step=recipe["train"]["max_steps"],
                        extra={"summary": summary})
        mark_stage_done(stage, full_recipe, summary)
        print(json.dumps({**summary, "wall_seconds": round(time.perf_counter() - start, 1),
                          "stage": str(stage)}, indent=1), flush=True)
    if world_size > 1:
        shutdown_distributed()
        sys.stdout.flush()
        sys.stderr.flush()
        # gloo can abort at interpreter exit after the work is done; leave without teardown
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
