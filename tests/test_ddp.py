"""Data-parallel training: 2 CPU processes (gloo) equal one process on the combined batch.

The two workers are started the way torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT in the environment), without torchrun's agent process, which only
adds seconds of start-up here; `init_distributed` reads exactly that environment.

DistributedDataParallel averages gradients over ranks in backward; each rank reads its half of
every global batch (PackedBatches with rank/world_size), so after any number of steps the
parameters must equal single-process training with batch_size x 2 (fp32, atol 1e-5).
The sums run in another order, so gradients differ by float rounding; Adam divides by
sqrt(v), which turns a rounding difference on a near-zero gradient into up to lr per step,
hence the modest lr (1e-3) that keeps that effect under the tolerance.
"""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

from minilib.model import MiniLLM, ModelConfig
from minilib.packing import PackedBatches, rows_from_stream
from minilib.train import TrainConfig, train

TINY = dict(vocab_size=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)
STEPS, BATCH = 3, 4

WORKER = textwrap.dedent(f"""
    import os, sys
    import torch
    from safetensors.torch import save_file
    from minilib.model import MiniLLM, ModelConfig
    from minilib.packing import PackedBatches, rows_from_stream
    from minilib.train import TrainConfig, init_distributed, shutdown_distributed, train

    torch.set_num_threads(1)
    rank, world, device = init_distributed()
    torch.manual_seed(0)
    model = MiniLLM(ModelConfig(**{TINY!r}))
    rows = rows_from_stream(torch.arange(64 * 17) % 61, 16)
    cfg = TrainConfig(batch_size={BATCH}, seq_len=16, max_steps={STEPS}, lr=1e-3, min_lr=1e-4,
                      warmup_steps=1, eval_every=0, grad_accum=2, dtype="float32")
    batches = PackedBatches(rows, {BATCH}, seed=0, rank=rank, world_size=world)
    train(model, batches, cfg, device="cpu", plot=False, progress=False)
    if rank == 0:
        save_file({{k: v.contiguous() for k, v in model.state_dict().items()
                   if k != "lm_head.weight"}}, sys.argv[1])
    shutdown_distributed()  # barrier + destroy: no rank exits while another still talks
    sys.stdout.flush()
    os._exit(0)  # gloo can abort in interpreter teardown after the work is done
""")


def test_two_processes_equal_one_process_on_the_combined_batch(tmp_path):
    """Parameters after 3 DDP steps (2 ranks x batch 4, grad_accum 2) equal 1 process x batch 8."""
    script, out = tmp_path / "worker.py", tmp_path / "ddp.safetensors"
    script.write_text(WORKER)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = str(Path(__file__).resolve().parents[1])
    procs = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        procs.append(subprocess.Popen([sys.executable, str(script), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for rank, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {rank} exited with {p.returncode}:\n{log[-3000:]}"

    torch.manual_seed(0)
    model = MiniLLM(ModelConfig(**TINY))
    rows = rows_from_stream(torch.arange(64 * 17) % 61, 16)
    cfg = TrainConfig(batch_size=2 * BATCH, seq_len=16, max_steps=STEPS, lr=1e-3, min_lr=1e-4,
                      warmup_steps=1, eval_every=0, grad_accum=2, dtype="float32")
    train(model, PackedBatches(rows, 2 * BATCH, seed=0), cfg, device="cpu", plot=False,
          progress=False)
    ddp = load_file(str(out))
    single = model.state_dict()
    assert ddp, "the workers saved no parameters"
    for name, value in ddp.items():
        assert torch.allclose(value, single[name], atol=1e-5), name
