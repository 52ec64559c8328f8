from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.unit.strategies.synthetic_pairs import template_case

from evotrader.data import generate_synthetic
from evotrader.strategies.auditor import check_look_ahead
from evotrader.strategies.knowledge import default_knowledge
from evotrader.strategies.templates import SIGNALS, template_signal

KNOWLEDGE = default_knowledge()
SINGLE = generate_synthetic(700, seed=11, kind="regimes").bars


def _frames(template_id: str) -> list[pd.DataFrame]:
    data, symbols = template_case(template_id, 700, seed=8)
    return [data[s] for s in symbols]


def _parameter_sets(template_id: str, count: int = 3, seed: int = 0) -> list[dict]:
    """The defaults plus seeded random parameter sets inside the bounds and constraints."""
    template = KNOWLEDGE.template(template_id)
    rng = np.random.default_rng(seed)
    sets = [template.defaults()]
    while len(sets) < count:
        draw = {
            name: int(rng.integers(p.min, p.max + 1))
            if p.type == "int"
            else rng.uniform(p.min, p.max)
            for name, p in template.parameters.items()
        }
        if all(c.holds(draw) for c in template.constraints):
            sets.append(draw)
    return sets


def test_every_knowledge_template_has_code_and_every_code_has_a_template() -> None:
    assert set(KNOWLEDGE.templates) == set(SIGNALS)
    for template_id, template in KNOWLEDGE.templates.items():
        assert SIGNALS[template_id].legs == template.legs, template_id


@pytest.mark.parametrize("template_id", sorted(SIGNALS))
def test_every_template_is_causal_under_the_auditors_check(template_id) -> None:
    for parameters in _parameter_sets(template_id):
        check = check_look_ahead(
            lambda frames, p=parameters: template_signal(template_id, frames, p),
            _frames(template_id),
            cuts=3,
            seed=1,
        )
        assert check.passed, f"{template_id} {parameters}: {check.detail}"


@pytest.mark.parametrize("template_id", sorted(SIGNALS))
def test_every_template_trades_within_bounds_and_respects_its_direction(template_id) -> None:
    frames = _frames(template_id)
    template = KNOWLEDGE.template(template_id)
    targets = template_signal(template_id, frames, template.defaults())
    assert targets.shape == (len(frames[0]), len(frames))
    assert np.isfinite(targets).all() and np.abs(targets).max() <= 1.0
    assert np.count_nonzero(np.diff(targets[:, 0])) >= 2, "the defaults never trade"
    if template.direction == "long-only":
        assert targets.min() >= 0.0
    if template.legs == 2:
        assert np.array_equal(targets[:, 0], -targets[:, 1])


def test_look_ahead_check_catches_a_peeking_signal() -> None:
    def peeking(frames):  # a centred average: uses closes after t
        close = frames[0]["close"]
        return np.sign(close - close.rolling(21, center=True).mean()).fillna(0).to_numpy()

    check = check_look_ahead(peeking, [SINGLE], cuts=3, seed=0)
    assert not check.passed
    assert "reads the future" in check.detail


def test_look_ahead_check_catches_full_sample_normalisation() -> None:
    def normalised(frames):  # z-score with whole-sample statistics
        close = frames[0]["close"]
        return np.sign((close - close.mean()) / close.std()).to_numpy()

    assert not check_look_ahead(normalised, [SINGLE], cuts=2).passed


def _bars(close: np.ndarray, start: str = "2021-01-01") -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.bdate_range(start, periods=len(close)), name="timestamp")
    close = pd.Series(close, index=index, dtype=np.float64)
    open_ = close.shift(1).fillna(close.iloc[0])
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1e6,
        }
    )


def test_moving_average_crossover_follows_the_trend() -> None:
    bars = _bars(np.concatenate([np.linspace(100, 200, 60), np.linspace(200, 100, 60)]))
    targets = template_signal(
        "trend-following/moving-average-crossover", [bars], {"fast": 3, "slow": 10}
    )[:, 0]
    assert (targets[:9] == 0).all()  # the slow average needs 10 bars
    assert (targets[10:60] == 1).all()
    assert (targets[70:] == -1).all()


def test_donchian_enters_on_the_breakout_bar_and_exits_on_the_short_channel() -> None:
    close = np.array([10, 11, 10, 11, 10, 11, 12.5, 13, 12, 11.0, 10.5, 10.2])
    bars = _bars(close)
    targets = template_signal(
        "breakout/donchian-channel", [bars], {"entry_window": 5, "exit_window": 2}
    )
    position = targets[:, 0]
    assert position[5] == 0 and position[6] == 1  # 12.5 breaks the prior 5-bar high
    exit_bar = 9  # 11.0 closes below the lowest low of bars 7 and 8
    assert position[exit_bar - 1] == 1 and position[exit_bar] == 0


def test_rsi_reversion_fades_runs_and_exits_at_the_middle() -> None:
    close = np.array([100, 101, 102, 101, 99, 96, 92, 93, 95, 97, 98, 99.0])
    targets = template_signal(
        "mean-reversion/rsi-reversion",
        [_bars(close)],
        {"period": 2, "oversold": 10.0, "exit_level": 50.0},
    )[:, 0]
    # RSI(2): nan nan 100 50 16.7 5.6 2.0 25.8 62.3 81.0 87.3 92.4
    assert targets.tolist() == [0, 0, -1, -1, 0, 1, 1, 1, 0, 0, 0, -1]


def test_volatility_targeting_sizes_inversely_to_volatility() -> None:
    rng = np.random.default_rng(0)
    calm = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 200)))
    wild = calm[-1] * np.exp(np.cumsum(rng.normal(0, 0.03, 200)))
    targets = template_signal(
        "volatility/volatility-targeting",
        [_bars(np.concatenate([calm, wild]))],
        {"vol_window": 20, "target_vol": 0.15},
    )[:, 0]
    assert (targets[50:200] == 1.0).all()  # ~6% vol: capped at 1
    assert (targets[250:] <= 0.5).all() and set(np.unique(targets[250:])) <= {0.0, 0.25, 0.5}


def test_distance_pair_shorts_the_rich_leg() -> None:
    first = _bars(np.full(80, 100.0))
    second_close = np.full(80, 50.0) * np.exp(np.sin(np.arange(80) / 3) * 0.01)
    second_close[70] *= 0.9  # B cheap, A rich
    second = _bars(second_close)
    targets = template_signal(
        "pairs/distance-zscore", [first, second], {"window": 30, "entry_z": 2.0, "exit_z": 0.5}
    )
    assert targets[70].tolist() == [-1.0, 1.0]


def test_calendar_templates_use_the_calendar() -> None:
    bars = _bars(np.full(300, 100.0), start="2021-01-04")
    turn = template_signal("seasonal/turn-of-month", [bars], {"days_before": 3, "days_after": 3})[
        :, 0
    ]
    held = pd.Series(turn, index=bars.index)
    assert held["2021-01-29"] == 1 and held["2021-01-28"] == 0  # 2 days left in January
    assert held["2021-02-02"] == 1 and held["2021-02-03"] == 0
    halloween = template_signal("seasonal/halloween", [bars], {"entry_month": 11, "exit_month": 5})[
        :, 0
    ]
    in_window = pd.Series(halloween, index=bars.index)
    assert (
        in_window["2021-04-30"] == 1
        and in_window["2021-05-03"] == 0
        and in_window["2021-11-01"] == 1
    )
    weekday = template_signal("seasonal/day-of-week", [bars], {"entry_weekday": 4, "hold_days": 1})[
        :, 0
    ]
    assert (weekday == (bars.index.dayofweek == 4)).all()


def test_template_signal_rejects_unknown_ids_and_wrong_leg_counts() -> None:
    with pytest.raises(KeyError, match="no code for template 'momentum/none'"):
        template_signal("momentum/none", [SINGLE], {})
    with pytest.raises(ValueError, match="reads 2 bar frame"):
        template_signal(
            "pairs/distance-zscore", [SINGLE], {"window": 10, "entry_z": 2.0, "exit_z": 0.5}
        )
