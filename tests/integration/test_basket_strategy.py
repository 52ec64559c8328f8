"""A multi-symbol registered strategy traded by the basket bot: the sim replay of its test
split equals run_backtest.py --strategy's one-account portfolio run exactly, through the
same BasketRunner, risk engine, journal and sim broker as a portfolio checkpoint; a bot
restarted mid-run sends no order twice and still trades exactly as the backtest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.unit.live.basket_helpers import assert_same_fills
from tests.unit.live.helpers import LOOSE_PREFERENCES, make_strategy_registry

from evotrader.backtest.portfolio import PortfolioResult
from evotrader.live.journal import Journal
from evotrader.live.session import LiveOptions, SetupError, run
from evotrader.strategies.portfolio_bridge import compare_as_portfolio
from evotrader.strategies.registry import Registry
from evotrader.strategies.spec import Filter, RiskParams, StrategySpec, UniverseSpec
from evotrader.training.strategy_stage import registered_test

SYMBOLS = ("RANDOM_WALK", "REGIMES", "AR1", "MOMENTUM", "SIGN_SWITCH")
BASKET = "+".join(SYMBOLS)
# long the strongest, short the weakest of the four least volatile symbols (a universe
# resolved on the bars before the test split), with a per-leg stop: path-dependent targets
SPEC = StrategySpec.build(
    "momentum/cross-sectional-momentum",
    UniverseSpec(SYMBOLS, source="synthetic", filters=(Filter("volatility", "bottom_n", 4),)),
    {"lookback": 20, "skip": 0, "top_n": 1, "bottom_n": 1, "rebalance": 5},
    risk=RiskParams(stop_loss=0.05),
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs/ folder whose search registered SPEC, validated, over synthetic bars."""
    runs = tmp_path_factory.mktemp("runs")
    (runs / "search").mkdir()
    make_strategy_registry(
        runs / "search" / "strategies.sqlite",
        SPEC,
        symbol=SYMBOLS[0],
        source="synthetic",
        options={"n_bars": 900},
    )
    return runs


@pytest.fixture(scope="module")
def backtest(runs: Path) -> PortfolioResult:
    """run_backtest.py --strategy's one-account run (strategy_as_portfolio's inputs)."""
    with Registry(runs / "search" / "strategies.sqlite") as registry:
        test = registered_test(registry, SPEC.spec_id)
    comparison = compare_as_portfolio(
        test.spec,
        test.bars,
        start=test.windows.test_start,
        parameters=test.parameters,
        execution=test.execution,
        cash=test.cash,
    )
    return comparison.results[comparison.policy]


@pytest.fixture
def prefs(tmp_path: Path) -> Path:
    path = tmp_path / "preferences.yaml"
    loose = LOOSE_PREFERENCES | {"allowed_instruments": list(SYMBOLS), "max_daily_loss_pct": 50.0}
    path.write_text(yaml.safe_dump(loose))
    return path


def options(runs: Path, out: Path, prefs: Path, **more: object) -> LiveOptions:
    return LiveOptions(
        broker="sim", strategy=SPEC.spec_id, runs_dir=runs, out=out, preferences=prefs, **more
    )  # type: ignore[arg-type]


def test_sim_basket_bot_trades_a_cross_section_exactly_as_run_backtest(
    runs, prefs, tmp_path, backtest
) -> None:
    held = backtest.weights
    assert (held.abs().sum() > 0).sum() >= 3 and (held < 0).any().any()  # longs and shorts
    assert (held["RANDOM_WALK"] == 0).all()  # the most volatile symbol is filtered out

    out = tmp_path / "out"
    summary = run(options(runs, out, prefs))
    assert summary.halt is None and summary.stopped.startswith("feed ended")
    saved = json.loads((out / "summary.json").read_text())
    assert saved["strategy"] == SPEC.spec_id and saved["symbols"] == list(SYMBOLS)
    equity = pd.Series(saved["equity"])
    equity.index = pd.to_datetime(equity.index)
    pd.testing.assert_index_equal(equity.index, backtest.equity.index, check_names=False)
    np.testing.assert_allclose(equity.to_numpy(), backtest.equity.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(list(saved["expected"].values()), equity.to_numpy(), rtol=1e-12)

    with Journal(out / "journal.sqlite") as journal:
        fills = journal.fills()
        assert len(fills) == len(backtest.fills) > 30
        assert_same_fills(fills, backtest.fills)
        decisions = journal.decisions()
        assert len(decisions) == len(backtest.equity)
        traded = [d for d in decisions if json.loads(d["detail"])["why"] == "policy"]
        assert len(traded) == len(backtest.targets) > 10  # held where unchanged
        assert journal.get_state("strategy")["symbol"] == BASKET
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "strategy" and events[0]["strategy"] == SPEC.spec_id


def test_a_restarted_strategy_basket_sends_nothing_twice(runs, prefs, tmp_path, backtest) -> None:
    out = tmp_path / "out"
    first = run(options(runs, out, prefs, max_bars=40))
    assert first.stopped == "max_bars 40 reached"
    second = run(options(runs, out, prefs))
    assert second.stopped.startswith("feed ended")
    equity = pd.Series(first.equity | second.equity)
    assert len(equity) == len(first.equity) + len(second.equity)  # no bar traded twice
    np.testing.assert_allclose(equity.to_numpy(), backtest.equity.to_numpy(), rtol=1e-12)
    with Journal(out / "journal.sqlite") as journal:
        refs = [order.request.client_ref for order in journal.orders()]
        assert len(refs) == len(set(refs))
        assert_same_fills(journal.fills(), backtest.fills)


def test_what_a_basket_cannot_take_is_one_clear_error(runs, prefs, tmp_path) -> None:
    with pytest.raises(SetupError, match=f"--symbol AR1: strategy {SPEC.spec_id} in .* trades"):
        run(options(runs, tmp_path / "a", prefs, symbol="AR1"))
    with pytest.raises(SetupError, match="a basket replays its own universe \\(synthetic\\)"):
        run(options(runs, tmp_path / "b", prefs, bars_path=tmp_path / "x.csv"))
