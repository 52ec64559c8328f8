"""Preferences: required, frozen, hashed, and impossible to loosen at run time."""

from __future__ import annotations

import dataclasses
from datetime import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evotrader.risk import (
    LooseningError,
    Preferences,
    PreferencesError,
    TradingHours,
    bar_end_times,
    bar_open_times,
    load_preferences,
)

REPO = Path(__file__).resolve().parents[3]
RAW = yaml.safe_load((REPO / "configs" / "preferences.yaml").read_text())
BASE = RAW | {"allowed_asset_classes": ["STK", "CASH"]}
# The portfolio limits ship off (null); switched on here so each has a looser value too.
PORTFOLIO_ON = {
    "max_net_exposure": 0.8,
    "max_positions": 10,
    "max_cluster_weight": 0.5,
    "max_var_pct": 2.0,
    "max_cvar_pct": 3.0,
}
BASE |= PORTFOLIO_ON

# For every limit: a stricter and a looser run-time value than the file's.
STRICTER_AND_LOOSER = {
    "max_position_pct": (50.0, 150.0),
    "max_leverage": (0.5, 2.0),
    "max_daily_loss_pct": (1.0, 10.0),
    "max_drawdown_pct": (10.0, 30.0),
    "max_orders_per_minute": (5, 20),
    "allowed_instruments": (["GOOG"], ["GOOG", "TSLA"]),
    "allowed_asset_classes": (["STK"], ["STK", "CASH", "OPT"]),
    "trading_hours": (
        {**RAW["trading_hours"], "start": "10:00", "end": "15:30"},
        {**RAW["trading_hours"], "days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]},
    ),
    "stale_data_seconds": (3600, 10**6),
    "error_burst_count": (3, 10),
    "error_burst_seconds": (600, 60),
    "max_net_exposure": (0.5, 1.0),
    "max_positions": (5, 20),
    "max_cluster_weight": (0.3, 0.6),
    "cluster_correlation": (0.5, 0.9),
    "max_var_pct": (1.0, 3.0),
    "max_cvar_pct": (2.0, None),  # switching a limit off is loosening it
    "var_confidence": (0.99, 0.9),
}
# Neither direction is stricter: run time may not change these at all.
FIXED = {"risk_lookback": (100, 500)}


def test_the_shipped_file_loads_frozen_and_hashed() -> None:
    prefs = load_preferences(REPO / "configs" / "preferences.yaml")
    assert "GOOG" in prefs.allowed_instruments
    assert prefs.trading_hours.start == time(9, 30)
    assert len(prefs.sha256) == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        prefs.max_leverage = 10.0  # type: ignore[misc]


def test_every_limit_in_the_schema_is_covered_by_these_tests() -> None:
    assert set(STRICTER_AND_LOOSER) | set(FIXED) == {
        f.name for f in dataclasses.fields(Preferences)
    }


@pytest.mark.parametrize("name", sorted(FIXED))
def test_a_window_no_direction_of_which_is_stricter_is_fixed_at_run_time(name: str) -> None:
    prefs = Preferences.from_dict(BASE)
    assert prefs.tightened({name: getattr(prefs, name)}) == prefs
    for value in FIXED[name]:
        with pytest.raises(LooseningError, match=f"{name}: {value} would change"):
            prefs.tightened({name: value})


def test_portfolio_limits_may_be_absent_and_are_then_off() -> None:
    prefs = Preferences.from_dict(RAW)  # the shipped file leaves them null
    portfolio_keys = {*PORTFOLIO_ON, *FIXED, "cluster_correlation", "var_confidence"}
    old_file = {k: v for k, v in RAW.items() if k not in portfolio_keys}  # before the limits
    assert len(old_file) == len(RAW) - 8
    assert Preferences.from_dict(old_file) == prefs
    for name in PORTFOLIO_ON:
        assert getattr(prefs, name) is None
        switched_on = prefs.tightened({name: PORTFOLIO_ON[name]})  # turning one on is stricter
        assert getattr(switched_on, name) == PORTFOLIO_ON[name]
        with pytest.raises(LooseningError, match=name):
            switched_on.tightened({name: "off"})


def test_hash_follows_content_not_formatting(tmp_path: Path) -> None:
    reordered = dict(reversed(list(RAW.items())))
    reordered["allowed_instruments"] = list(reversed(RAW["allowed_instruments"]))
    path = tmp_path / "p.yaml"
    path.write_text("# another comment\n" + yaml.safe_dump(reordered, default_flow_style=True))
    original = Preferences.from_dict(RAW)
    assert load_preferences(path).sha256 == original.sha256
    assert Preferences.from_dict(RAW | {"max_leverage": 0.9}).sha256 != original.sha256


@pytest.mark.parametrize("name", sorted(STRICTER_AND_LOOSER))
def test_run_time_settings_may_tighten_but_never_loosen(name: str) -> None:
    prefs = Preferences.from_dict(BASE)
    stricter, looser = STRICTER_AND_LOOSER[name]
    tightened = prefs.tightened({name: stricter})
    assert getattr(tightened, name) != getattr(prefs, name)
    assert prefs.sha256 == Preferences.from_dict(BASE).sha256  # the original is untouched
    with pytest.raises(LooseningError, match=name):
        prefs.tightened({name: looser})
    with pytest.raises(LooseningError, match=name):  # not even after a tightening
        tightened.tightened({name: getattr(prefs, name)})


def test_trading_hours_in_another_timezone_is_not_a_tightening() -> None:
    prefs = Preferences.from_dict(RAW)
    with pytest.raises(LooseningError, match="trading_hours"):
        prefs.tightened({"trading_hours": {**RAW["trading_hours"], "timezone": "Asia/Tokyo"}})


def test_unknown_override_is_refused() -> None:
    with pytest.raises(PreferencesError, match="max_levrage"):
        Preferences.from_dict(RAW).tightened({"max_levrage": 0.5})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_position_pct": -1}, "max_position_pct: must be > 0"),
        ({"max_daily_loss_pct": 120}, "max_daily_loss_pct: must be <= 100"),
        ({"max_orders_per_minute": 2.5}, "max_orders_per_minute: must be an integer"),
        ({"max_leverage": "lots"}, "max_leverage: expected a number"),
        ({"max_drawdown_pct": True}, "max_drawdown_pct: expected a number"),
        ({"allowed_instruments": []}, "allowed_instruments: must be a non-empty list"),
        ({"stale_data_seconds": float("nan")}, "stale_data_seconds: must be finite"),
        ({"trading_hours": {**RAW["trading_hours"], "timezone": "Mars/Base"}}, "Mars/Base"),
        ({"trading_hours": {**RAW["trading_hours"], "days": ["Funday"]}}, "Funday"),
        ({"trading_hours": {**RAW["trading_hours"], "end": "09:00"}}, "must be before end"),
        ({"trading_hours": {**RAW["trading_hours"], "start": "nine"}}, "expected HH:MM"),
        ({"max_positions": 0}, "max_positions: must be an integer >= 1"),
        ({"max_positions": 2.5}, "max_positions: must be an integer"),
        ({"max_var_pct": 150}, "max_var_pct: must be <= 100"),
        ({"max_cluster_weight": -0.1}, "max_cluster_weight: must be > 0"),
        ({"cluster_correlation": 1.5}, r"cluster_correlation: must lie in \(0, 1\]"),
        ({"var_confidence": 1.0}, r"var_confidence: must lie in \[0.5, 1\)"),
        ({"risk_lookback": 1}, "risk_lookback: must be an integer >= 2"),
    ],
)
def test_bad_values_are_named(change: dict, message: str) -> None:
    with pytest.raises(PreferencesError, match=message):
        Preferences.from_dict(RAW | change)


def test_missing_and_unknown_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in RAW.items() if k != "max_leverage"}))
    with pytest.raises(PreferencesError, match=r"missing keys \['max_leverage'\]"):
        load_preferences(path)
    path.write_text(yaml.safe_dump(RAW | {"yolo": True}))
    with pytest.raises(PreferencesError, match=r"unknown keys \['yolo'\]"):
        load_preferences(path)
    path.write_text("max_leverage: [unclosed")
    with pytest.raises(PreferencesError, match="not valid YAML"):
        load_preferences(path)


def test_unquoted_yaml_times_read_as_clock_times() -> None:
    hours = TradingHours.from_dict(
        yaml.safe_load("timezone: UTC\ndays: [Mon]\nstart: 09:30\nend: 16:00")
    )
    assert (hours.start, hours.end) == (time(9, 30), time(16, 0))


def test_trading_hours_are_timezone_aware_across_daylight_saving() -> None:
    hours = Preferences.from_dict(RAW).trading_hours
    winter_open, summer_open = "2024-01-08 14:30", "2024-07-08 13:30"  # 09:30 in New York
    assert hours.contains(pd.Timestamp(winter_open, tz="UTC"))
    assert hours.contains(pd.Timestamp(summer_open, tz="UTC"))
    assert not hours.contains(pd.Timestamp("2024-01-08 13:30", tz="UTC"))  # 08:30 NY
    assert not hours.contains(pd.Timestamp("2024-01-06 15:00", tz="UTC"))  # a Saturday
    with pytest.raises(ValueError, match="tz-aware"):
        hours.contains(pd.Timestamp("2024-01-08 15:00"))


def test_bars_open_and_close_on_the_session_or_their_label() -> None:
    hours = Preferences.from_dict(RAW).trading_hours
    daily = pd.DatetimeIndex(["2024-01-08", "2024-07-08"])
    assert list(bar_end_times(daily, hours)) == [
        pd.Timestamp("2024-01-08 21:00", tz="UTC"),
        pd.Timestamp("2024-07-08 20:00", tz="UTC"),
    ]
    assert bar_open_times(daily, hours)[0] == pd.Timestamp("2024-01-08 14:30", tz="UTC")
    hourly = pd.date_range("2024-01-08 14:30", periods=3, freq="h")
    assert bar_end_times(hourly, hours)[0] == pd.Timestamp("2024-01-08 15:30", tz="UTC")
    assert bar_open_times(hourly, hours)[0] == pd.Timestamp("2024-01-08 14:30", tz="UTC")
