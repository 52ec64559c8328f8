"""Hard risk limits the bot cannot loosen: preferences, the risk engine, circuit breakers."""

from evotrader.risk.circuit_breakers import BreakerKind, Trip
from evotrader.risk.kill_switch import KillSwitch
from evotrader.risk.portfolio import (
    Adjustment,
    PortfolioCheck,
    PortfolioRisk,
    PortfolioRiskError,
)
from evotrader.risk.preferences import (
    LooseningError,
    Preferences,
    PreferencesError,
    TradingHours,
    bar_end_times,
    bar_open_times,
    load_preferences,
)
from evotrader.risk.risk_engine import Book, RiskEngine, RiskState, RiskVerdict

__all__ = [
    "Adjustment",
    "Book",
    "BreakerKind",
    "KillSwitch",
    "LooseningError",
    "PortfolioCheck",
    "PortfolioRisk",
    "PortfolioRiskError",
    "Preferences",
    "PreferencesError",
    "RiskEngine",
    "RiskState",
    "RiskVerdict",
    "TradingHours",
    "Trip",
    "bar_end_times",
    "bar_open_times",
    "load_preferences",
]
