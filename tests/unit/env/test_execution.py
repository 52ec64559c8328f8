import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError
from evotrader.env import ExecutionModel, rebalance
from evotrader.env.execution import rebalance_portfolio


def test_rebalance_charges_every_cost_component_on_traded_notional() -> None:
    model = ExecutionModel(commission_bps=2.0, half_spread_bps=3.0, slippage_bps=5.0)
    assert model.linear_rate == pytest.approx(10e-4)
    # 10,000 cash, go long 1x at 50: buy 200 units = 10,000 notional, pay 10 bps = 10.
    cash, units, cost = rebalance(10_000.0, 0.0, 1.0, 50.0, model.linear_rate, 0.0)
    assert units == pytest.approx(200.0)
    assert cost == pytest.approx(10.0)
    assert cash == pytest.approx(-10.0)
    # Flip to short 1x at 55: equity 200*55 - 10 = 10,990 -> -199.8181.. units,
    # traded 399.8181.. units * 55 = 21,990 notional -> 21.99 cost.
    cash, units, cost = rebalance(cash, units, -1.0, 55.0, model.linear_rate, 0.0)
    assert units == pytest.approx(-10_990.0 / 55.0)
    assert cost == pytest.approx(21.99)
    assert cash + units * 55.0 == pytest.approx(10_990.0 - 21.99)


def test_rebalance_is_the_same_on_floats_and_arrays() -> None:
    args = (10_000.0, 20.0, -0.5, 101.0, 3e-4, 1e-5)
    scalar = rebalance(*args)
    vector = rebalance(*(np.full(3, a) if i != 4 else a for i, a in enumerate(args)))
    for s, v in zip(scalar, vector, strict=True):
        np.testing.assert_array_equal(v, np.full(3, s))


def test_square_root_impact_grows_with_size() -> None:
    small = rebalance(1e6, 0.0, 0.1, 100.0, 0.0, 1e-4)[2] / (0.1 * 1e6)
    large = rebalance(1e6, 0.0, 1.0, 100.0, 0.0, 1e-4)[2] / 1e6
    assert large / small == pytest.approx(np.sqrt(10.0))


def test_fill_timing_and_causal_impact(bars: pd.DataFrame) -> None:
    next_open = ExecutionModel(impact_coef=0.1).prices(bars)
    np.testing.assert_array_equal(next_open.fill[:-1], bars["open"].to_numpy()[1:])
    assert np.isnan(next_open.fill[-1])
    np.testing.assert_array_equal(ExecutionModel(fill="close").prices(bars).fill, bars["close"])
    changed = bars.copy()
    changed.iloc[301:] *= 3.0
    np.testing.assert_array_equal(
        ExecutionModel(impact_coef=0.1).prices(changed).impact[:301], next_open.impact[:301]
    )
    assert next_open.impact[100] > 0


@pytest.mark.parametrize(
    ("field", "value"), [("commission_bps", -1.0), ("fill", "tomorrow"), ("impact_window", 1)]
)
def test_invalid_execution_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        ExecutionModel(**{field: value})


def test_a_one_asset_portfolio_rebalances_exactly_as_one_account() -> None:
    for cash, units, target, price, impact in [
        (1e5, 0.0, 0.7, 101.3, 0.001),
        (53_000.2, 312.7, -0.4, 97.1, 0.0),
        (1e5, 10.0, 1.0, 55.5, 0.02),
    ]:
        single = rebalance(cash, units, target, price, 3e-4, impact)
        many = rebalance_portfolio(
            cash, np.array([units]), np.array([target]), np.array([price]), 3e-4, np.array([impact])
        )
        assert (many[0], many[1][0], many[2][0]) == single


def test_a_portfolio_rebalance_spends_one_cash_balance_and_charges_each_asset() -> None:
    price = np.array([50.0, 200.0])
    cash, units, cost = rebalance_portfolio(
        1e4, np.zeros(2), np.array([0.5, 0.25]), price, 1e-3, np.zeros(2)
    )
    assert units == pytest.approx([100.0, 12.5])
    assert cost == pytest.approx([5.0, 2.5])
    assert cash == pytest.approx(1e4 - 5000 - 2500 - 7.5)


def _accounts(rng: np.random.Generator, batch: tuple[int, ...], assets: int) -> dict:
    shape = (*batch, assets)
    return {
        "cash": rng.uniform(-2e4, 1e5, batch),
        "units": rng.uniform(-300.0, 300.0, shape),
        "target": rng.dirichlet(np.ones(assets), batch) * rng.choice([-1.0, 1.0], shape),
        "price": rng.uniform(5.0, 500.0, shape),
        "impact": rng.uniform(0.0, 1e-3, shape),
    }


@pytest.mark.parametrize("batch", [(7,), (2, 3)])
@pytest.mark.parametrize("per_asset_rate", [False, True])
def test_a_batched_rebalance_equals_one_call_per_account(
    batch: tuple[int, ...], per_asset_rate: bool
) -> None:
    """20 assets (numpy's unrolled sums), one rate or one per asset: every account of the
    batch ends bit-for-bit where its own call puts it."""
    rng = np.random.default_rng(3)
    assets = 20
    a = _accounts(rng, batch, assets)
    rate = rng.uniform(0.0, 2e-3, assets) if per_asset_rate else 3e-4
    cash, units, cost = rebalance_portfolio(
        a["cash"], a["units"], a["target"], a["price"], rate, a["impact"]
    )
    assert cash.shape == batch and units.shape == cost.shape == (*batch, assets)
    for i in np.ndindex(*batch):
        one = rebalance_portfolio(
            float(a["cash"][i]), a["units"][i], a["target"][i], a["price"][i], rate, a["impact"][i]
        )
        assert isinstance(one[0], float) and one[0] == cash[i]
        assert np.array_equal(one[1], units[i]) and np.array_equal(one[2], cost[i])
    assert len(set(cash.ravel())) == cash.size  # the accounts really differ


def test_per_asset_rates_charge_each_asset_its_own_rate() -> None:
    price = np.array([50.0, 200.0])
    rates = np.array([1e-3, 4e-3])
    cash, _, cost = rebalance_portfolio(
        1e4, np.zeros(2), np.array([0.5, 0.25]), price, rates, np.zeros(2)
    )
    assert cost == pytest.approx([5.0, 10.0])
    assert cash == pytest.approx(1e4 - 5000 - 2500 - 15.0)
    # each asset's cost is the one-account cost at that asset's rate
    for i in range(2):
        single = rebalance(1e4, 0.0, [0.5, 0.25][i], price[i], float(rates[i]), 0.0)
        assert cost[i] == single[2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cash": np.zeros(3)}, r"units of shape \(2, 4\) do not match cash of shape \(3,\)"),
        ({"price": np.ones((2, 3))}, r"price has shape \(2, 3\), units \(2, 4\)"),
        ({"rate": np.ones(3)}, r"linear_rate must be one rate or one per asset \(4\)"),
    ],
)
def test_misshapen_portfolio_arrays_are_refused(change: dict, message: str) -> None:
    args = {
        "cash": np.full(2, 1e4),
        "units": np.zeros((2, 4)),
        "target": np.full((2, 4), 0.25),
        "price": np.ones((2, 4)),
        "rate": 1e-4,
        "impact": np.zeros((2, 4)),
    } | change
    with pytest.raises(ValueError, match=message):
        rebalance_portfolio(
            args["cash"], args["units"], args["target"], args["price"], args["rate"], args["impact"]
        )


def test_impact_on_bars_without_volume_is_refused_not_zero(bars: pd.DataFrame) -> None:
    no_volume = bars.assign(volume=0.0)
    with pytest.raises(DataError, match=r"impact_coef=0.1 needs traded volume, but the 600 bars"):
        ExecutionModel(impact_coef=0.1).prices(no_volume)
    free = ExecutionModel().prices(no_volume)  # no impact asked: nothing to refuse
    assert not free.impact.any()
    np.testing.assert_array_equal(free.fill, ExecutionModel().prices(bars).fill)
