import numpy as np
import pandas as pd
import pytest

from evotrader.env import ExecutionModel, rebalance


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
