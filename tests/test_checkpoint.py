"""Tests for minilib.checkpoint: round trip, no pickle, atomic saves, clear errors."""

import json

import pytest
import torch

from minilib import checkpoint as ck
from minilib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minilib.model import MiniLLM, ModelConfig
from minilib.train import TrainConfig, configure_optimizer

TINY = ModelConfig(vocab_size=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)


def trained(seed=0):
    """A tiny model and its AdamW after one step (so the optimizer has state)."""
    torch.manual_seed(seed)
    model = MiniLLM(TINY)
    opt = configure_optimizer(model, TrainConfig())
    logits, _ = model(torch.randint(0, 64, (2, 8)))
    logits.sum().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_state(tmp_path):
    """Saved weights, optimizer state, step, data position and extra load back exactly."""
    model, opt = trained()
    save_checkpoint(tmp_path / "c", model, opt, step=7, data_state={"epoch": 1, "pos": 8},
                    extra={"note": "hi"})
    model2, opt2 = trained(seed=1)
    state = load_checkpoint(tmp_path / "c", model2, opt2)
    assert state["step"] == 7 and state["data"] == {"epoch": 1, "pos": 8}
    assert state["extra"] == {"note": "hi"}
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for i in s1["state"]:
        for k in s1["state"][i]:
            assert torch.equal(s1["state"][i][k], s2["state"][i][k])
    assert s1["param_groups"] == s2["param_groups"]


def test_model_is_built_from_config_when_not_given(tmp_path):
    """load_checkpoint(dir) builds a MiniLLM from config.json, with tied weights still tied."""
    model, _ = trained()
    save_checkpoint(tmp_path / "c", model)
    loaded = load_checkpoint(tmp_path / "c")["model"]
    assert loaded.cfg == model.cfg
    x = torch.randint(0, 64, (1, 8))
    assert torch.equal(loaded(x)[0], model(x)[0])


def test_files_are_data_not_pickle(tmp_path):
    """A checkpoint holds only safetensors and JSON files (nothing that unpickles code)."""
    model, opt = trained()
    save_checkpoint(tmp_path / "c", model, opt, step=1)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["config.json", "model.safetensors", "optimizer.safetensors",
                     "rng.safetensors", "trainer_state.json"]
    for name in names:
        if name.endswith(".json"):
            json.loads((tmp_path / "c" / name).read_text())


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    """An exception while writing a new checkpoint leaves the previous one loadable and unchanged."""
    old, _ = trained(seed=0)
    save_checkpoint(tmp_path / "c", old, step=1)
    new, _ = trained(seed=1)
    real_save_model = ck.save_model

    def half_then_crash(model, path):
        real_save_model(model, path)
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(ck, "save_model", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c", new, step=2)
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "c", trained(seed=2)[0])
    assert state["step"] == 1
    assert all(torch.equal(a, b) for a, b in zip(state["model"].parameters(), old.parameters()))
    assert not (tmp_path / "c.tmp").exists()


def test_crash_between_renames_falls_back_to_old(tmp_path):
    """If a save died after moving the old checkpoint aside, loading finds it in <dir>.old."""
    model, _ = trained()
    save_checkpoint(tmp_path / "c", model, step=3)
    (tmp_path / "c").rename(tmp_path / "c.old")
    assert load_checkpoint(tmp_path / "c", trained(seed=1)[0])["step"] == 3
    assert ck.checkpoint_exists(tmp_path / "c")


def test_truncated_or_corrupted_file_is_named(tmp_path):
    """A truncated or bit-flipped file gives CheckpointError naming that file."""
    model, opt = trained()
    save_checkpoint(tmp_path / "c", model, opt)
    f = tmp_path / "c" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated or corrupted"):
        load_checkpoint(tmp_path / "c", MiniLLM(TINY))
    save_checkpoint(tmp_path / "c", model, opt)
    f = tmp_path / "c" / "optimizer.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        load_checkpoint(tmp_path / "c", MiniLLM(TINY))
    (tmp_path / "c" / "trainer_state.json").write_text('{"step": ')
    with pytest.raises(CheckpointError, match="trainer_state.json"):
        load_checkpoint(tmp_path / "c", MiniLLM(TINY))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    """Loading from an empty directory says there is no checkpoint."""
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing", MiniLLM(TINY))


def test_config_mismatch_names_the_field(tmp_path):
    """Loading into a model of another config raises CheckpointError naming the differing field."""
    model, _ = trained()
    save_checkpoint(tmp_path / "c", model)
    other = MiniLLM(ModelConfig(vocab_size=64, d_model=32, n_layer=3, n_head=4, n_kv_head=2,
                                max_seq_len=32))
    with pytest.raises(CheckpointError, match="n_layer: checkpoint 2 vs model 3"):
        load_checkpoint(tmp_path / "c", other)
