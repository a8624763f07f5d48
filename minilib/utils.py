"""Shared helpers every chapter uses: device, seeds, run directories, atomic writes, plots.

Kept dependency-light (torch, matplotlib, tqdm) so that every other module may import it.
"""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm  # noqa: F401  (re-exported: `from minilib.utils import tqdm`)

DEVICES = ("auto", "cpu", "cuda", "mps")

# True while the test suite runs the *exercise* notebooks: chapters shrink step counts with it.
QUICK = os.environ.get("MINILIB_QUICK", "0") == "1"

REPO_ROOT = Path(__file__).resolve().parents[1]


def pick_device(name: str | None = None) -> torch.device:
    """The device to use: `name` if given, else cuda > mps > cpu."""
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = str(name).split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid devices are {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but MPS is not available on this machine")
    return torch.device(name)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so runs repeat."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def runs_root() -> Path:
    """Where trained artifacts live: $MINILIB_RUNS, else <repo>/runs."""
    env = os.environ.get("MINILIB_RUNS")
    return Path(env) if env else REPO_ROOT / "runs"


def run_dir(name: str = "default") -> Path:
    """The directory of one run (created): every stage of the pipeline writes below it."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"run name must be a plain directory name, got {name!r}")
    path = runs_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash mid-write never leaves a half file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


# ----------------------------------------------------------------------------- stage cache


def stage_is_current(stage_dir: str | Path, recipe: dict) -> bool:
    """True when `stage_dir` holds a finished stage built with exactly `recipe`."""
    marker = Path(stage_dir) / "stage.json"
    if not marker.exists():
        return False
    try:
        done = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return done.get("recipe") == json.loads(json.dumps(recipe))


def mark_stage_done(stage_dir: str | Path, recipe: dict, summary: dict | None = None) -> None:
    """Record that the stage in `stage_dir` finished with `recipe` (written last, atomically)."""
    atomic_write_json(Path(stage_dir) / "stage.json", {"recipe": recipe, "summary": summary or {}})


def stage_summary(stage_dir: str | Path) -> dict:
    marker = Path(stage_dir) / "stage.json"
    return json.loads(marker.read_text()).get("summary", {}) if marker.exists() else {}


# ----------------------------------------------------------------------------- environment


def versions() -> dict[str, str]:
    """Versions of Python and the packages the course uses (missing ones as 'missing')."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "tokenizers", "datasets", "safetensors", "trl",
                "matplotlib", "pillow", "ipywidgets", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def print_versions() -> None:
    v = versions()
    dev = pick_device()
    print(" · ".join(f"{k} {val}" for k, val in v.items()) + f" · device {dev}")


# ----------------------------------------------------------------------------- plots


def plot_history(history: dict[str, list], ax=None, title: str = "", logy: bool = False):
    """Plot curves from {"name": [values]} or {"name": [(step, value), ...]}; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in history.items():
        if not values:
            continue
        if isinstance(values[0], (tuple, list)):
            xs, ys = zip(*values)
        else:
            xs, ys = range(len(values)), values
        ax.plot(xs, ys, label=name, marker="o" if len(ys) < 20 else None)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


class LivePlot:
    """A loss plot that redraws in place in Jupyter (and does nothing outside it).

    Call `update(history)` every few steps; `close()` leaves the final figure in the output.
    """

    def __init__(self, title: str = "loss", every: int = 1):
        self.title, self.every, self.calls = title, every, 0
        self.handle = None
        try:
            from IPython import get_ipython

            self.enabled = get_ipython() is not None and "IPKernelApp" in get_ipython().config
        except Exception:  # noqa: BLE001  (no IPython: plain script)
            self.enabled = False

    def update(self, history: dict[str, list]) -> None:
        self.calls += 1
        if not self.enabled or self.calls % self.every:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_history(history, ax=ax, title=self.title)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
