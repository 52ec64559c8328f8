"""The champion lifecycle: a model registry that indexes every run's checkpoints and says
which one is traded.

``states`` holds the lifecycle (candidate -> paper -> champion -> retired) and its allowed
moves; ``store`` the SQLAlchemy registry (entries, every state change, every comparison);
``holdout`` the one comparison a challenger may replace a champion on; ``operator`` what
``python -m evotrader registry ...`` does. Import each module itself: the package re-exports
nothing, so the pipeline loads the store without the backtest machinery.
"""
