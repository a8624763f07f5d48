"""The end-to-end pipeline behind `python -m minilib run`, and its report card.

Each stage is one plain function that asks minilib for its artifact — the same `get_*` calls the
chapters make — so a stage a notebook already built is loaded, not redone, and a stage the
pipeline built is what the next chapter loads. A stage returns a small dict of results; the
pipeline prints it and writes `runs/<name>/report.md`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from minilib.utils import pick_device, run_dir, tqdm


def stage_data(run: str, device) -> dict:
    """Generate a sample of every kind of world data and count the default splits."""
    from minilib import data

    out = run_dir(run) / "data"
    out.mkdir(exist_ok=True)
    stories = data.world_stories("train")
    val = data.world_stories("validation")
    instr = data.world_instructions("train")
    prefs = data.world_preferences("train")
    tasks = data.world_tasks("train")
    scenes = data.world_scenes("train", n=16)
    lines = ["# World data samples", "", "## Story", "", stories[0], "",
             "## Instruction", "", "```json", json.dumps(instr[0], indent=1), "```", "",
             "## Preference pair", "", "```json", json.dumps(prefs[0], indent=1), "```", "",
             "## Task", "", "```json", json.dumps(tasks[0], indent=1), "```", ""]
    (out / "samples.md").write_text("\n".join(lines), encoding="utf-8")
    for i, s in enumerate(scenes[:4]):
        s["image"].save(out / f"scene_{i}.png")
    return {"train stories": len(stories), "validation stories": len(val),
            "story MB": round(sum(len(s) for s in stories) / 1e6, 2),
            "instructions": len(instr), "preference pairs": len(prefs), "tasks": len(tasks),
            "samples": str(out / "samples.md")}


def stage_tokenizer(run: str, device) -> dict:
    """Train (or load) the course's byte-level BPE tokenizer."""
    from minilib.tokenizer import get_tokenizer
    from minilib.utils import stage_summary

    tok = get_tokenizer(run)
    summary = dict(stage_summary(run_dir(run) / "tokenizer"))
    summary["vocab_size"] = tok.vocab_size
    return summary


def stage_pretrain(run: str, device) -> dict:
    """Pretrain (or load) the base model on world stories and sample a story from it."""
    from minilib.generate import generate_text
    from minilib.train import get_base_model
    from minilib.utils import stage_summary

    model, tok = get_base_model(run, device=device)
    summary = dict(stage_summary(run_dir(run) / "base"))
    summary["sample"] = generate_text(model, tok, "Once upon a time", max_new_tokens=60,
                                      temperature=0.7, top_k=50)
    return summary


def stage_sft(run: str, device) -> dict:
    """Instruction-tune (or load) the base model and report held-out accuracy."""
    from minilib.sft import get_sft_model
    from minilib.utils import stage_summary

    get_sft_model(run, device=device)
    return dict(stage_summary(run_dir(run) / "sft"))


# The stages in order; later issues append theirs (reward, ppo, grpo, dpo, vision, vlm, export).
STAGES: dict[str, Callable[[str, object], dict]] = {
    "data": stage_data,
    "tokenizer": stage_tokenizer,
    "pretrain": stage_pretrain,
    "sft": stage_sft,
}
# Where each stage keeps its artifact under runs/<name>/ (removed by --force).
STAGE_DIRS = {"data": "data", "tokenizer": "tokenizer", "pretrain": "base", "sft": "sft"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minilib",
        description="Build a small LLM end to end on the offline world data and print a report card.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run}")
    run = sub.add_parser(
        "run", help="run the pipeline (each finished stage is loaded, not redone)",
        description="Run the end-to-end pipeline: " + " → ".join(STAGES) + ". Finished stages "
                    "are loaded from runs/<name>/ and reused; the report is written to "
                    "runs/<name>/report.md.")
    run.add_argument("--name", default="default",
                     help="run name: artifacts go to runs/<name>/ (default: %(default)s, the run "
                          "the notebooks share)")
    run.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES),
                     metavar="STAGE",
                     help="stages to run, in pipeline order (choices: " + ", ".join(STAGES)
                          + "; default: all). Stages a chosen one needs are built on demand.")
    run.add_argument("--force", nargs="*", choices=list(STAGES), default=None, metavar="STAGE",
                     help="rebuild these stages and every stage after them (no names: every chosen stage) "
                          "instead of loading them")
    run.add_argument("--device", default="auto",
                     help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps (default: %(default)s)")
    return parser


def write_report(path: Path, results: dict[str, dict], seconds: dict[str, float], device) -> None:
    lines = ["# Report card", "", f"device: `{device}`", ""]
    for name, res in results.items():
        lines += [f"## {name} ({seconds[name]:.0f} s)", "", "| what | value |", "|---|---|"]
        for k, v in res.items():
            text = str(v).replace("\n", " ").replace("|", "\\|")
            lines.append(f"| {k} | {text[:300]} |")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = pick_device(args.device)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    chosen = [s for s in STAGES if s in args.stages]
    root = run_dir(args.name)
    if args.force is not None:
        # A rebuilt stage invalidates every stage after it, so those are rebuilt too.
        first = min(list(STAGES).index(s) for s in (args.force or chosen))
        for s in list(STAGES)[first:]:
            shutil.rmtree(root / STAGE_DIRS[s], ignore_errors=True)
    results, seconds = {}, {}
    bar = tqdm(chosen, desc="pipeline", unit="stage")
    for name in bar:
        bar.set_postfix_str(name)
        start = time.time()
        results[name] = STAGES[name](args.name, device)
        seconds[name] = time.time() - start
        lines = [f"\n== {name} ({seconds[name]:.0f} s)"]
        lines += [f"   {k}: {v}" for k, v in results[name].items()]
        tqdm.write("\n".join(lines))  # one write: the bar is redrawn once, not per line
    report = root / "report.md"
    write_report(report, results, seconds, device)
    print(f"\nreport card written to {report}")
    return 0
