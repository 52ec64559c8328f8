"""The strategy track: documented templates, validated specs, translators, screening, audit.

A ``StrategySpec`` names a knowledge-base template and its parameters; ``spec_targets``
turns it into target positions shared by every translator; ``run_engine`` (our engine) and
``run_backtesting`` (backtesting.py) run it; ``screen`` walks it forward and judges it;
``audit`` decides whether it may be marked live-ready.
"""

from evotrader.strategies.auditor import (
    AuditCheck,
    AuditLimits,
    AuditReport,
    audit,
    check_look_ahead,
)
from evotrader.strategies.backtest_bridge import run_engine
from evotrader.strategies.knowledge import (
    CATEGORIES,
    Concept,
    Knowledge,
    KnowledgeError,
    ParameterSpec,
    Template,
    default_knowledge,
    load_knowledge,
)
from evotrader.strategies.runs import SpecRun
from evotrader.strategies.screening import (
    Fold,
    ScreeningConfig,
    optimize,
    run_backtesting,
    screen,
    walk_forward,
)
from evotrader.strategies.signals import spec_targets
from evotrader.strategies.spec import (
    Filter,
    RiskParams,
    SpecError,
    StrategyResult,
    StrategySpec,
    UniverseSpec,
)
from evotrader.strategies.universe import load_universe_bars, resolve_books

__all__ = [
    "CATEGORIES",
    "AuditCheck",
    "AuditLimits",
    "AuditReport",
    "Concept",
    "Filter",
    "Fold",
    "Knowledge",
    "KnowledgeError",
    "ParameterSpec",
    "RiskParams",
    "ScreeningConfig",
    "SpecError",
    "SpecRun",
    "StrategyResult",
    "StrategySpec",
    "Template",
    "UniverseSpec",
    "audit",
    "check_look_ahead",
    "default_knowledge",
    "load_knowledge",
    "load_universe_bars",
    "optimize",
    "resolve_books",
    "run_backtesting",
    "run_engine",
    "screen",
    "spec_targets",
    "walk_forward",
]
