"""Backtest engine: runs any policy over bars with the environment's execution code."""
