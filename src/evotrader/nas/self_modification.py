"""Self-modification: after each evaluation an agent reads its own numbers and changes itself.

``check_performance_and_adapt`` compares an agent's validation metrics with configured
thresholds and returns the actions it takes, each with the reason, so every change is
logged. Risk actions edit the agent's genome directly (``risk_scale``); a failing design asks
the NAS controller for a new architecture, keeping the agent's hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from evotrader.nas.search_controller import SearchController
from evotrader.nas.search_space import Genome


class Evolving(Protocol):
    """What self-modification needs of an agent: a genome it may rewrite."""

    id: int
    genome: Genome


@dataclass(frozen=True)
class Adaptation:
    """One action an agent took on itself, and why."""

    agent: int
    action: str  # "scale_risk_down", "scale_risk_up" or "new_architecture"
    reason: str


@dataclass(frozen=True)
class Thresholds:
    """When to act; a zero turns that rule off (mirrors ``SelfModificationConfig``)."""

    max_drawdown: float
    risk_factor: float
    min_profit_factor: float
    min_trades: int


def check_performance_and_adapt(
    agent: Evolving,
    performance_metrics: dict[str, float],
    thresholds: Thresholds,
    controller: SearchController,
    rng: np.random.Generator,
) -> list[Adaptation]:
    """Apply every rule the metrics trip to ``agent.genome``; return what was done and why."""
    done = []
    drawdown = abs(performance_metrics["max_drawdown"])  # metrics report it as negative
    trades = int(performance_metrics["n_trades"])
    profit_factor = performance_metrics["profit_factor"]
    gene = controller.space.genes.get("risk_scale")
    if gene is not None and thresholds.max_drawdown and drawdown > thresholds.max_drawdown:
        agent.genome = _with_risk(agent.genome, thresholds.risk_factor, gene.low, gene.high)
        done.append(
            Adaptation(
                agent.id,
                "scale_risk_down",
                f"max drawdown {drawdown:.1%} > {thresholds.max_drawdown:.1%}: risk_scale "
                f"-> {agent.genome['risk_scale']:.3f}",
            )
        )
    elif gene is not None and thresholds.min_trades and trades < thresholds.min_trades:
        agent.genome = _with_risk(agent.genome, 1 / thresholds.risk_factor, gene.low, gene.high)
        done.append(
            Adaptation(
                agent.id,
                "scale_risk_up",
                f"{trades} trades < {thresholds.min_trades}: risk_scale "
                f"-> {agent.genome['risk_scale']:.3f}",
            )
        )
    failing = np.isfinite(profit_factor) and profit_factor < thresholds.min_profit_factor
    if thresholds.min_profit_factor and trades >= max(thresholds.min_trades, 1) and failing:
        agent.genome = controller.redesign(agent.genome, rng)
        done.append(
            Adaptation(
                agent.id,
                "new_architecture",
                f"profit factor {profit_factor:.2f} < {thresholds.min_profit_factor:.2f} over "
                f"{trades} trades: controller proposed a new architecture",
            )
        )
    return done


def _with_risk(genome: Genome, factor: float, low: float, high: float) -> Genome:
    return {**genome, "risk_scale": float(np.clip(genome["risk_scale"] * factor, low, high))}
