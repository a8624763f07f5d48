"""The pretraining data pipeline: tokenize documents, pack them into fixed-length rows, batch.

Packing (as in GPT-2/3 pretraining, Radford et al. 2019; Brown et al. 2020): every document
becomes `[bos] text [eos]`, all documents are concatenated into one token stream, and the stream
is cut into rows of `seq_len + 1` tokens. A row gives the inputs `row[:-1]` and the next-token
targets `row[1:]`, so no position is wasted on padding. Attention crosses document boundaries
inside a row; the `bos`/`eos` tokens tell the model where one story ends and the next begins
(the same choice nanoGPT makes with GPT-2's `<|endoftext|>`).

`PackedBatches` is an endless iterator over shuffled rows with two properties the trainer
relies on:
- deterministic: epoch e visits the rows in `randperm(n, seed + e)` order, so a run repeats;
- resumable: `state_dict()` is `{"epoch", "pos"}`; loading it continues with the exact next
  batch, which is what makes a resumed run bitwise equal to an uninterrupted one.

For data-parallel training every rank builds the same `PackedBatches` with its `rank` and
`world_size`: each step draws one *global* batch of `batch_size * world_size` rows and a rank
keeps its slice, so N ranks together see exactly the batch a single process with
`batch_size * N` would see (the DDP test relies on this).

Shapes: B batch (rows per rank), T sequence length.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def pack_tokens(texts: Iterable[str], tokenizer, seq_len: int) -> torch.Tensor:
    """Tokenize `texts` as `[bos] text [eos]`, concatenate, and cut into rows: (N, seq_len + 1).

    The tail that does not fill a whole row is dropped.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    texts = list(texts)
    # encode_batch tokenizes in parallel (Rust); same ids as encode on each text
    encoded = (tokenizer.encode_batch(texts, add_bos=True) if hasattr(tokenizer, "encode_batch")
               else [tokenizer.encode(t, add_bos=True) for t in texts])
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        stream.append(tokenizer.eos_id)
    return rows_from_stream(torch.tensor(stream, dtype=torch.long), seq_len)


def rows_from_stream(stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Cut a 1-D token stream into non-overlapping rows of seq_len + 1: (N, seq_len + 1).

    Consecutive rows share no tokens: row i covers stream[i*(T+1) : (i+1)*(T+1)]. (Overlapping
    by one token would use the stream fully, but independent rows keep the shuffle simple.)
    """
    row = seq_len + 1
    n = stream.numel() // row
    if n == 0:
        raise ValueError(f"only {stream.numel()} tokens: not enough for one row of {row} tokens "
                         f"(seq_len {seq_len} + 1); give more text or a shorter seq_len")
    return stream[: n * row].view(n, row)  # (N, T+1)


class PackedBatches:
    """Endless, seeded, resumable iterator of {"input_ids": (B, T), "targets": (B, T)} batches."""

    def __init__(self, rows: torch.Tensor, batch_size: int, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1, device=None):
        if rows.dim() != 2 or rows.shape[1] < 2:
            raise ValueError(f"rows must be (N, T+1) with T >= 1, got shape {tuple(rows.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.global_batch = batch_size * world_size
        if rows.shape[0] < self.global_batch:
            raise ValueError(f"only {rows.shape[0]} rows for a global batch of "
                             f"{self.global_batch} (batch_size {batch_size} x world_size "
                             f"{world_size}); give more text or a smaller batch")
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.rank, self.world_size, self.device = rank, world_size, device
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        # A private generator: the order depends only on (seed, epoch), never on global RNG use.
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.rows.shape[0], generator=g)

    @property
    def tokens_per_batch(self) -> int:
        return self.batch_size * (self.rows.shape[1] - 1)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.pos + self.global_batch > self.rows.shape[0]:  # drop the ragged end of an epoch
            self.epoch, self.pos = self.epoch + 1, 0
            self._perm = self._permutation(self.epoch)
        idx = self._perm[self.pos: self.pos + self.global_batch]          # (B * world,)
        idx = idx[self.rank * self.batch_size: (self.rank + 1) * self.batch_size]  # (B,)
        self.pos += self.global_batch
        rows = self.rows[idx]                                             # (B, T+1)
        if self.device is not None:
            rows = rows.to(self.device, non_blocking=True)
        return {"input_ids": rows[:, :-1], "targets": rows[:, 1:]}       # (B, T) each

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"data position was saved with seed {state['seed']}, "
                             f"but this iterator uses seed {self.seed}")
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self._permutation(self.epoch)
