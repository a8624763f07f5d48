"""`python -m minilib run`: stage order, report card, --force, and resuming finished stages."""

import pytest

from minilib import pipeline
from minilib.utils import mark_stage_done, run_dir, stage_is_current


@pytest.fixture
def fake_stages(tmp_path, monkeypatch):
    """Replace the real stages by cheap ones that build a cached artifact once."""
    monkeypatch.setenv("MINILIB_RUNS", str(tmp_path))
    calls = []

    def make(name):
        def stage(run, device):
            d = run_dir(run) / pipeline.STAGE_DIRS[name]
            if stage_is_current(d, {"v": 1}):
                calls.append(("load", name))
            else:
                calls.append(("build", name))
                mark_stage_done(d, {"v": 1}, {"metric": len(calls)})
            return {"metric": len(calls), "text": "a | b"}
        return stage

    monkeypatch.setattr(pipeline, "STAGES", {n: make(n) for n in pipeline.STAGES})
    return tmp_path, calls


def test_runs_stages_in_order_and_writes_report(fake_stages):
    """Every stage runs once, in pipeline order, and the report card lists each one."""
    root, calls = fake_stages
    assert pipeline.main(["run", "--name", "t", "--device", "cpu"]) == 0
    assert calls == [("build", n) for n in pipeline.STAGES]
    report = (root / "t" / "report.md").read_text()
    for n in pipeline.STAGES:
        assert f"## {n}" in report
    assert "a \\| b" in report  # table cells are escaped


def test_second_run_loads_finished_stages(fake_stages):
    """A finished stage is loaded, not redone."""
    _, calls = fake_stages
    pipeline.main(["run", "--name", "t", "--device", "cpu"])
    calls.clear()
    pipeline.main(["run", "--name", "t", "--device", "cpu"])
    assert calls == [("load", n) for n in pipeline.STAGES]


def test_force_rebuilds_the_stage_and_everything_after_it(fake_stages):
    """--force STAGE rebuilds that stage and the ones that depend on it, and loads the rest."""
    _, calls = fake_stages
    pipeline.main(["run", "--name", "t", "--device", "cpu"])
    calls.clear()
    names = list(pipeline.STAGES)
    pipeline.main(["run", "--name", "t", "--device", "cpu", "--force", names[1]])
    assert calls == [("load", names[0])] + [("build", n) for n in names[1:]]


def test_stage_subset_and_bad_device(fake_stages, capsys):
    """--stages runs only the chosen stages; a bad --device is an error naming the choices."""
    _, calls = fake_stages
    names = list(pipeline.STAGES)
    pipeline.main(["run", "--name", "t", "--device", "cpu", "--stages", names[0]])
    assert calls == [("build", names[0])]
    assert pipeline.main(["run", "--name", "t", "--device", "tpu"]) == 2
    assert "valid devices" in capsys.readouterr().err
