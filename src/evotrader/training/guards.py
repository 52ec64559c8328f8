"""What a checkpoint may trade, checked alike by run_backtest.py and run_live_bot.py.

A checkpoint trades its own symbol. A ``--symbol`` naming another one is refused, never
quietly traded on the checkpoint's bars under the other name; running the policy on another
symbol's bars takes an explicit ``--trade-as SYMBOL``, which both scripts announce. The bars
come from the checkpoint's data reference, which may only name a registered source and
files inside the data roots (``evotrader.data.reference``). Every refusal is a
``CheckpointError`` naming the checkpoint's path, so the scripts fail with one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from evotrader.core.checkpoint import Checkpoint, CheckpointError
from evotrader.data import DataError, DataRef, FeaturePipeline
from evotrader.env import EnvSpec

TRADE_AS_HELP = (
    "trade the checkpoint's policy on this symbol's bars, though it was trained on another "
    "(without it, a --symbol other than the checkpoint's is refused)"
)


def traded_symbol(
    checkpoint: Checkpoint, where: str, symbol: str | None, trade_as: str | None
) -> str:
    """The symbol to trade: the checkpoint's own, or ``trade_as`` when the user maps it.

    ``symbol`` (``--symbol``) names the checkpoint to trade, so it must be the checkpoint's.
    """
    if symbol is not None and symbol != checkpoint.symbol:
        raise CheckpointError(
            f"{where} was trained on {checkpoint.symbol}, not {symbol}; to trade its policy on "
            f"{symbol}'s bars, pass --trade-as {symbol} (and --symbol {checkpoint.symbol} or "
            "no --symbol)"
        )
    return trade_as or checkpoint.symbol


def mapping_note(checkpoint: Checkpoint, traded: str) -> str | None:
    """The line both scripts print when the traded symbol is not the checkpoint's."""
    if traded == checkpoint.symbol:
        return None
    return (
        f"note: trading {traded} with a policy trained on {checkpoint.symbol} (--trade-as {traded})"
    )


def data_reference(checkpoint: Checkpoint, where: str, roots: Sequence[Path]) -> DataRef:
    """The checkpoint's checked data reference (``extra["data"]``)."""
    if "data" not in checkpoint.extra:
        raise CheckpointError(f"{where}: names no data source (extra['data'] is missing)")
    try:
        return DataRef.checked(checkpoint.extra["data"], roots)
    except DataError as error:
        raise CheckpointError(f"{where}: {error}") from error


def checkpoint_bars(
    checkpoint: Checkpoint, where: str, roots: Sequence[Path], symbol: str | None = None
) -> pd.DataFrame:
    """The bars the checkpoint was trained and split on, or ``symbol``'s from its source."""
    reference = data_reference(checkpoint, where, roots)
    try:
        reference = reference.for_symbol(symbol or checkpoint.symbol)
    except DataError as error:
        raise CheckpointError(f"{where}: {error}") from error
    return reference.load()


def trading_setup(checkpoint: Checkpoint, where: str) -> tuple[EnvSpec, FeaturePipeline]:
    """The env spec and fitted feature pipeline the checkpoint's policy was trained with."""
    try:
        env = EnvSpec.from_dict(checkpoint.env)
        return env, FeaturePipeline.from_state(checkpoint.feature_pipeline)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{where}: its env or feature state is damaged: {error}") from error
