"""The PPO stage end to end through run_training.py, run_backtest.py and resume."""

import json
import subprocess
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests.integration.cli import kill_training_at, run_script, run_script_ok

from evotrader.cli import ExitCode
from evotrader.core.checkpoint import load_checkpoint
from evotrader.training.trials import LEDGER_NAME, TrialLedger

TINY = [
    "stages=[stage_1_ppo]",
    "data=synthetic",
    "data.options.n_bars=700",
    "env.window=16",
    "env.episode_length=32",
    "model.model_dim=16",
    "model.ff_dim=32",
    "model.output_dim=16",
    "stage_1_ppo.train_batch_size=128",
    "stage_1_ppo.minibatch_size=64",
    "stage_1_ppo.num_epochs=1",
    "stage_1_ppo.num_envs_per_env_runner=4",
    "stage_1_ppo.eval_interval=1",
]


def _args(runs_dir: Path, *overrides: str) -> list[str]:
    return [f"runs_dir={runs_dir}", *TINY, *overrides]


def _train(runs_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return run_script_ok("run_training.py", *_args(runs_dir, *overrides), timeout=600)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = tmp_path_factory.mktemp("runs")
    done = _train(runs, "run_name=tiny", "stage_1_ppo.iterations=3")
    return runs / "tiny", done.stdout


def test_run_writes_config_state_checkpoint_and_summary(trained_run) -> None:
    run_dir, stdout = trained_run
    assert (run_dir / "config.yaml").exists()
    state = json.loads((run_dir / "state.json").read_text())
    assert Path(state["completed"]["stage_1_ppo"]["checkpoint"]) == run_dir / "AR1_stage_1_ppo.pth"
    assert (run_dir / "AR1_stage_1_ppo.pth").exists()
    assert "iter 3/3" in stdout
    assert "Summary, validation split (used for selection), after costs" in stdout
    assert "entries 1 stage_1_ppo (candidate)" in stdout  # runs/registry.sqlite indexes it
    assert (run_dir.parent / "registry.sqlite").exists()


def test_tensorboard_holds_training_and_validation_scalars(trained_run) -> None:
    run_dir, _ = trained_run
    events = EventAccumulator(str(run_dir / "tensorboard" / "stage_1_ppo"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "train/episode_return",
        "train/policy_loss",
        "train/value_loss",
        "train/entropy",
        "train/kl",
        "train/env_steps_per_second",
        "validation/sharpe",
        "validation/total_return",
        "validation/max_drawdown",
        "validation/n_trades",
    }
    assert expected <= tags
    assert [event.step for event in events.Scalars("validation/sharpe")] == [1, 2, 3]


def test_rerun_skips_the_completed_stage(trained_run) -> None:
    run_dir, _ = trained_run
    done = _train(run_dir.parent, "run_name=tiny", "stage_1_ppo.iterations=3")
    assert "[stage_1_ppo] already complete" in done.stdout
    assert "iter 1/3" not in done.stdout


def test_run_backtest_loads_the_checkpoint_and_reports_the_test_split(trained_run) -> None:
    run_dir, _ = trained_run
    done = run_script("run_backtest.py", "--symbol", "AR1", "--runs-dir", str(run_dir.parent))
    assert done.returncode == 0, done.stderr
    assert "Test split (out of sample, after costs)" in done.stdout
    assert "buy & hold" in done.stdout
    # The verdict counts the PPO evaluations its checkpoint was chosen among (the ledger).
    evaluations = len(TrialLedger(run_dir / LEDGER_NAME).trials())
    assert evaluations > 0
    assert f"test split, {evaluations} trials behind selection)" in done.stdout
    metrics = json.loads((run_dir / "AR1_stage_1_ppo_test.json").read_text())
    assert metrics["split"] == "test" and "sharpe" in metrics["buy_and_hold"]
    assert (run_dir / "AR1_stage_1_ppo_test.png").stat().st_size > 10_000


def test_run_backtest_refuses_a_corrupted_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "AR1_stage_1_ppo.pth"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    done = run_script("run_backtest.py", "--checkpoint", str(bad), timeout=120)
    assert done.returncode == ExitCode.CHECKPOINT
    assert "checkpoint" in done.stderr and "Traceback" not in done.stderr


def test_an_interrupted_stage_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    kill_training_at(
        "iter 2/4",
        *_args(tmp_path, "run_name=killed", "stage_1_ppo.iterations=4"),
        saved=tmp_path / "killed" / "stage_1_ppo" / "last.pth",
    )
    done = _train(tmp_path, "run_name=killed", "stage_1_ppo.iterations=4")
    assert "resuming after iteration" in done.stdout
    assert "iter 1/4" not in done.stdout
    assert "iter 4/4" in done.stdout
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert "stage_1_ppo" in state["completed"]


def test_same_seed_gives_identical_weights_and_metrics(trained_run) -> None:
    run_dir, _ = trained_run
    _train(run_dir.parent, "run_name=tiny_again", "stage_1_ppo.iterations=3")
    first = load_checkpoint(run_dir / "AR1_stage_1_ppo.pth")
    again = load_checkpoint(run_dir.parent / "tiny_again" / "AR1_stage_1_ppo.pth")
    assert first.metrics == again.metrics
    for name, tensor in first.state_dict.items():
        assert torch.equal(tensor, again.state_dict[name]), name
