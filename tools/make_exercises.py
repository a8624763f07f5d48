#!/usr/bin/env python
"""Generate the exercise notebooks in notebooks/ from the solution notebooks in solutions/.

Code between `# BEGIN SOLUTION [hint]` and `# END SOLUTION` is replaced by
`raise NotImplementedError("Exercise: <hint>")` at the marker's indent; outputs and execution
counts are stripped. Markers must be inside a function body, so that an untouched exercise
notebook still runs top to bottom (the check cell reports "not implemented yet").

    python tools/make_exercises.py           # (re)write notebooks/
    python tools/make_exercises.py --check   # exit 1 when notebooks/ is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\b[ :\-—]*(?P<hint>.*)$")
END = re.compile(r"^[ \t]*# END SOLUTION\b")


class MarkerError(ValueError):
    pass


def strip_solutions(source: str, where: str) -> str:
    """Replace every marked solution block in one cell's source by a NotImplementedError stub."""
    out, inside, lines = [], False, source.split("\n")
    for lineno, line in enumerate(lines, 1):
        m = BEGIN.match(line)
        if m:
            if inside:
                raise MarkerError(f"{where} line {lineno}: nested BEGIN SOLUTION")
            indent = m.group("indent")
            if not indent:
                raise MarkerError(f"{where} line {lineno}: BEGIN SOLUTION must be inside a function "
                                  "body (indented), so the exercise notebook still runs")
            hint = m.group("hint").strip() or "write this part"
            out.append(f"{indent}# TODO: {hint}")
            out.append(f"{indent}raise NotImplementedError({('Exercise: ' + hint)!r})")
            inside = True
        elif END.match(line):
            if not inside:
                raise MarkerError(f"{where} line {lineno}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


def make_exercise(nb: dict, name: str) -> dict:
    nb = json.loads(json.dumps(nb))  # deep copy
    for i, cell in enumerate(nb["cells"]):
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        new = strip_solutions(src, f"{name} cell {i}")
        cell["source"] = new.splitlines(keepends=True)
        cell["outputs"] = []
        cell["execution_count"] = None
    nb.setdefault("metadata", {}).pop("widgets", None)
    return nb


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def expected_notebooks() -> dict[Path, str]:
    out = {}
    for sol in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(sol.read_text(encoding="utf-8"))
        out[ROOT / "notebooks" / sol.name] = render(make_exercise(nb, sol.name))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if notebooks/ differs from what would be generated")
    args = parser.parse_args(argv)
    try:
        expected = expected_notebooks()
    except MarkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    existing = {p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    stale = [p for p, text in expected.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    extra = sorted(existing - set(expected))
    if args.check:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)} (run python tools/make_exercises.py)")
        for p in extra:
            print(f"orphan: {p.relative_to(ROOT)} has no solution notebook")
        if stale or extra:
            return 1
        print(f"ok: {len(expected)} exercise notebooks match solutions/")
        return 0
    (ROOT / "notebooks").mkdir(exist_ok=True)
    for p in stale:
        p.write_text(expected[p], encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
