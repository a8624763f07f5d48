#!/usr/bin/env python
"""Execute solution notebooks in place (outputs are committed), then regenerate exercises.

    python tools/run_notebooks.py                         # every solutions/NN_*.ipynb
    python tools/run_notebooks.py solutions/02_rmsnorm.ipynb
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_exercises  # noqa: E402


def execute(path: Path, timeout: int = 900) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.time() - start
    nb.metadata.pop("widgets", None)  # widget state is large and meaningless on GitHub
    path.write_text(make_exercises.render(json.loads(nbformat.writes(nb))), encoding="utf-8")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", help="solution notebooks (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.paths] or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for p in paths:
        print(f"running {p} ...", flush=True)
        print(f"  done in {execute(p.resolve(), args.timeout):.0f} s", flush=True)
    return make_exercises.main([])


if __name__ == "__main__":
    sys.exit(main())
