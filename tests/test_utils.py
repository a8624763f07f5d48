"""minilib.utils and the foundation: devices, seeds, run dirs, atomic writes, stage cache, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minilib import checks, utils
from minilib.pipeline import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_pick_device_default_is_available():
    """pick_device() returns a device torch can allocate on."""
    dev = utils.pick_device()
    assert torch.zeros(1, device=dev).device.type == dev.type


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda0", ""])
def test_pick_device_rejects_unknown_names(bad):
    """An unknown device name is a ValueError listing the valid ones."""
    with pytest.raises(ValueError, match="valid devices are auto, cpu, cuda, mps"):
        utils.pick_device(bad)


def test_seed_everything_repeats():
    """The same seed gives the same random numbers."""
    utils.seed_everything(3)
    a = torch.randn(4)
    utils.seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    with pytest.raises(ValueError, match="seed"):
        utils.seed_everything(-1)


def test_run_dir_honours_env_and_rejects_paths(tmp_path, monkeypatch):
    """run_dir lives under $MINILIB_RUNS and refuses names that are paths."""
    monkeypatch.setenv("MINILIB_RUNS", str(tmp_path))
    assert utils.run_dir("x") == tmp_path / "x" and (tmp_path / "x").is_dir()
    with pytest.raises(ValueError, match="run name"):
        utils.run_dir("../escape")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    """A write that fails half way leaves the previous file intact and no temp file behind."""
    target = tmp_path / "a.json"
    utils.atomic_write_json(target, {"v": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        utils.atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_stage_cache_matches_recipe(tmp_path):
    """A stage is current only when its recorded recipe equals the requested one."""
    assert not utils.stage_is_current(tmp_path, {"a": 1})
    utils.mark_stage_done(tmp_path, {"a": 1, "t": (1, 2)}, {"loss": 0.5})
    assert utils.stage_is_current(tmp_path, {"a": 1, "t": (1, 2)})  # tuples round-trip as lists
    assert not utils.stage_is_current(tmp_path, {"a": 2, "t": (1, 2)})
    assert utils.stage_summary(tmp_path) == {"loss": 0.5}


def test_plot_history_draws_each_curve():
    """plot_history draws one line per named curve, for plain lists and (step, value) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    ax = utils.plot_history({"train": [3.0, 2.0, 1.0], "val": [(0, 3.1), (2, 1.2)]})
    assert len(ax.get_lines()) == 2


def test_checker_verdicts(capsys):
    """Checkers pass, fail with a diff, report stubs and wrong signatures — and never raise."""
    good = checks.check_softmax(lambda x: torch.softmax(x, -1))
    assert good and "passed" in capsys.readouterr().out

    def stub(x):
        raise NotImplementedError("Exercise: ...")

    assert not checks.check_softmax(stub)
    assert "not implemented yet" in capsys.readouterr().out
    assert not checks.check_softmax(lambda x: x.exp() / x.exp().sum(-1, keepdim=True))
    assert "NaN or inf" in capsys.readouterr().out
    assert not checks.check_softmax(lambda x, y: x)
    assert "signature" in capsys.readouterr().out
    assert not checks.check_softmax(lambda x: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert not checks.check_softmax("not a function")
    assert "expected a function" in capsys.readouterr().out


def test_cli_rejects_unknown_stage_and_flag(capsys):
    """`python -m minilib run` with an unknown stage or flag is an argparse error listing choices."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["run", "--stages", "bogus"])
    assert e.value.code == 2
    assert "choose from 'data', 'tokenizer'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_cli_help_explains_every_flag():
    """`python -m minilib run --help` documents every flag."""
    out = subprocess.run([sys.executable, "-m", "minilib", "run", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--name", "--stages", "--force", "--device"):
        assert flag in out


def test_check_env_script_passes():
    """tools/check_env.py prints [OK] lines and exits 0 in the course environment."""
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "check_env.py")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert "[  OK] torch" in res.stdout


def test_readme_has_exactly_two_commands_and_ci_uses_the_test_one():
    """README's quickstart has two bash commands; .ci/run extracts the second verbatim."""
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart")[1].split("\n## ")[0]
    blocks = [b for b in quick.split("```bash")[1:]]
    assert len(blocks) == 2
    assert "python -m minilib run" in blocks[0] and "pytest" in blocks[1]
    assert "<!-- test-command -->" in readme
