"""Environment check: print [OK] / [FAIL] for each requirement of the course, with versions.

Used by `python tools/check_env.py` and by chapter 00.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys

# (import name, distribution name, minimum version, why the course needs it)
REQUIREMENTS = [
    ("torch", "torch", "2.4", "tensors, autograd, the models"),
    ("transformers", "transformers", "4.50", "reference models and export checks"),
    ("tokenizers", "tokenizers", "0.20", "fast byte-level BPE"),
    ("datasets", "datasets", "3.0", "dataset loading and caching"),
    ("safetensors", "safetensors", "0.4", "checkpoints without pickle"),
    ("trl", "trl", "0.20", "reference GRPO / DPO trainers"),
    ("matplotlib", "matplotlib", "3.7", "plots"),
    ("PIL", "pillow", "10.0", "rendering scene images"),
    ("ipywidgets", "ipywidgets", "8.0", "sliders and the chat box"),
    ("tqdm", "tqdm", "4.60", "progress bars"),
    ("nbval", "nbval", "0.10", "running notebooks as tests"),
    ("minilib", "minilib", "0.1", "this course's library (pip install -e .)"),
]


def _tuple(v: str) -> tuple:
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def check_environment(verbose: bool = True) -> bool:
    """Print one [OK]/[FAIL] line per requirement; True when everything is fine."""
    ok_all = True
    lines = []
    py_ok = sys.version_info >= (3, 10)
    lines.append(("OK" if py_ok else "FAIL", "python", sys.version.split()[0], ">= 3.10", ""))
    ok_all &= py_ok
    for mod, dist, minimum, why in REQUIREMENTS:
        try:
            importlib.import_module(mod)
            version = md.version(dist)
            good = _tuple(version) >= _tuple(minimum)
            lines.append(("OK" if good else "FAIL", dist, version, f">= {minimum}", why))
        except Exception as e:  # noqa: BLE001  (report any import problem as a FAIL line)
            good = False
            lines.append(("FAIL", dist, f"not importable ({type(e).__name__})", f">= {minimum}", why))
        ok_all &= good
    import torch

    dev = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    lines.append(("OK", "device", dev, "", f"{torch.get_num_threads()} CPU threads"))
    if verbose:
        for status, name, version, need, why in lines:
            print(f"[{status:>4}] {name:<13} {version:<22} {need:<9} {why}")
        print("all requirements met" if ok_all else "some requirements are missing: "
              "pip install -r requirements.txt")
    return ok_all
