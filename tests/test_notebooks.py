"""Exercise notebooks: generated from solutions/, and runnable top to bottom untouched.

Solution notebooks are executed by nbval (pytest collects solutions/ itself). Here each
exercise notebook runs in a fresh kernel with MINILIB_QUICK=1 (the documented smaller setting),
so "Run All" on a notebook the learner has not touched is proven to reach the end.
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_exercise_notebooks_match_solutions():
    """notebooks/ is exactly what tools/make_exercises.py generates from solutions/."""
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_solution_has_an_exercise_twin():
    """Every chapter has both a solution and an exercise notebook."""
    sols = {p.name for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")}
    assert sols, "no solution notebooks found"
    assert sols == {p.name for p in EXERCISES}


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_untouched_exercise_notebook_runs(path, monkeypatch):
    """An untouched exercise notebook runs top to bottom: stubs raise, checkers report, no error."""
    monkeypatch.setenv("MINILIB_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    if "BEGIN SOLUTION" in "".join("".join(c.source) for c in
                                   nbformat.read(ROOT / "solutions" / path.name, as_version=4).cells):
        assert "not implemented yet" in outputs, "a check cell should report the missing exercise"
