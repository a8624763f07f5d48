"""The training loop every stage reuses: AdamW, warmup + cosine, clipping, accumulation, DDP.

One plain function, `train`, reads top to bottom: for each optimizer step it sets the learning
rate, runs `grad_accum` micro-batches forward and backward, checks the loss is finite, clips the
gradient norm, steps AdamW, logs, evaluates and checkpoints. No trainer class: SFT and the
preference chapters pass their own `loss_fn(model, batch) -> (loss, n_tokens)`.

References
- AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (2019), arXiv:1711.05101.
- Warmup + cosine decay to a floor: GPT-3 (Brown et al. 2020, appendix B) and Chinchilla
  (Hoffmann et al. 2022), as in nanoGPT's `get_lr`.
- Gradient clipping by global norm: Pascanu et al. 2013, arXiv:1211.5063.
- Weight-decay groups: every weight matrix and the embedding table (2-D or more) is decayed;
  norm gains and biases (1-D) are not, since shrinking a gain toward 0 only fights the norm.
  The embedding is decayed because it is tied to the output head here (nanoGPT does the same).
- Data parallelism: PyTorch DistributedDataParallel (Li et al. 2020, arXiv:2006.15704); the
  gradient all-reduce averages over ranks, so N ranks with batch B equal one process with N·B.

Mixed precision: `dtype="auto"` is bf16 autocast on CUDA, and on CPU only when it is faster,
measured: `cpu_bf16_is_faster()` times a training-sized matmul in both dtypes once per process.
CPUs with native bf16 units (AVX-512 BF16 / AMX) run it several times faster — on the 2-core
machine this course was developed on, the base model's step was 1.4-1.7x faster (14.9k vs 21k
tokens/s at d_model 128) — while CPUs without them emulate bf16 and get slower. Pass
dtype="float32" for bitwise-reproducible runs across machines, as the equivalence tests do
(benchmarks/bench_train.py measures both on your machine).

The pretraining stage itself (recipe, data, `get_base_model`, the torchrun entry point) lives in
minilib/pretrain.py; the data pipeline in minilib/packing.py; checkpoints in
minilib/checkpoint.py. Shapes: B batch, T sequence length, V vocabulary.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from minilib.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from minilib.packing import PackedBatches, pack_tokens  # noqa: F401  (re-exported)
from minilib.utils import LivePlot, pick_device, tqdm

DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Every knob of one training run. Defaults: a short CPU run."""

    batch_size: int = 16  # sequences per micro-batch (per rank under DDP)
    seq_len: int = 256  # tokens per sequence
    max_steps: int = 200  # optimizer steps
    lr: float = 3e-3  # peak learning rate; small models tolerate a large one
    min_lr: float = 3e-4  # cosine floor (10% of the peak, as in Chinchilla)
    warmup_steps: int = 20  # linear warmup: Adam's second moments are noisy at first
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)  # β2 = 0.95: LLM practice, steadier than 0.999
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    grad_accum: int = 1  # micro-batches per optimizer step
    eval_every: int = 50  # steps between validations; 0 = only at the end
    eval_steps: int = 10  # validation batches per evaluation
    ckpt_every: int = 0  # steps between checkpoints (with ckpt_dir); 0 = only at the end
    dtype: str = "auto"  # "auto" = bf16 autocast on CUDA, and on CPU when measured faster
    compile: bool = False  # torch.compile the model (worth it on a GPU, slow to start on CPU)
    seed: int = 0
    log_every: int = 10  # steps between progress-bar / live-plot updates

    def __post_init__(self):
        for name in ("batch_size", "seq_len", "max_steps", "grad_accum", "eval_steps", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("warmup_steps", "eval_every", "ckpt_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; raised before the bad gradient touches the weights."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"non-finite loss {loss} at step {step}: training stopped before the "
                         "optimizer step; the last checkpoint (if any) is intact. Try a lower lr, "
                         "gradient clipping, or fp32.")
        self.step, self.loss = step, loss


# ----------------------------------------------------------------------------- pieces


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup, then cosine to min_lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)  # 0 -> 1
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def configure_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on 2-D+ tensors (matrices, embeddings), none on 1-D (norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]  # dedups tied weights
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # foreach: one fused kernel launch per group instead of one per tensor (the default on CUDA).
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, foreach=True)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
            ) -> torch.Tensor:
    """Mean next-token cross-entropy over counted targets: (B, T, V), (B, T) -> scalar.

    `targets` are already shifted (targets[:, t] is the token after input t). Targets equal to
    -100 are ignored; with `mask` (B, T) of 0/1, only positions with mask 1 count (SFT masks
    the prompt this way).
    """
    if mask is not None:
        targets = targets.masked_fill(mask == 0, -100)
    # fp32 log-softmax: bf16 logits lose too much precision in the normaliser.
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)


def unpack_batch(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(input_ids, targets, mask or None) from a dict or an (x, y[, mask]) tuple."""
    if isinstance(batch, dict):
        return batch["input_ids"], batch["targets"], batch.get("mask")
    x, y, *rest = batch
    return x, y, (rest[0] if rest else None)


def default_loss_fn(model: torch.nn.Module, batch) -> tuple[torch.Tensor, int]:
    """Next-token loss (+ the MoE balancing loss) of one batch, and the tokens it counted."""
    x, y, mask = unpack_batch(batch)
    logits, aux_loss = model(x)                       # (B, T, V), scalar
    loss = lm_loss(logits, y, mask) + aux_loss
    n = int((y != -100).sum()) if mask is None else int(mask.sum())
    return loss, n


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for this run, or None for plain fp32."""
    if cfg.dtype == "bfloat16":
        return torch.bfloat16
    if cfg.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if cfg.dtype == "auto" and device.type == "cpu" and cpu_bf16_is_faster():
        return torch.bfloat16
    return None


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_faster(margin: float = 0.8) -> bool:
    """True when a (4096 x 256) @ (256 x 1024) matmul runs in bf16 in under `margin` of its fp32
    time on this CPU (measured once per process, best of 5; ~0.1 s)."""
    import time

    def best(dtype: torch.dtype) -> float:
        a = torch.randn(4096, 256, dtype=dtype)
        b = torch.randn(256, 1024, dtype=dtype)
        a @ b  # warm-up
        times = []
        for _ in range(5):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        return min(times)

    return best(torch.bfloat16) < margin * best(torch.float32)


def _to(batch, device):
    if isinstance(batch, dict):
        return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    return type(batch)(v.to(device) if isinstance(v, torch.Tensor) else v for v in batch)


# ----------------------------------------------------------------------------- distributed


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes in the environment: (rank, world_size, device).

    Without torchrun (no WORLD_SIZE) this is a single process: (0, 1, best device).
    Backend: nccl when each rank has a GPU, gloo on CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, pick_device()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return rank, world_size, device


def shutdown_distributed() -> None:
    """Leave the process group cleanly: every rank waits for the others, then tears down."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_over_ranks(value: float, device) -> float:
    if _world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / _world()[1]


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, batches: Iterator, steps: int, *, loss_fn=None, device=None,
             amp_dtype=None) -> float:
    """Mean loss over `steps` batches (fewer if the iterator ends), in eval mode."""
    loss_fn = loss_fn or default_loss_fn
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for _, batch in zip(range(steps), batches):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss, _ = loss_fn(model, _to(batch, device))
        total, count = total + loss.item(), count + 1
    model.train(was_training)
    return _mean_over_ranks(total / max(count, 1), device)


# ----------------------------------------------------------------------------- the loop


def train(model: torch.nn.Module, batches: Iterator, cfg: TrainConfig, *,
          loss_fn: Callable | None = None, val_batches: Callable[[], Iterator] | None = None,
          ckpt_dir: str | Path | None = None, resume: bool = False, plot: bool = True,
          progress: bool = True, device=None) -> dict:
    """Train `model` for cfg.max_steps optimizer steps on `batches`; returns the history.

    History: {"train_loss", "val_loss", "lr", "tokens"} as lists of (step, value), where step
    counts finished optimizer steps, plus "seconds" (wall time of this call).
    `batches` yields dicts {"input_ids", "targets"[, "mask"]} or (x, y[, mask]) tuples; if it
    has `state_dict`/`load_state_dict` (PackedBatches does), its position is checkpointed and
    restored, so a resumed run continues bitwise like an uninterrupted one.
    Under torchrun (an initialised process group) the model is wrapped in DDP and only rank 0
    logs and writes checkpoints.
    """
    loss_fn = loss_fn or default_loss_fn
    rank, world_size = _world()
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    torch.manual_seed(cfg.seed)  # dropout etc.; the data order has its own seed
    optimizer = configure_optimizer(model, cfg)
    history: dict[str, list] = {"train_loss": [], "val_loss": [], "lr": [], "tokens": []}
    step = 0
    if resume and ckpt_dir is not None and checkpoint_exists(ckpt_dir):
        state = load_checkpoint(ckpt_dir, model, optimizer, restore_rng=True)
        step, history = state["step"], {**history, **state["history"]}
        if state["data"] is not None and hasattr(batches, "load_state_dict"):
            batches.load_state_dict(state["data"])
    history = {k: [tuple(v) for v in vals] for k, vals in history.items()}

    train_model = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    amp_dtype = autocast_dtype(cfg, device)
    is_main = rank == 0

    def checkpoint(at_step: int) -> None:
        if is_main and ckpt_dir is not None:
            save_checkpoint(ckpt_dir, model, optimizer, step=at_step, history=history,
                            data_state=batches.state_dict() if hasattr(batches, "state_dict") else None)

    def validate(at_step: int) -> None:
        if val_batches is not None:
            v = evaluate(train_model, val_batches(), cfg.eval_steps, loss_fn=loss_fn,
                         device=device, amp_dtype=amp_dtype)
            history["val_loss"].append((at_step, v))

    live = LivePlot(title="loss") if plot and is_main else None
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not (progress and is_main),
               desc="train", dynamic_ncols=True)
    tokens = history["tokens"][-1][1] if history["tokens"] else 0
    start = time.perf_counter()
    t_last, tok_last = start, tokens
    train_model.train()
    while step < cfg.max_steps:
        # 1. learning rate for this step
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # 2. forward + backward over grad_accum micro-batches; the gradients add up
        step_loss = 0.0
        for micro in range(cfg.grad_accum):
            batch = _to(next(batches), device)
            last = micro == cfg.grad_accum - 1
            # DDP all-reduces gradients in backward; skip it until the last micro-batch.
            sync = train_model.no_sync() if (world_size > 1 and not last) else _nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss, n_tokens = loss_fn(train_model, batch)
                (loss / cfg.grad_accum).backward()  # mean over micro-batches
            step_loss += loss.item() / cfg.grad_accum
            tokens += n_tokens * world_size
        step_loss = _mean_over_ranks(step_loss, device)
        # 3. a NaN/inf loss would poison the weights: stop before the optimizer step
        if not math.isfinite(step_loss):
            bar.close()
            raise NonFiniteLossError(step, step_loss)
        # 4. clip the global gradient norm, then step
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        # 5. log, evaluate, checkpoint
        history["train_loss"].append((step, step_loss))
        history["lr"].append((step, lr))
        history["tokens"].append((step, tokens))
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            now = time.perf_counter()
            tok_s = (tokens - tok_last) / max(now - t_last, 1e-9)
            t_last, tok_last = now, tokens
            bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:,.0f}")
            if live is not None:
                live.update({k: history[k] for k in ("train_loss", "val_loss")})
        bar.update(1)
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps:
            validate(step)
        if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step != cfg.max_steps:
            checkpoint(step)
    bar.close()
    if step == cfg.max_steps and not (history["val_loss"] and history["val_loss"][-1][0] == step):
        validate(step)  # resumed at the very end: still report a validation loss
    checkpoint(step)
    history["seconds"] = time.perf_counter() - start
    if live is not None:
        live.update({k: history[k] for k in ("train_loss", "val_loss")})
    return history


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- the base model

# The course's pretraining recipe. Sized to train in about 3 minutes on 2 CPU cores (chapter 07
# measures it); `get_base_model` rebuilds the stage whenever this dict changes.
BASE_RECIPE: dict = {
    "model": {"d_model": 192, "n_layer": 6, "n_head": 6, "n_kv_head": 2, "max_seq_len": 256},
    "train": {"batch_size": 16, "seq_len": 256, "max_steps": 400, "lr": 3e-3, "min_lr": 3e-4,
              "warmup_steps": 20, "weight_decay": 0.1, "grad_clip": 1.0, "eval_every": 100,
              "eval_steps": 8, "seed": 0},
    "data": {"source": "world", "n_train": None, "seed": 0},
}


def get_base_model(run: str = "default", device=None):
    """The course's pretrained base model and tokenizer: loaded from runs/<run>/base, or trained.

    See minilib/pretrain.py (imported lazily: it builds on this module).
    """
    from minilib.pretrain import get_base_model as _get

    return _get(run, device=device)
