"""The champion lifecycle: a model registry that indexes every run's checkpoints and says
which one is traded.

``states`` holds the lifecycle (candidate -> paper -> champion -> retired) and its allowed
moves; ``store`` the SQLAlchemy registry (entries, every state change, every comparison);
``holdout`` the one comparison a challenger may replace a champion on; ``monitor`` the
paper monitor (a paper bot's days against its backtest: promote, keep watching, demote);
``alerts`` the alert hook (event line, command, webhook); ``commands`` what
``python -m evotrader registry ...`` does. Import each module itself: the package re-exports
nothing, so the pipeline loads the store without the backtest machinery.
"""
