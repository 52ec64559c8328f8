"""Market environments: MarketEnv and VectorMarketEnv (one symbol), PortfolioEnv and
VectorPortfolioEnv (aligned symbols, one cash balance), all described by one EnvSpec."""

import gymnasium as gym

from evotrader.env.execution import ExecutionModel, ExecutionPrices, rebalance
from evotrader.env.market_data import DEFAULT_FIT_BARS, MarketData
from evotrader.env.market_env import MarketEnv
from evotrader.env.portfolio_env import PortfolioEnv
from evotrader.env.portfolio_spec import PortfolioSpec
from evotrader.env.portfolio_vector_env import VectorPortfolioEnv
from evotrader.env.spec import DEFAULT_POSITIONS, EnvSpec
from evotrader.env.vector_env import VectorMarketEnv

ENV_ID = "evotrader/Market-v0"
PORTFOLIO_ENV_ID = "evotrader/Portfolio-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="evotrader.env.market_env:MarketEnv")
if PORTFOLIO_ENV_ID not in gym.registry:
    gym.register(id=PORTFOLIO_ENV_ID, entry_point="evotrader.env.portfolio_env:PortfolioEnv")

__all__ = [
    "DEFAULT_FIT_BARS",
    "DEFAULT_POSITIONS",
    "ENV_ID",
    "PORTFOLIO_ENV_ID",
    "EnvSpec",
    "ExecutionModel",
    "ExecutionPrices",
    "MarketData",
    "MarketEnv",
    "PortfolioEnv",
    "PortfolioSpec",
    "VectorMarketEnv",
    "VectorPortfolioEnv",
    "rebalance",
]
