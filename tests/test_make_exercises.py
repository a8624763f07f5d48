"""tools/make_exercises.py: solution blocks become stubs; misplaced markers are rejected."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_exercises as mx  # noqa: E402


def test_solution_block_becomes_stub_with_hint():
    """The marked block is replaced by a NotImplementedError carrying the hint, at its indent."""
    src = "def f(x):\n    # BEGIN SOLUTION add one\n    y = x + 1\n    return y\n    # END SOLUTION\n"
    out = mx.strip_solutions(src, "t")
    assert "x + 1" not in out
    assert "    raise NotImplementedError('Exercise: add one')" in out
    ns = {}
    exec(out, ns)  # the stub still defines the function
    with pytest.raises(NotImplementedError, match="add one"):
        ns["f"](1)


def test_code_outside_markers_is_kept():
    """Lines outside the markers pass through unchanged."""
    src = "import math\ndef f():\n    a = 1\n    # BEGIN SOLUTION\n    return a\n    # END SOLUTION\nprint(2)"
    out = mx.strip_solutions(src, "t")
    assert out.startswith("import math\ndef f():\n    a = 1\n")
    assert out.endswith("print(2)")


@pytest.mark.parametrize("src, msg", [
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION", "inside a function"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1", "without END"),
    ("def f():\n    return 1\n    # END SOLUTION", "without BEGIN"),
])
def test_bad_markers_are_rejected(src, msg):
    """Top-level, unclosed or unopened markers raise MarkerError naming the problem."""
    with pytest.raises(mx.MarkerError, match=msg):
        mx.strip_solutions(src, "t")


def test_outputs_are_stripped():
    """Generated exercise cells carry no outputs or execution counts."""
    nb = {"cells": [{"cell_type": "code", "source": ["print(1)"], "outputs": [{"x": 1}],
                     "execution_count": 3, "metadata": {}}], "metadata": {}}
    ex = mx.make_exercise(nb, "t")
    assert ex["cells"][0]["outputs"] == [] and ex["cells"][0]["execution_count"] is None
