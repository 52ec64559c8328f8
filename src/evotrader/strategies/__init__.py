"""The strategy track: documented templates, validated specs, translators, screening, audit.

A ``StrategySpec`` (``spec``) names a knowledge-base template and its parameters;
``signals.spec_targets`` turns it into target positions shared by every translator;
``backtest_bridge.run_engine`` (our engine), ``screening.run_backtesting`` (backtesting.py)
and ``validation.run_nautilus`` (NautilusTrader) run it; ``screening.screen`` walks it
forward and judges it; ``auditor.audit`` decides whether it may be marked live-ready.

Import each module itself: the package re-exports nothing, so ``settings``, which the run's
schema nests, loads without backtesting.py, torch or NautilusTrader.
"""
