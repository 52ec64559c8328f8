"""The AutonomousAgent: world model, episodic memory, Weather Forecaster and Chartist, thinking
before it acts, behind the one Policy contract."""

from evotrader.agents.agent_config import (
    AGENT_EVENTS,
    CONTEXT_DIM,
    CONTEXT_FIELDS,
    AgentArchitecture,
    AgentError,
    AgentHyperparameters,
)
from evotrader.agents.agent_learning import LearnReport, trading_objective
from evotrader.agents.autonomous_agent import KIND, AutonomousAgent, Thought

__all__ = [
    "AGENT_EVENTS",
    "CONTEXT_DIM",
    "CONTEXT_FIELDS",
    "KIND",
    "AgentArchitecture",
    "AgentError",
    "AgentHyperparameters",
    "AutonomousAgent",
    "LearnReport",
    "Thought",
    "trading_objective",
]
