"""Tokenize a dataset once and reuse the result: a ragged array of token ids on disk.

The cache file holds every example's ids concatenated into one flat array plus the offsets of
each example (the layout of nanoGPT's `train.bin` with an index added, so SFT examples stay
separable); an optional per-token mask (SFT's "train on the assistant's tokens only") rides
along. The file name is a hash of the recipe: `key` (which tokenizer, which settings — the
caller's job, since a function can't be hashed reliably) and a hash of the content itself, so
changing either tokenizes again and an unchanged recipe loads in milliseconds.

    cache = cache_tokenized(load_corpus()["text"], tok.encode, run_dir() / "tokens",
                            key=tokenizer_hash)
    cache.tokens            # (N,) every token of the corpus, for pretraining batches
    cache[i]                # (T_i,) the ids of example i
    cache.mask_of(i)        # (T_i,) its loss mask, when tokenize_fn returned (ids, mask)
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, kw_only=True)
class TokenCache:
    """Token ids of many examples; invariant: offsets[0] == 0, offsets[-1] == len(tokens)."""

    tokens: np.ndarray  # (N,) uint16 when the ids fit, else int32
    offsets: np.ndarray  # (E + 1,) int64
    mask: np.ndarray | None  # (N,) uint8, or None
    path: Path
    hit: bool  # True when loaded from disk rather than tokenized now

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def mask_of(self, i: int) -> np.ndarray:
        if self.mask is None:
            raise ValueError("this cache has no mask: tokenize_fn returned ids only")
        return self.mask[self.offsets[i]:self.offsets[i + 1]]


def _fingerprint(items: Sequence) -> str:
    h = hashlib.blake2b(digest_size=16)
    for it in items:
        h.update((it if isinstance(it, str) else json.dumps(it, sort_keys=True, default=str))
                 .encode())
        h.update(b"\x00")  # separator: ["ab", "c"] and ["a", "bc"] must differ
    return h.hexdigest()


def cache_tokenized(items, tokenize_fn: Callable, cache_dir, *, key: str,
                    column: str | None = "text", batched: bool = False,
                    batch_size: int = 1000, progress: bool = True) -> TokenCache:
    """Tokenize `items` (a list, or a Dataset's `column`; None: whole rows) or load the cache.

    `tokenize_fn(item)` returns ids or (ids, mask); with `batched=True` it takes a list of items
    and returns a list of those. `key` must change whenever the tokenizer or its settings do.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string naming the tokenizer recipe, got {key!r}")
    if hasattr(items, "column_names"):  # a datasets.Dataset
        items = items[column] if column is not None else items.to_list()
    items = list(items)
    if not items:
        raise ValueError("cannot tokenize an empty dataset")
    recipe = hashlib.blake2b(f"{key}|{len(items)}|{_fingerprint(items)}".encode(),
                             digest_size=10).hexdigest()
    path = Path(cache_dir) / f"tokens-{recipe}.npz"
    if path.exists():
        with np.load(path) as z:
            mask = z["mask"] if "mask" in z.files else None
            return TokenCache(tokens=z["tokens"], offsets=z["offsets"], mask=mask, path=path,
                              hit=True)

    from minilib.utils import atomic_write_bytes, tqdm

    outs: list = []
    bar = tqdm(total=len(items), desc="tokenizing", disable=not progress or len(items) < 2000)
    if batched:
        for i in range(0, len(items), batch_size):
            outs += list(tokenize_fn(items[i:i + batch_size]))
            bar.update(min(batch_size, len(items) - i))
    else:
        for it in items:
            outs.append(tokenize_fn(it))
            bar.update(1)
    bar.close()
    has_mask = isinstance(outs[0], tuple)
    ids = [np.asarray(o[0] if has_mask else o, dtype=np.int64) for o in outs]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # (E + 1,)
    flat = np.concatenate(ids) if offsets[-1] else np.zeros(0, np.int64)  # (N,)
    if flat.size and (flat.min() < 0):
        raise ValueError("tokenize_fn returned a negative token id")
    # uint16 halves the file and memory for vocabularies under 65,536 ids (nanoGPT does the same)
    flat = flat.astype(np.uint16 if not flat.size or flat.max() < 2**16 else np.int32)
    arrays = {"tokens": flat, "offsets": offsets}
    mask = None
    if has_mask:
        mask = np.concatenate([np.asarray(o[1], dtype=np.uint8) for o in outs])  # (N,)
        if mask.shape != flat.shape:
            raise ValueError(f"tokenize_fn returned masks of {mask.size} entries in total for "
                             f"{flat.size} ids; every mask must match its ids")
        arrays["mask"] = mask
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())  # a crash never leaves a half-written cache
    return TokenCache(tokens=flat, offsets=offsets, mask=mask, path=path, hit=False)
