"""Market environments: MarketEnv (Gymnasium) and VectorMarketEnv, both described by one EnvSpec."""

import gymnasium as gym

from evotrader.env.execution import ExecutionModel, ExecutionPrices, rebalance
from evotrader.env.market_data import DEFAULT_FIT_BARS, MarketData
from evotrader.env.market_env import MarketEnv
from evotrader.env.spec import DEFAULT_POSITIONS, EnvSpec
from evotrader.env.vector_env import VectorMarketEnv

ENV_ID = "evotrader/Market-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="evotrader.env.market_env:MarketEnv")

__all__ = [
    "DEFAULT_FIT_BARS",
    "DEFAULT_POSITIONS",
    "ENV_ID",
    "EnvSpec",
    "ExecutionModel",
    "ExecutionPrices",
    "MarketData",
    "MarketEnv",
    "VectorMarketEnv",
    "rebalance",
]
