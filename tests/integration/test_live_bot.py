"""run_live_bot.py end to end: the sim bot trades a real checkpoint exactly like run_backtest.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import run_backtest
import run_live_bot
import yaml
from tests.unit.live.helpers import LOOSE_PREFERENCES, make_checkpoint, preferences

from evotrader.cli import ExitCode
from evotrader.core.checkpoint import load_checkpoint
from evotrader.live.journal import Journal

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs/ folder with one trained-format GOOG checkpoint (a small TransformerPolicy)."""
    runs = tmp_path_factory.mktemp("runs")
    make_checkpoint(runs / "GOOG-quick-seed0" / "GOOG_stage_1_ppo.pth")
    return runs


@pytest.fixture
def prefs(tmp_path: Path) -> Path:
    path = tmp_path / "preferences.yaml"
    path.write_text(yaml.safe_dump(LOOSE_PREFERENCES | {"max_daily_loss_pct": 20.0}))
    return path


def bot(runs: Path, out: Path, prefs: Path, *extra: str) -> int:
    return run_live_bot.main(
        ["--broker", "sim", "--symbol", "GOOG", "--runs-dir", str(runs), "--out", str(out),
         "--preferences", str(prefs), *extra]
    )  # fmt: skip


def test_sim_bot_fills_and_equity_match_run_backtest(runs, prefs, tmp_path, capsys) -> None:
    assert bot(runs, tmp_path / "out", prefs, "--seed", "3") == ExitCode.OK
    printed = capsys.readouterr().out
    assert "GOOG_stage_1_ppo.pth" in printed and "stopped: feed ended" in printed

    checkpoint_path = run_backtest.find_checkpoint(runs, "GOOG")
    expected = run_backtest.backtest_checkpoint(load_checkpoint(checkpoint_path))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    equity = pd.Series(summary["equity"])
    equity.index = pd.to_datetime(equity.index)
    pd.testing.assert_index_equal(equity.index, expected.equity.index, check_names=False)
    np.testing.assert_allclose(equity.to_numpy(), expected.equity.to_numpy(), rtol=1e-12)
    assert summary["expected"] == summary["equity"]  # telemetry saw no divergence

    with Journal(tmp_path / "out" / "journal.sqlite") as journal:
        fills = journal.fills()
        assert len(fills) == len(expected.fills) > 20
        np.testing.assert_allclose([f.price for f in fills], expected.fills["price"], rtol=1e-12)
        units = [f.signed_quantity for f in fills]
        np.testing.assert_allclose(units, expected.fills["units"], rtol=1e-9)
        np.testing.assert_allclose([f.cost for f in fills], expected.fills["cost"], rtol=1e-9)
        fill_days = [f.timestamp.tz_convert("America/New_York").normalize() for f in fills]
        assert [d.tz_localize(None) for d in fill_days] == list(expected.fills.index)
        assert len(journal.decisions()) == len(expected.equity)
    events = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    logged = json.loads(events[1])
    assert logged["event"] == "preferences" and not logged["tightened"]
    start = json.loads(events[2])
    assert start["event"] == "start"
    assert start["preferences_sha256"] == logged["file_sha256"] == summary["preferences_sha256"]
    assert f"sha256 {logged['file_sha256']}" in printed


def test_a_maml_checkpoint_adapts_before_trading_as_in_run_backtest(prefs, tmp_path) -> None:
    """MAML adapts on the bars before the first live bar, seeded, exactly as the backtest."""
    settings = {"inner_steps": 1, "num_envs": 2, "episode_length": 16, "adapt_bars": 48}
    path = make_checkpoint(
        tmp_path / "runs" / "r" / "GOOG_stage_3_maml.pth", kind="maml", hyperparameters=settings
    )
    assert bot(tmp_path / "runs", tmp_path / "out", prefs) == ExitCode.OK
    expected = run_backtest.backtest_checkpoint(load_checkpoint(path))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    np.testing.assert_allclose(list(summary["equity"].values()), expected.equity, rtol=1e-12)
    unadapted = make_checkpoint(tmp_path / "ppo.pth")  # the same seed and weights, as saved
    plain = run_backtest.backtest_checkpoint(load_checkpoint(unadapted))
    assert not np.allclose(plain.equity, expected.equity)  # adaptation changed the trading


def test_a_tripped_breaker_exits_halted(runs, prefs, tmp_path) -> None:
    code = bot(runs, tmp_path / "out", prefs, "--tighten", "max_daily_loss_pct=0.5")
    assert code == ExitCode.HALTED
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["halt"]["kind"] == "daily_loss"


def test_run_time_settings_cannot_loosen_the_preferences(runs, prefs, tmp_path, capsys) -> None:
    code = bot(runs, tmp_path / "a", prefs, "--tighten", "max_daily_loss_pct=50")
    assert code == ExitCode.USAGE
    assert "would loosen the human-set 20.0" in capsys.readouterr().err
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"risk_overrides": {"max_leverage": 3.0}}))
    assert bot(runs, tmp_path / "b", prefs, "--config", str(config)) == ExitCode.USAGE
    assert "max_leverage: 3.0 would loosen" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing traded


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--live"], "--i-understand-this-is-real-money"),
        (["--live", "--i-understand-this-is-real-money"], "--live needs --broker ibkr"),
    ],
)
def test_real_money_needs_two_explicit_flags(runs, prefs, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        bot(runs, tmp_path / "out", prefs, *flags)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_champion_is_traded_exclusively(runs, tmp_path) -> None:
    run = tmp_path / "runs" / "GOOG-full-seed0"
    run.mkdir(parents=True)
    stage = shutil.copy(runs / "GOOG-quick-seed0" / "GOOG_stage_1_ppo.pth", run)
    champion = Path(shutil.copy(stage, run / "GOOG_autonomous_final.pth"))
    args = run_live_bot.parse_args(["--symbol", "GOOG", "--runs-dir", str(tmp_path / "runs")])
    assert run_live_bot.choose_checkpoint(args) == champion
    args.checkpoint = Path(stage)
    with pytest.raises(run_live_bot.SetupError, match="trades only the champion"):
        run_live_bot.choose_checkpoint(args)
    champion.unlink()
    assert run_live_bot.choose_checkpoint(args) == Path(stage)
    args.checkpoint = None
    with pytest.raises(run_live_bot.SetupError, match="no champion"):
        run_live_bot.choose_checkpoint(args)  # paper and live never fall back to a stage
    args.broker = "sim"
    assert run_live_bot.choose_checkpoint(args) == Path(stage)


def test_ibkr_settings_come_from_the_environment_and_default_to_paper(monkeypatch) -> None:
    monkeypatch.setenv("IBKR_PORT", "4002")
    monkeypatch.setenv("IBKR_CLIENT_ID", "17")
    args = run_live_bot.parse_args(["--symbol", "GOOG"])
    broker = run_live_bot.ibkr_broker(args, preferences())
    assert (broker.config.port, broker.config.client_id, broker.config.live) == (4002, 17, False)
    assert not broker.is_connected()
    monkeypatch.setenv("IBKR_PORT", "7496")  # TWS's live port
    with pytest.raises(ValueError, match="live-trading port"):
        run_live_bot.ibkr_broker(args, preferences())
