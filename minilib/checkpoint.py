"""Checkpoints that load without running pickled code, and survive a crash mid-save.

A checkpoint is a directory:

    model.safetensors      the weights (safetensors: a JSON header + raw tensor bytes)
    config.json            the model config (`ModelConfig.to_dict()`)
    optimizer.safetensors  optimizer state tensors, flattened to "state.<param index>.<name>"
    rng.safetensors        torch CPU (and CUDA) generator states, as uint8 tensors
    trainer_state.json     step, optimizer hyper-parameters, Python/NumPy RNG, data position,
                           loss history, `extra`, and the sha256 of every file above

Why not `torch.save`? Unpickling can run arbitrary code, so a downloaded `.pt` file is a
program. safetensors and JSON are data only (see the safetensors README and PyTorch's
`weights_only=True` notes).

Atomic save. Everything is written to `<dir>.tmp`, then `<dir>` is renamed to `<dir>.old`,
`<dir>.tmp` to `<dir>`, and `<dir>.old` is deleted. A crash while writing leaves `<dir>`
untouched; a crash between the two renames leaves the previous checkpoint in `<dir>.old`, which
`load_checkpoint` falls back to. (A directory cannot be replaced by one `os.replace` when it
is not empty, hence the two steps.)

Integrity. The sha256 of each file is checked on load, so a truncated or bit-flipped file is
reported by name instead of silently loading garbage.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from minilib.utils import atomic_write_json

STATE_FILE = "trainer_state.json"
FILES = ("model.safetensors", "config.json", "optimizer.safetensors", "rng.safetensors")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupted, or does not fit the model."""


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):        # DistributedDataParallel
            model = model.module
        elif hasattr(model, "_orig_mod"):   # torch.compile
            model = model._orig_mod
        else:
            return model


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- RNG states


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Every generator a training step may draw from: (tensors, json-able states)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    plain = {"python": [version, list(mt), gauss],
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    version, mt, gauss = plain["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# ----------------------------------------------------------------------------- optimizer


def _split_optimizer_state(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state_dict -> (flat tensors for safetensors, JSON for everything else)."""
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, val in state.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = val.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{name}"] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = val
    for key, val in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()}
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------- save / load


def _write(tmp: Path, model, optimizer, step, data_state, history, extra) -> None:
    """Write every file of a checkpoint into the (fresh) directory `tmp`."""
    model = unwrap(model)
    save_model(model, str(tmp / "model.safetensors"))  # handles tied (shared) weights
    cfg = model.cfg.to_dict() if hasattr(model, "cfg") and hasattr(model.cfg, "to_dict") else {}
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    opt_meta = None
    if optimizer is not None:
        opt_tensors, opt_meta = _split_optimizer_state(optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng_tensors, rng_plain = rng_state()
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    state = {"step": step, "optimizer": opt_meta, "rng": rng_plain, "data": data_state,
             "history": history or {}, "extra": extra or {},
             "sha256": {f: _sha256(tmp / f) for f in FILES if (tmp / f).exists()}}
    atomic_write_json(tmp / STATE_FILE, state)


def save_checkpoint(ckpt_dir: str | Path, model: torch.nn.Module, optimizer=None, *,
                    step: int = 0, data_state: dict | None = None,
                    history: dict | None = None, extra: dict | None = None) -> Path:
    """Save weights, config and training state into `ckpt_dir`, atomically (see module doc)."""
    ckpt_dir = Path(ckpt_dir)
    tmp, old = ckpt_dir.with_name(ckpt_dir.name + ".tmp"), ckpt_dir.with_name(ckpt_dir.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of an earlier interrupted save
    tmp.mkdir(parents=True)
    try:
        _write(tmp, model, optimizer, step, data_state, history, extra)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if ckpt_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        ckpt_dir.rename(old)
    tmp.rename(ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)
    return ckpt_dir


def checkpoint_exists(ckpt_dir: str | Path) -> bool:
    ckpt_dir = Path(ckpt_dir)
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    return (ckpt_dir / STATE_FILE).exists() or (old / STATE_FILE).exists()


def _config_diff(saved: dict, current: dict) -> str:
    keys = sorted(set(saved) | set(current))
    return ", ".join(f"{k}: checkpoint {saved.get(k, '<missing>')!r} vs model "
                     f"{current.get(k, '<missing>')!r}" for k in keys if saved.get(k) != current.get(k))


def load_checkpoint(ckpt_dir: str | Path, model: torch.nn.Module | None = None, optimizer=None,
                    *, map_location=None, restore_rng: bool = False) -> dict:
    """Load a checkpoint; returns {"model", "step", "data", "history", "extra", "config"}.

    With `model=None` a MiniLLM is built from config.json. With a model, its config must equal
    the saved one (CheckpointError naming the differing fields otherwise). The optimizer state
    is loaded into `optimizer` when given; RNG states are restored when `restore_rng`.
    """
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / STATE_FILE).exists():
        old = ckpt_dir.with_name(ckpt_dir.name + ".old")
        if (old / STATE_FILE).exists():  # a save was interrupted between its two renames
            ckpt_dir = old
        else:
            raise CheckpointError(f"no checkpoint in {ckpt_dir} ({STATE_FILE} not found)")
    try:
        state = json.loads((ckpt_dir / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{ckpt_dir / STATE_FILE} is corrupted: {e}") from e
    for name, digest in state.get("sha256", {}).items():
        path = ckpt_dir / name
        if not path.exists():
            raise CheckpointError(f"{path} is missing")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path} is truncated or corrupted (sha256 does not match "
                                  f"the one recorded in {STATE_FILE})")
    config = json.loads((ckpt_dir / "config.json").read_text())
    if model is None:
        from minilib.model import MiniLLM, ModelConfig

        model = MiniLLM(ModelConfig.from_dict(config))
    else:
        current = unwrap(model).cfg.to_dict() if hasattr(unwrap(model), "cfg") else {}
        if config and current and config != current:
            raise CheckpointError(f"{ckpt_dir / 'config.json'} does not match the model: "
                                  + _config_diff(config, current))
    device = map_location or next(unwrap(model).parameters()).device
    try:
        missing, unexpected = load_model(unwrap(model), str(ckpt_dir / "model.safetensors"),
                                         strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt_dir / 'model.safetensors'} cannot be loaded: {e}") from e
    if missing or unexpected:
        raise CheckpointError(f"{ckpt_dir / 'model.safetensors'} does not fit the model: "
                              f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    if optimizer is not None:
        if state.get("optimizer") is None:
            raise CheckpointError(f"{ckpt_dir} holds no optimizer state")
        tensors = load_file(str(ckpt_dir / "optimizer.safetensors"), device=str(device))
        try:
            optimizer.load_state_dict(_join_optimizer_state(tensors, state["optimizer"]))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{ckpt_dir / 'optimizer.safetensors'} does not fit the "
                                  f"optimizer: {e}") from e
    if restore_rng:
        set_rng_state(load_file(str(ckpt_dir / "rng.safetensors")), state["rng"])
    return {"model": model, "step": state["step"], "data": state.get("data"),
            "history": state.get("history", {}), "extra": state.get("extra", {}),
            "config": config}
