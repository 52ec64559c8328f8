"""evotrader: staged RL training for trading on one shared CoreTransformer."""

__version__ = "0.1.0"
