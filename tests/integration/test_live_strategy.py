"""A registered strategy traded by the sim bot equals run_backtest.py --strategy exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.integration.cli import run_script
from tests.unit.live.helpers import LOOSE_PREFERENCES, make_strategy_registry

from evotrader.cli import ExitCode
from evotrader.live.journal import Journal
from evotrader.live.session import LiveOptions, run
from evotrader.strategies.registry import Registry
from evotrader.strategies.spec import RiskParams, StrategySpec
from evotrader.training.strategy_stage import backtest_registered

# quarter-step sizes, a position size below 1 and a stop: every part of spec_targets trades
SPEC = StrategySpec.build(
    "momentum/volatility-scaled-momentum",
    ["GOOG"],
    risk=RiskParams(position_size=0.8, stop_loss=0.08),
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    (runs / "search").mkdir()
    return make_strategy_registry(runs / "search" / "strategies.sqlite", SPEC)


@pytest.fixture
def prefs(tmp_path: Path) -> Path:
    path = tmp_path / "preferences.yaml"
    path.write_text(yaml.safe_dump(LOOSE_PREFERENCES | {"max_daily_loss_pct": 20.0}))
    return path


def test_sim_bot_trades_a_strategy_exactly_as_run_backtest(registry, prefs, tmp_path) -> None:
    out = tmp_path / "out"
    summary = run(
        LiveOptions(
            broker="sim",
            strategy=SPEC.spec_id,
            runs_dir=registry.parent.parent,  # found as run_backtest.py finds it
            out=out,
            preferences=prefs,
        )
    )
    assert summary.halt is None and not summary.connection_lost
    with Registry(registry) as found:
        _, expected, windows = backtest_registered(found, SPEC.spec_id)

    saved = json.loads((out / "summary.json").read_text())
    assert saved["strategy"] == SPEC.spec_id
    equity = pd.Series(saved["equity"])
    equity.index = pd.to_datetime(equity.index)
    pd.testing.assert_index_equal(equity.index, expected.equity.index, check_names=False)
    assert equity.index[0] == windows.test_start and equity.index[-1] == windows.test_end
    np.testing.assert_allclose(equity.to_numpy(), expected.equity.to_numpy(), rtol=1e-12)
    assert saved["expected"] == saved["equity"]  # telemetry saw no divergence

    units = expected.units.iloc[:, 0]
    changes = units.diff().fillna(units)
    changes = changes[changes != 0.0]
    with Journal(out / "journal.sqlite") as journal:
        fills = journal.fills()
        assert len(fills) == len(changes) > 20
        np.testing.assert_allclose([f.signed_quantity for f in fills], changes, rtol=1e-9)
        fill_days = [f.timestamp.tz_convert("America/New_York").normalize() for f in fills]
        assert [d.tz_localize(None) for d in fill_days] == list(changes.index)
        assert sum(f.cost for f in fills) == pytest.approx(expected.fees + expected.slippage)
        assert len(journal.decisions()) == len(expected.equity)
        assert journal.get_state("strategy")["strategy"] == SPEC.spec_id
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "strategy" and events[0]["strategy"] == SPEC.spec_id


def test_the_script_refuses_an_unknown_strategy(registry, prefs, tmp_path) -> None:
    done = run_script(
        "run_live_bot.py", "--broker", "sim", "--strategy", "0123456789abcdef",
        "--registry", str(registry), "--out", str(tmp_path / "out"),
        "--preferences", str(prefs), timeout=120,
    )  # fmt: skip
    assert done.returncode == ExitCode.USAGE
    assert "error: strategy 0123456789abcdef is not in the registry" in done.stderr
    assert "Traceback" not in done.stderr
