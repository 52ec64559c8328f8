"""A portfolio checkpoint built without training, for the basket bot's tests: a seeded
PortfolioTransformer over a 4-asset synthetic universe, features fitted on the train split,
in the format stage_1_ppo writes (kind portfolio_ppo, universe and portfolio in extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tests.unit.live.helpers import split_range, tiny_spec

from evotrader.core.checkpoint import Checkpoint, save_checkpoint
from evotrader.core.trading import Fill
from evotrader.data import FeaturePipeline, split_by_time
from evotrader.data.universe_ref import UniverseRef
from evotrader.env.portfolio_spec import PortfolioSpec
from evotrader.env.spec import EnvSpec
from evotrader.models.portfolio_transformer import PortfolioTransformer

SYMBOLS = ("A0", "A1", "A2", "A3")
UNIVERSE = "+".join(SYMBOLS)


def make_portfolio_checkpoint(
    path: Path,
    *,
    n_bars: int = 400,
    seed: int = 0,
    kind: str = "portfolio_ppo",
    hyperparameters: dict[str, Any] | None = None,
) -> Path:
    """Save a tiny portfolio checkpoint at ``path`` (whose input projection is scaled up so
    it changes its targets often) and return ``path``; ``kind`` portfolio_maml with its MAML
    settings in ``hyperparameters`` makes one that adapts before it trades."""
    ref = UniverseRef(
        "synthetic_universe",
        SYMBOLS,
        {"n_assets": len(SYMBOLS), "n_bars": n_bars, "seed": seed, "kind": "lead_lag"},
    )
    universe = ref.load()
    splits = split_by_time(universe.bars[SYMBOLS[0]], embargo=5)
    last_train = splits.train.index[-1]
    pipeline = FeaturePipeline().fit([universe.bars[s].loc[:last_train] for s in SYMBOLS])
    env = EnvSpec(window=8, positions=(0.0, 0.5, 1.0), agent_state=False)
    torch.manual_seed(seed)
    spec = tiny_spec(pipeline.num_features)
    net = PortfolioTransformer(spec, len(env.positions))
    with torch.no_grad():
        net.encoder.input_proj.weight.normal_(std=3.0)  # features, not noise, decide
    checkpoint = Checkpoint(
        kind=kind,
        architecture=net.architecture(),
        state_dict=net.state_dict(),
        hyperparameters={**(hyperparameters or {}), "seed": seed},
        feature_pipeline=pipeline.state_dict(),
        env=env.to_dict(),
        symbol=UNIVERSE,
        data_range=split_range(splits),
        metrics={"sharpe": 0.0},
        extra={
            "stage": "stage_1_ppo",
            "universe": ref.to_dict(),
            "portfolio": PortfolioSpec(action="discrete").to_dict(),
        },
    )
    save_checkpoint(checkpoint, path)
    return path


def assert_same_fills(fills: Sequence[Fill], expected: pd.DataFrame) -> None:
    """The bot's journaled ``fills`` are the portfolio backtest's ``expected`` fills: the
    same day and symbol, price and cost to 1e-12 / 1e-9, units to 1e-9."""
    live = pd.DataFrame(
        {
            "day": [f.timestamp.tz_convert("America/New_York").date() for f in fills],
            "symbol": [f.symbol for f in fills],
            "units": [f.signed_quantity for f in fills],
            "price": [f.price for f in fills],
            "cost": [f.cost for f in fills],
        }
    ).sort_values(["day", "symbol"], kind="stable")
    assert list(live["day"]) == [t.date() for t in expected["timestamp"]]
    assert list(live["symbol"]) == list(expected["symbol"])
    np.testing.assert_allclose(live["price"], expected["price"], rtol=1e-12)
    np.testing.assert_allclose(live["units"], expected["units"], rtol=1e-9)
    np.testing.assert_allclose(live["cost"], expected["cost"], rtol=1e-9)
