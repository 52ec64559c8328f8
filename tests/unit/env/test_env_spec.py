"""EnvSpec: one checked, frozen description of an env, and the dict checkpoints store."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from evotrader.env import EnvSpec, ExecutionModel

# The env dict every checkpoint written before EnvSpec carries (asdict of the old EnvConfig).
SAVED_ENV: dict[str, Any] = {
    "window": 64,
    "positions": [-1.0, 0.0, 1.0],
    "reward": "log_return",
    "episode_length": 256,
    "initial_cash": 100000.0,
    "agent_state": True,
    "sharpe_eta": 0.01,
    "execution": {
        "commission_bps": 1.0,
        "half_spread_bps": 1.0,
        "slippage_bps": 1.0,
        "impact_coef": 0.0,
        "impact_window": 20,
        "fill": "next_open",
    },
}


def test_existing_checkpoints_env_loads_and_is_written_back_unchanged() -> None:
    spec = EnvSpec.from_dict(SAVED_ENV)
    assert spec == EnvSpec()
    assert spec.to_dict() == SAVED_ENV


def test_json_round_trip_is_exact() -> None:
    spec = EnvSpec(
        window=8,
        positions=[0, 1],  # type: ignore[arg-type]  # YAML and JSON give lists of ints
        reward="differential_sharpe",
        episode_length=None,
        initial_cash=5000,
        execution=ExecutionModel(commission_bps=2.0, fill="close"),
    )
    assert spec.positions == (0.0, 1.0) and isinstance(spec.initial_cash, float)
    assert EnvSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert hash(spec) == hash(replace(spec))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window": 0}, "window must be >= 1"),
        ({"positions": (1.0,)}, "at least two targets"),
        ({"reward": "profit"}, "reward must be one of"),
        ({"episode_length": 0}, "episode_length must be >= 1 or None"),
        ({"initial_cash": 0.0}, "initial_cash must be positive"),
        ({"sharpe_eta": 1.0}, r"sharpe_eta must lie in \(0, 1\)"),
        ({"execution": {**SAVED_ENV["execution"], "fill": "bogus"}}, "execution fill"),
    ],
)
def test_a_bad_setting_is_refused_by_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EnvSpec(**settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({**SAVED_ENV, "cost_bps": 1.5}, r"unknown keys \['cost_bps'\], missing keys \[\]"),
        ({k: v for k, v in SAVED_ENV.items() if k != "reward"}, r"missing keys \['reward'\]"),
        (
            {**SAVED_ENV, "execution": {"fill": "close"}},
            r"env execution settings: unknown keys \[\], missing keys \['commission_bps'",
        ),
        ({**SAVED_ENV, "execution": "next_open"}, "execution must be a dict"),
    ],
)
def test_from_dict_names_unknown_and_missing_keys(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EnvSpec.from_dict(settings)
