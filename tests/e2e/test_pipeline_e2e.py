"""The whole pipeline, every stage, with the tiny profile; then run_backtest and the sim bot.

This is what a user does in a day: train, read the test-split report, promote the result
to paper in the model registry, trade it in the sim bot, and let the paper monitor promote
it to champion. The sim bot's equity must equal the backtest's on the same bars.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from evotrader.core.checkpoint import load_checkpoint
from evotrader.lifecycle.states import CHAMPION as CHAMPION_STATE
from evotrader.lifecycle.states import PAPER
from evotrader.lifecycle.store import REGISTRY_FILE, ModelRegistry
from evotrader.training.guards import TradableCheckpoint

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("stage_1_ppo", "stage_2_moe", "stage_3_maml", "stage_4_autonomous", "strategy_search")
CHAMPION = "AR1_autonomous_final.pth"


def _run(*command: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = tmp_path_factory.mktemp("runs")
    done = _run(
        str(ROOT / "run_training.py"),
        "profile=tiny",
        "data=synthetic",
        "data.options.n_bars=900",
        f"runs_dir={runs}",
        "run_name=e2e",
    )
    assert "Traceback" not in done.stdout + done.stderr  # a clean run prints no tracebacks
    return runs, done.stdout


def test_every_stage_runs_and_leaves_its_checkpoint(trained) -> None:
    runs, stdout = trained
    state = json.loads((runs / "e2e" / "state.json").read_text())
    assert tuple(state["completed"]) == STAGES
    for stage in STAGES[:-1]:
        path = CHAMPION if stage == "stage_4_autonomous" else f"AR1_{stage}.pth"
        assert load_checkpoint(runs / "e2e" / path).extra["stage"] == stage
        assert (runs / "e2e" / "tensorboard" / stage).is_dir()
    assert state["completed"]["strategy_search"]["checkpoint"].endswith("strategies.sqlite")
    assert "experts warm-started" in stdout
    assert "Summary, validation split (used for selection), after costs" in stdout


def test_every_validation_evaluation_of_every_stage_is_a_trial_behind_the_champion(
    trained,
) -> None:
    runs, stdout = trained
    champion = load_checkpoint(runs / "e2e" / CHAMPION)
    counts = champion.extra["trials_by_stage"]
    assert set(counts) == set(STAGES[:4]) and all(count > 0 for count in counts.values())
    assert champion.metrics["validation_trials"] == sum(counts.values())
    assert f"over {sum(counts.values())} trials" in stdout
    assert stdout.rstrip().endswith(champion.extra["verdict"])  # the summary ends with it


def test_run_backtest_reports_the_champion_on_test(trained) -> None:
    runs, _ = trained
    done = _run(str(ROOT / "run_backtest.py"), "--symbol", "AR1", "--runs-dir", str(runs))
    assert f"{CHAMPION} (autonomous, AR1)" in done.stdout
    assert "Test split (out of sample, after costs)" in done.stdout
    # The same one-trial test on the same bars as the run's own verdict, and the same trials.
    assert load_checkpoint(runs / "e2e" / CHAMPION).extra["verdict"] in done.stdout
    assert (runs / "e2e" / "AR1_autonomous_final_test.json").exists()


def test_the_champion_goes_to_paper_trades_like_the_backtest_and_is_promoted(
    trained, tmp_path: Path
) -> None:
    runs, _ = trained
    out = tmp_path / "bot"
    registry = ["-m", "evotrader", "registry", "--registry", str(runs / REGISTRY_FILE)]
    with ModelRegistry(runs / REGISTRY_FILE) as opened:  # the run recorded its checkpoints
        entry = opened.find(runs / "e2e" / CHAMPION)
    assert entry is not None and entry.state == "candidate"
    _run(*registry, "promote", str(entry.id), "--to", PAPER, "--why", "e2e: paper first")
    # The human's preferences, allowing the synthetic symbol and wide enough that no breaker
    # trips on it, so the bot must trade exactly as the backtest does.
    preferences = yaml.safe_load((ROOT / "configs" / "preferences.yaml").read_text())
    preferences |= {"allowed_instruments": ["AR1"], "max_daily_loss_pct": 50.0}
    preferences |= {"max_drawdown_pct": 90.0}
    (tmp_path / "preferences.yaml").write_text(yaml.safe_dump(preferences))
    done = _run(
        str(ROOT / "run_live_bot.py"),
        "--broker",
        "sim",
        "--symbol",
        "AR1",
        "--runs-dir",
        str(runs),
        "--out",
        str(out),
        "--seed",
        "0",
        "--preferences",
        str(tmp_path / "preferences.yaml"),
    )
    assert CHAMPION in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    expected = TradableCheckpoint.load(runs / "e2e" / CHAMPION).backtest()
    equity = np.asarray(list(summary["equity"].values()), dtype=float)
    np.testing.assert_allclose(equity, expected.equity.to_numpy(), rtol=1e-9)
    assert len(expected.fills) > 0  # the champion trades: the comparison is not of two flat lines
    assert summary["choice"] == {"chosen_by": "registry", "entry": entry.id, "state": PAPER}

    # The paper monitor holds the paper days against the backtest on the same days: they
    # match, so after 20 days it promotes the entry to champion, with its figures recorded.
    done = _run(*registry, "monitor", str(entry.id), "--bot-dir", str(out))
    assert "promote" in done.stdout
    with ModelRegistry(runs / REGISTRY_FILE) as opened:
        assert opened.entry(entry.id).state == CHAMPION_STATE
        promoted = opened.history(entry.id)[-1]
    assert (
        promoted.to_state == CHAMPION_STATE
        and promoted.figures["evidence"]["monitor"]["days"] >= 20
    )
