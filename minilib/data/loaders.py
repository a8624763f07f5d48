"""Loaders: the synthetic world, local files, or a Hub dataset, as a `datasets.Dataset`.

Every loader takes `source`:

    "world"                      the synthetic world (offline, the default)
    a local path, glob or dir    in a documented format (data/README.md, examples in data/examples)
                                 "{split}" in the path is replaced by the split name
    any other string             a Hugging Face Hub dataset name, e.g. "roneneldan/TinyStories"

and returns a Dataset with the same columns whatever the source, so a chapter written against
the world runs unchanged on real data. Local formats:

    text     .txt/.md: documents separated by blank lines (or by "<|endoftext|>" when the file
             contains it, as TinyStories' text dumps do); UTF-8 only
    records  .jsonl (one JSON object per line), .json (a list of objects), .parquet
    images   records whose "image" column holds a path relative to the record file, or an image
             folder holding a metadata.jsonl whose "file_name" column names each image

Errors name the file and the problem: an unknown path → FileNotFoundError, no rows → ValueError,
a missing column → ValueError naming it, a missing image → FileNotFoundError, bad UTF-8 or JSON
→ ValueError. A Hub name without a network → NoNetworkError (a ConnectionError), checked before
`datasets` tries (and retries) a download.
"""

from __future__ import annotations

import glob
import json
import os
import socket
from pathlib import Path

from .images import SCENE_SPLITS, png_bytes, world_scenes
from .instructions import chat, world_instructions
from .preferences import world_preferences
from .stories import world_stories
from .tasks import world_tasks
from .world import check_n

TEXT_EXT = {".txt", ".md"}
RECORD_EXT = {".jsonl", ".json", ".parquet"}
EOT = "<|endoftext|>"


class NoNetworkError(ConnectionError):
    """A Hub dataset was asked for, but the Hub cannot be reached."""


# ----------------------------------------------------------------------------- sources


def _hub_offline_reason() -> str | None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    try:  # a cheap reachability probe; `datasets` itself would retry for minutes
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
    except OSError as e:
        return f"huggingface.co:443 is unreachable ({e.__class__.__name__})"
    return None


def _load_hub(name: str, split: str):
    reason = _hub_offline_reason()
    if reason:
        raise NoNetworkError(
            f"cannot load the Hub dataset {name!r}: no network ({reason}). Use source='world' "
            "for the built-in synthetic data, or a local path in a format listed in data/README.md.")
    import datasets

    return datasets.load_dataset(name, split=split)


def _resolve(source, split: str) -> tuple[str, object]:
    """('world', None) | ('local', [Path, ...]) | ('hub', name)."""
    if source == "world":
        return "world", None
    s = os.fspath(source).replace("{split}", split)
    p = Path(s).expanduser()
    if p.exists():
        if p.is_dir():
            if (p / "metadata.jsonl").exists():
                return "local", [p / "metadata.jsonl"]
            files = sorted(f for f in p.iterdir() if f.suffix in TEXT_EXT | RECORD_EXT)
            if not files:
                raise ValueError(f"{p}: the folder holds no .txt/.md/.jsonl/.json/.parquet file")
            return "local", files
        return "local", [p]
    if glob.has_magic(s):
        files = sorted(Path(f) for f in glob.glob(os.path.expanduser(s), recursive=True))
        if not files:
            raise FileNotFoundError(f"no file matches {s!r}")
        return "local", files
    looks_local = (isinstance(source, Path) or s.startswith((".", "/", "~"))
                   or Path(s).suffix in TEXT_EXT | RECORD_EXT or s.count("/") > 1)
    if looks_local:
        raise FileNotFoundError(f"{s}: no such file or folder")
    return "hub", s


# ----------------------------------------------------------------------------- local reading


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid UTF-8 (bad byte at offset {e.start}); "
                         "re-encode the file as UTF-8") from None


def _split_documents(text: str) -> list[str]:
    parts = text.split(EOT) if EOT in text else text.replace("\r\n", "\n").split("\n\n")
    return [d.strip() for d in parts if d.strip()]


def _read_records(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001  (pyarrow raises several types)
            raise ValueError(f"{path}: not a readable parquet file ({e})") from None
    text = _read_text(path)
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
        if not isinstance(rows, list):
            raise ValueError(f"{path}: a .json file must hold a list of objects")
    else:
        rows = []
        for i, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: invalid JSON at line {i}: {e.msg}") from None
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise ValueError(f"{path}: record {bad} is not a JSON object")
    return rows


def _require(rows: list[dict], columns: tuple[str, ...], where) -> None:
    if not rows:
        raise ValueError(f"{where}: the dataset is empty (no rows)")
    for c in columns:
        missing = [i for i, r in enumerate(rows) if c not in r]
        if missing:
            raise ValueError(f"{where}: missing column {c!r} (row {missing[0]}; columns are "
                             f"{sorted(rows[missing[0]])})")


def _local_rows(files: list[Path]) -> list[tuple[dict, Path]]:
    rows = []
    for f in files:
        if f.suffix in TEXT_EXT:
            rows += [({"text": d}, f) for d in _split_documents(_read_text(f))]
        elif f.suffix in RECORD_EXT:
            rows += [(r, f) for r in _read_records(f)]
        else:
            raise ValueError(f"{f}: unsupported file type {f.suffix!r}; use .txt, .md, .jsonl, "
                             ".json or .parquet")
    return rows


def _from_rows(rows: list[tuple[dict, Path]], norm, n, features=None):
    from datasets import Dataset

    out = [norm(r, f) for r, f in (rows if n is None else rows[:n])]
    return Dataset.from_list(out, features=features)


# ----------------------------------------------------------------------------- normalisers
# One per data kind; used for local rows and Hub rows alike, so both give the same columns.


def _messages(value, where) -> list[dict]:
    if isinstance(value, str):
        return chat(value)
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m
                                              and "content" in m for m in value):
        raise ValueError(f"{where}: messages must be a string or a list of "
                         "{{'role': ..., 'content': ...}} objects")
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]


def _norm_instruction(r: dict, where) -> dict:
    msgs = _messages(r["messages"], where)
    if msgs[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant's answer")
    return {"messages": msgs, "answer": str(r.get("answer") or msgs[-1]["content"]),
            "kind": str(r.get("kind") or "local")}


def _last_content(value, where) -> str:
    return value if isinstance(value, str) else _messages(value, where)[-1]["content"]


def _norm_preference(r: dict, where) -> dict:
    if "prompt" in r and r["prompt"] is not None:
        prompt = _messages(r["prompt"], where)
    elif isinstance(r["chosen"], list):  # conversational pairs: the prompt is the shared prefix
        prompt = _messages(r["chosen"], where)[:-1]
    else:
        raise ValueError(f"{where}: missing column 'prompt'")
    return {"prompt": prompt, "chosen": _last_content(r["chosen"], where),
            "rejected": _last_content(r["rejected"], where), "flaw": str(r.get("flaw") or "unknown")}


def _norm_task(r: dict, where) -> dict:
    prompt = r.get("prompt", r.get("question"))
    if prompt is None:
        raise ValueError(f"{where}: missing column 'prompt' (or 'question')")
    answer = str(r["answer"])
    if "####" in answer:  # GSM8K style: reasoning, then "#### final answer"
        answer = answer.split("####")[-1].strip()
    return {"prompt": _messages(prompt, where), "answer": answer,
            "difficulty": int(r.get("difficulty") or 1), "kind": str(r.get("kind") or "local")}


def _image_value(value, where: Path):
    if isinstance(value, dict) and value.get("bytes"):
        return {"bytes": value["bytes"], "path": None}
    if isinstance(value, dict):
        value = value.get("path")
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: 'image' must be a path relative to the file, or image bytes")
    path = (where.parent / value).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image file not found: {path}")
    return {"bytes": path.read_bytes(), "path": None}


def _norm_vqa(r: dict, where) -> dict:
    return {"image": _image_value(r["image"], where), "question": str(r["question"]),
            "answer": str(r["answer"])}


def _vqa_features():
    from datasets import Features, Image, Value

    return Features({"image": Image(), "question": Value("string"), "answer": Value("string")})


# ----------------------------------------------------------------------------- public loaders


def _load(kind, source, split, n, world_fn, columns, norm, features=None):
    check_n(n)
    mode, arg = _resolve(source, split)
    if mode == "world":
        from datasets import Dataset

        return Dataset.from_list(world_fn(), features=features)
    if mode == "local":
        rows = _local_rows(arg)
        if kind == "vqa":  # image folders name their files in "file_name" (HF imagefolder)
            rows = [({**r, "image": r.get("image", r.get("file_name"))}
                     if "file_name" in r else r, f) for r, f in rows]
        for f in arg:  # every file must hold rows with the needed columns
            _require([r for r, g in rows if g == f], columns, f)
        return _from_rows(rows, norm, n, features)
    ds = _load_hub(arg, split)
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"Hub dataset {arg!r}: missing column {missing[0]!r} "
                         f"(columns are {ds.column_names})")
    if n is not None:
        ds = ds.select(range(min(n, len(ds))))
    if kind == "corpus":
        return ds.select_columns(["text"])
    return ds.map(lambda r: norm(r, arg), remove_columns=ds.column_names, features=features)


def load_corpus(source="world", split: str = "train", n: int | None = None, seed: int = 0):
    """Pretraining text: a Dataset with one column, "text"."""
    return _load("corpus", source, split, n,
                 lambda: [{"text": s} for s in world_stories(split, n, seed)],
                 ("text",), lambda r, f: {"text": str(r["text"])})


def load_instructions(source="world", split: str = "train", n: int | None = None, seed: int = 0):
    """SFT conversations: columns "messages", "answer", "kind"."""
    return _load("instructions", source, split, n,
                 lambda: world_instructions(split, n, seed), ("messages",), _norm_instruction)


def load_preferences(source="world", split: str = "train", n: int | None = None, seed: int = 0):
    """Preference pairs: columns "prompt" (messages), "chosen", "rejected", "flaw"."""
    return _load("preferences", source, split, n,
                 lambda: world_preferences(split, n, seed), ("chosen", "rejected"),
                 _norm_preference)


def load_tasks(source="world", split: str = "train", n: int | None = None, seed: int = 0,
               difficulty: int | None = None):
    """Verifiable tasks: columns "prompt" (messages), "answer", "difficulty", "kind"."""
    return _load("tasks", source, split, n,
                 lambda: world_tasks(split, n, seed, difficulty), ("answer",), _norm_task)


def load_vqa(source="world", split: str = "train", n: int | None = None, seed: int = 0,
             image_size: int = 64):
    """Visual question answering: columns "image" (PIL on access), "question", "answer".

    For the world, `n` counts scenes; each scene gives several question rows.
    """
    if source == "world" and split not in SCENE_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SCENE_SPLITS)}; got {split!r}")

    def world():
        rows = []
        for sc in world_scenes(split, n, seed, image_size):
            img = {"bytes": png_bytes(sc["image"]), "path": None}  # encode once per scene
            rows += [{"image": img, "question": q["question"], "answer": q["answer"]}
                     for q in sc["questions"]]
        return rows

    return _load("vqa", source, split, n, world, ("image", "question", "answer"), _norm_vqa,
                 _vqa_features())
