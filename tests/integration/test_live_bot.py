"""A live session end to end: the sim bot trades a real checkpoint exactly like run_backtest.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.integration.cli import run_script
from tests.unit.lifecycle.alert_server import webhook
from tests.unit.live.helpers import LOOSE_PREFERENCES, in_paper, make_checkpoint

from evotrader.cli import ExitCode
from evotrader.core.checkpoint import find_checkpoint
from evotrader.live.journal import Journal
from evotrader.live.session import LiveOptions, run
from evotrader.live.telemetry import RunSummary
from evotrader.risk.preferences import PreferencesError
from evotrader.training.guards import TradableCheckpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs/ folder with one trained-format GOOG checkpoint (a small TransformerPolicy),
    recorded in its model registry and promoted to paper, so ``--symbol GOOG`` trades it."""
    runs = tmp_path_factory.mktemp("runs")
    in_paper(runs, make_checkpoint(runs / "GOOG-quick-seed0" / "GOOG_stage_1_ppo.pth"))
    return runs


@pytest.fixture
def prefs(tmp_path: Path) -> Path:
    path = tmp_path / "preferences.yaml"
    path.write_text(yaml.safe_dump(LOOSE_PREFERENCES | {"max_daily_loss_pct": 20.0}))
    return path


def bot(runs: Path, out: Path, prefs: Path, **options: object) -> RunSummary:
    return run(
        LiveOptions(
            broker="sim", symbol="GOOG", runs_dir=runs, out=out, preferences=prefs, **options
        )  # type: ignore[arg-type]
    )


def ran_through(summary: RunSummary) -> bool:
    """Neither halted nor cut off (run_live_bot.py exits 0)."""
    return summary.halt is None and not summary.connection_lost


def test_sim_bot_fills_and_equity_match_run_backtest(runs, prefs, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="evotrader")
    assert ran_through(bot(runs, tmp_path / "out", prefs, seed=3))
    printed = "\n".join(record.getMessage() for record in caplog.records)
    assert "GOOG_stage_1_ppo.pth" in printed and "stopped: feed ended" in printed

    expected = TradableCheckpoint.load(find_checkpoint(runs, "GOOG")).backtest()
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
    traded = json.loads(events[0])  # what it traded, and that the registry chose it
    assert (traded["event"], traded["chosen_by"], traded["state"]) == (
        "checkpoint",
        "registry",
        "paper",
    )
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
    in_paper(tmp_path / "runs", path)
    assert ran_through(bot(tmp_path / "runs", tmp_path / "out", prefs))
    expected = TradableCheckpoint.load(path).backtest()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    np.testing.assert_allclose(list(summary["equity"].values()), expected.equity, rtol=1e-12)
    unadapted = make_checkpoint(tmp_path / "ppo.pth")  # the same seed and weights, as saved
    plain = TradableCheckpoint.load(unadapted).backtest()
    assert not np.allclose(plain.equity, expected.equity)  # adaptation changed the trading


def test_a_tripped_breaker_halts(runs, prefs, tmp_path) -> None:
    halted = bot(runs, tmp_path / "out", prefs, tighten=["max_daily_loss_pct=0.5"]).halt
    assert halted is not None and halted.kind == "daily_loss"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["halt"]["kind"] == "daily_loss"


def test_a_halt_is_an_alert_posted_to_the_webhook(runs, prefs, tmp_path) -> None:
    out = tmp_path / "out"
    with webhook() as hook:
        halted = bot(
            runs, out, prefs, tighten=["max_daily_loss_pct=0.5"], alert_webhook=hook.url,
            max_bars=40, reports=True,
        )  # fmt: skip
    assert halted.halt is not None
    [posted] = hook.received
    assert posted["kind"] == "halt" and posted["halt"]["kind"] == "daily_loss"
    assert (posted["bot"], posted["symbol"], posted["chosen_by"]) == (str(out), "GOOG", "registry")
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    [alert] = [line for line in lines if line["event"] == "alert"]
    assert alert["delivered"] == {"webhook": True} and alert["halt"] == posted["halt"]
    # the session ends with its reports: the halt is a risk event on its own day's page
    halt_day = pd.Timestamp(posted["halt"]["at"]).tz_convert("America/New_York").date()
    daily = json.loads((out / "reports" / f"daily-{halt_day}.json").read_text())
    assert daily["figures"]["halts"] == 1 and (out / "reports" / f"daily-{halt_day}.html").is_file()


def test_run_time_settings_cannot_loosen_the_preferences(runs, prefs, tmp_path) -> None:
    with pytest.raises(PreferencesError, match=r"would loosen the human-set 20\.0"):
        bot(runs, tmp_path / "a", prefs, tighten=["max_daily_loss_pct=50"])
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"risk_overrides": {"max_leverage": 3.0}}))
    with pytest.raises(PreferencesError, match=r"max_leverage: 3\.0 would loosen"):
        bot(runs, tmp_path / "b", prefs, config=config)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing traded


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--live"], "--i-understand-this-is-real-money"),
        (["--live", "--i-understand-this-is-real-money"], "--live needs --broker ibkr"),
    ],
)
def test_real_money_needs_two_explicit_flags(runs, prefs, tmp_path, flags, message) -> None:
    done = run_script(
        "run_live_bot.py", "--broker", "sim", "--symbol", "GOOG", "--runs-dir", str(runs),
        "--out", str(tmp_path / "out"), "--preferences", str(prefs), *flags, timeout=60,
    )  # fmt: skip
    assert done.returncode == ExitCode.USAGE and message in done.stderr
