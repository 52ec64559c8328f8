"""The basket bot end to end: a portfolio checkpoint traded in the sim equals its portfolio
backtest (run_backtest.py's engine and settings), and a restart with positions open in
several symbols reconciles every order and sends none twice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tests.unit.live.basket_helpers import (
    SYMBOLS,
    UNIVERSE,
    assert_same_fills,
    make_portfolio_checkpoint,
)
from tests.unit.live.helpers import LOOSE_PREFERENCES, in_paper, preferences

from evotrader.backtest.portfolio import PortfolioResult, run_portfolio
from evotrader.core.trading import Instrument, OrderRequest, OrderState
from evotrader.env.execution import ExecutionModel
from evotrader.live.basket_runner import BasketRunner, basket_instruments
from evotrader.live.basket_sim import BasketSimBroker
from evotrader.live.broker import UnknownInstrument
from evotrader.live.journal import Journal
from evotrader.live.runner import RunnerConfig
from evotrader.live.session import LiveOptions, SetupError, run
from evotrader.risk import RiskEngine, load_preferences
from evotrader.risk.portfolio import PortfolioRisk
from evotrader.training.guards import PortfolioCheckpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs/ folder with one portfolio checkpoint over A0..A3, in paper in its registry
    under the universe's name."""
    runs = tmp_path_factory.mktemp("runs")
    in_paper(runs, make_portfolio_checkpoint(runs / "basket" / "portfolio_stage_1_ppo.pth"))
    return runs


@pytest.fixture(scope="module")
def tradable(runs: Path) -> PortfolioCheckpoint:
    return PortfolioCheckpoint.load(runs / "basket" / "portfolio_stage_1_ppo.pth")


@pytest.fixture(scope="module")
def backtest(tradable: PortfolioCheckpoint) -> PortfolioResult:
    """The checkpoint's test split as run_backtest.py runs it (backtest_portfolio)."""
    universe = tradable.universe.load().between(None, tradable.checkpoint.data_range["test_end"])
    return run_portfolio(
        tradable.policy(),
        universe.bars,
        tradable.settings(),
        start=tradable.test_start,
        close_only=universe.close_only,
    )


@pytest.fixture
def prefs(tmp_path: Path) -> Path:
    path = tmp_path / "preferences.yaml"
    loose = LOOSE_PREFERENCES | {"allowed_instruments": list(SYMBOLS), "max_daily_loss_pct": 50.0}
    path.write_text(yaml.safe_dump(loose))
    return path


def test_sim_basket_bot_equals_the_portfolio_backtest(runs, prefs, tmp_path, backtest) -> None:
    out = tmp_path / "out"
    summary = run(
        LiveOptions(broker="sim", symbol=UNIVERSE, runs_dir=runs, out=out, preferences=prefs)
    )
    assert summary.halt is None and summary.stopped.startswith("feed ended")
    saved = json.loads((out / "summary.json").read_text())
    equity = pd.Series(saved["equity"])
    equity.index = pd.to_datetime(equity.index)
    pd.testing.assert_index_equal(equity.index, backtest.equity.index, check_names=False)
    np.testing.assert_allclose(equity.to_numpy(), backtest.equity.to_numpy(), rtol=1e-12)
    assert saved["symbols"] == list(SYMBOLS) and saved["choice"]["chosen_by"] == "registry"
    expected = list(saved["expected"].values())  # the telemetry's backtest account: no drift
    np.testing.assert_allclose(expected, backtest.equity.to_numpy(), rtol=1e-12)

    with Journal(out / "journal.sqlite") as journal:
        fills = journal.fills()
        assert len({f.symbol for f in fills}) == len(SYMBOLS)
        assert len(fills) == len(backtest.fills) > 50
        assert_same_fills(fills, backtest.fills)
        refs = [order.request.client_ref for order in journal.orders()]
        assert len(refs) == len(set(refs))
        assert len(journal.decisions()) == len(backtest.equity)


def test_a_maml_basket_adapts_on_the_brokers_history_before_its_first_bar(prefs, tmp_path) -> None:
    """A portfolio_maml checkpoint adapts before it trades (its weights change) on every
    symbol's bars before the first live bar, which the session takes from the broker's
    history: the sim replay of the test split equals the backtest, which adapts on the
    universe's bars before the test split."""
    maml = {"inner_steps": 1, "inner_lr": 0.5, "num_envs": 4, "episode_length": 16}
    path = make_portfolio_checkpoint(
        tmp_path / "basket_stage_3_maml.pth",
        kind="portfolio_maml",
        hyperparameters=maml | {"adapt_bars": 64},
    )
    tradable = PortfolioCheckpoint.load(path)
    adapted = tradable.policy().net.state_dict()
    saved = tradable.net.state_dict()
    assert any(not torch.equal(adapted[name], saved[name]) for name in saved)  # it adapted
    universe = tradable.universe.load().between(None, tradable.checkpoint.data_range["test_end"])
    backtest = run_portfolio(
        tradable.policy(), universe.bars, tradable.settings(), start=tradable.test_start
    )
    out = tmp_path / "out"
    run(LiveOptions(broker="sim", checkpoint=path, out=out, preferences=prefs))
    equity = pd.Series(json.loads((out / "summary.json").read_text())["equity"])
    np.testing.assert_allclose(equity.to_numpy(), backtest.equity.to_numpy(), rtol=1e-12)
    assert len(backtest.fills) > 10  # the adapted policy trades


def test_the_portfolio_limits_bind_live_as_in_the_backtest(runs, prefs, tmp_path, tradable) -> None:
    """The same PortfolioRisk check as run_portfolio(risk=...): with every asset capped at
    40% of equity, the bot's equity still equals the backtest's under that risk."""
    out = tmp_path / "out"
    summary = run(
        LiveOptions(
            broker="sim", symbol=UNIVERSE, runs_dir=runs, out=out, preferences=prefs,
            tighten=["max_position_pct=40"],
        )
    )  # fmt: skip
    universe = tradable.universe.load().between(None, tradable.checkpoint.data_range["test_end"])
    capped = load_preferences(prefs).tightened({"max_position_pct": 40})
    expected = run_portfolio(
        tradable.policy(),
        universe.bars,
        tradable.settings(),
        start=tradable.test_start,
        close_only=universe.close_only,
        risk=PortfolioRisk(capped),
    )
    assert expected.metrics["risk_asset_weight"] > 0  # the cap binds on these bars
    np.testing.assert_allclose(summary.equity_series, expected.equity.to_numpy(), rtol=1e-12)
    with Journal(out / "journal.sqlite") as journal:
        adjusted = [e for e in journal.risk_events() if e["kind"] == "portfolio_adjusted"]
    assert len(adjusted) == expected.metrics["risk_asset_weight"]


class CountingBroker(BasketSimBroker):
    """The sim as a broker that outlives the bot: counts every order sent, and can crash
    the bot (an exception out of place_order) on the n-th send."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sent: list[str] = []
        self.crash_on: int | None = None

    def place_order(self, request: OrderRequest) -> OrderState:
        if self.crash_on is not None and len(self.sent) == self.crash_on:
            self.crash_on = None
            raise SystemExit("the bot died while sending")
        self.sent.append(request.client_ref)
        return super().place_order(request)


def basket_runner(broker, tradable, journal: Journal) -> BasketRunner:
    config = RunnerConfig(Instrument(UNIVERSE))
    prefs = preferences(allowed_instruments=list(SYMBOLS), max_daily_loss_pct=50.0)
    return BasketRunner(
        broker,
        tradable.policy(),
        basket_instruments(config, SYMBOLS),
        RiskEngine(prefs),
        journal,
        config,
        console=lambda line: None,
    )


def counting_broker(tradable: PortfolioCheckpoint) -> CountingBroker:
    universe = tradable.universe.load().between(None, tradable.checkpoint.data_range["test_end"])
    return CountingBroker(
        universe.bars,
        start=tradable.test_start,
        execution=tradable.spec.execution,
        initial_cash=tradable.spec.initial_cash,
        hours=preferences().trading_hours,
    )


@pytest.mark.parametrize("crash", ["after_sending", "mid_batch"])
def test_a_restart_with_open_positions_sends_no_duplicate_order(
    tradable, backtest, tmp_path, crash
) -> None:
    broker = counting_broker(tradable)
    first = basket_runner(broker, tradable, Journal(tmp_path / "journal.sqlite"))
    first.start()
    while True:  # a timestamp at a time: a bar of each symbol, the decision on the last
        for _ in SYMBOLS[1:]:
            first.step()  # the first one settled the orders of the previous decision
        several = first.summary.bars >= 10 and len(broker.positions()) >= 2
        if several and crash == "mid_batch":  # one order reaches the broker, then the crash
            broker.crash_on = len(broker.sent) + 1
            with pytest.raises(SystemExit):
                first.step()
            break
        first.step()
        if several and first.journal.open_orders():  # working orders and positions: crash
            break
    first.journal.close()
    held = broker.positions()
    assert len(held) >= 2  # open positions in several symbols at the crash
    with Journal(tmp_path / "journal.sqlite") as journal:
        pending = [o.request.client_ref for o in journal.open_orders()]
    sent_before = list(broker.sent)

    second = basket_runner(broker, tradable, Journal(tmp_path / "journal.sqlite"))
    second.start()  # reconcile: every journaled order matched with the broker
    resent = broker.sent[len(sent_before) :]
    if crash == "mid_batch":
        assert resent and set(resent) <= set(pending)  # only what never reached the broker
    else:
        assert resent == []
    while not second.summary.stopped:
        second.step()
    assert len(broker.sent) == len(set(broker.sent))  # no order sent twice, ever
    with second.journal as journal:
        refs = [o.request.client_ref for o in journal.orders()]
        assert sorted(refs) == sorted(broker.sent)
        assert {f.exec_id for f in journal.fills()} == {f.exec_id for f in broker.fills()}
    # the bot that died and came back traded exactly as the backtest did
    equity = pd.Series(first.summary.equity | second.summary.equity)
    np.testing.assert_allclose(equity.to_numpy(), backtest.equity.to_numpy(), rtol=1e-12)
    expected = pd.Series(first.summary.expected | second.summary.expected)  # restored too
    np.testing.assert_allclose(expected.to_numpy(), backtest.equity.to_numpy(), rtol=1e-12)


def test_bad_input_is_one_clear_error(runs, prefs, tradable, tmp_path) -> None:
    options = {"broker": "sim", "runs_dir": runs, "preferences": prefs}
    checkpoint = runs / "basket" / "portfolio_stage_1_ppo.pth"
    with pytest.raises(SetupError, match=f"--symbol A0: checkpoint {checkpoint} trades the basket"):
        run(LiveOptions(checkpoint=checkpoint, symbol="A0", out=tmp_path / "a", **options))
    with pytest.raises(SetupError, match="--bars-path name one symbol's bars"):
        run(
            LiveOptions(
                checkpoint=checkpoint, bars_path=tmp_path / "x.csv", out=tmp_path / "b", **options
            )
        )
    universe = tradable.universe.load()
    three = {s: universe.bars[s] for s in SYMBOLS[:3]}  # the broker has no bars of A3
    broker = BasketSimBroker(three, start=tradable.test_start, hours=preferences().trading_hours)
    runner = basket_runner(broker, tradable, Journal(tmp_path / "c" / "journal.sqlite"))
    with pytest.raises(UnknownInstrument, match="sim: no bars of A3 in this replay of A0, A1, A2"):
        runner.start()


def test_a_breaker_flattens_every_symbol_and_halts(runs, prefs, tmp_path) -> None:
    out = tmp_path / "out"
    summary = run(
        LiveOptions(
            broker="sim", symbol=UNIVERSE, runs_dir=runs, out=out, preferences=prefs,
            tighten=["max_daily_loss_pct=0.3"],
        )
    )  # fmt: skip
    assert summary.halt is not None and summary.halt.kind == "daily_loss"
    assert "STILL HOLDING" not in summary.stopped
    with Journal(out / "journal.sqlite") as journal:
        assert journal.positions() == {}  # every basket position closed
        assert any(o.request.client_ref.endswith("-flat0") for o in journal.orders())
        assert [e["kind"] for e in journal.risk_events()][-1] == "flattened"


def test_a_sim_bot_restarted_on_its_out_resumes_after_its_last_bar(runs, prefs, tmp_path) -> None:
    out = tmp_path / "out"
    options = {"broker": "sim", "symbol": UNIVERSE, "runs_dir": runs, "out": out}
    first = run(LiveOptions(preferences=prefs, max_bars=10, **options))
    assert first.stopped == "max_bars 10 reached"
    second = run(LiveOptions(preferences=prefs, **options))
    assert second.stopped.startswith("feed ended")
    assert min(second.equity) > max(first.equity)  # no bar traded twice
    with Journal(out / "journal.sqlite") as journal:
        refs = [order.request.client_ref for order in journal.orders()]
        assert len(refs) == len(set(refs))
        assert len(journal.decisions()) == len(first.equity) + len(second.equity)
        held = {s: p.quantity for s, p in journal.positions().items()}
        fills = journal.fills()
    units = {s: sum(f.signed_quantity for f in fills if f.symbol == s) for s in SYMBOLS}
    np.testing.assert_allclose([held.get(s, 0.0) for s in SYMBOLS], list(units.values()))


def test_fills_costlier_than_the_backtest_assumed_trip_the_divergence_breaker(
    tradable, tmp_path
) -> None:
    universe = tradable.universe.load().between(None, tradable.checkpoint.data_range["test_end"])
    costly = ExecutionModel(commission_bps=100.0)  # the broker charges 100x what was trained
    broker = BasketSimBroker(universe.bars, start=tradable.test_start, execution=costly)
    config = RunnerConfig(Instrument(UNIVERSE), max_divergence_pct=0.5)
    prefs = preferences(allowed_instruments=list(SYMBOLS), max_daily_loss_pct=50.0)
    runner = BasketRunner(
        broker, tradable.policy(), basket_instruments(config, SYMBOLS), RiskEngine(prefs),
        Journal(tmp_path / "journal.sqlite"), config, execution=tradable.spec.execution,
        console=lambda line: None,
    )  # fmt: skip
    summary = runner.run()
    assert summary.halt is not None and summary.halt.kind == "divergence"
    assert "from the backtest's expectation" in summary.halt.reason
    assert broker.positions() == {}  # flattened


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.array([0.5, 0.5]), "policy returned 2 weights for the 4 symbols of A0\\+A1\\+A2\\+A3"),
        (np.array([0.5, np.nan, 0.0, 0.0]), "portfolio risk: target for A1 is nan"),
    ],
)
def test_weights_it_cannot_trade_are_errors_not_orders(tradable, tmp_path, weights, message):
    broker = counting_broker(tradable)
    runner = basket_runner(broker, tradable, Journal(tmp_path / "journal.sqlite"))
    runner.policy = lambda history: weights
    runner.config = RunnerConfig(Instrument(UNIVERSE), max_bars=3)
    summary = runner.run()
    assert summary.stopped == "max_bars 3 reached" and summary.errors == 3
    assert broker.sent == []
    with runner.journal as journal:
        errors = [json.loads(e["detail"]) for e in journal.risk_events() if e["kind"] == "error"]
    assert len(errors) == 3 and errors[0]["kind"] == "policy"
    assert re.search(message, errors[0]["detail"])
