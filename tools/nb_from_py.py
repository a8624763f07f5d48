#!/usr/bin/env python
"""Build a notebook from a percent-format script (a drafting aid for authors).

Cells start with `# %%` (code) or `# %% [markdown]` (markdown, each line prefixed with `# `).

    python tools/nb_from_py.py draft.py solutions/07_pretraining.ipynb
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?.*$")


def convert(text: str) -> nbformat.NotebookNode:
    cells, kind, buf = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(buf).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in body.split("\n"))
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif body.strip():
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.split("\n"):
        m = HEADER.match(line)
        if m:
            flush()
            kind, buf = ("markdown" if m.group("md") else "code"), []
        else:
            buf.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    nb = convert(Path(src).read_text(encoding="utf-8"))
    nbformat.write(nb, dst)
    print(f"wrote {dst} ({len(nb.cells)} cells)")
