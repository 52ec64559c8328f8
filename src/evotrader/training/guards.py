"""What a checkpoint may trade, and the one path from a checkpoint to a trading policy.

A checkpoint trades its own symbol. A ``--symbol`` naming another one is refused, never
quietly traded on the checkpoint's bars under the other name; running the policy on another
symbol's bars takes an explicit ``--trade-as SYMBOL``, which both scripts announce. The bars
come from the checkpoint's data reference, which may only name a registered source and
files inside the data roots (``evotrader.data.reference``). Every refusal is a
``CheckpointError`` naming the checkpoint's path, so the scripts fail with one line.

``TradableCheckpoint`` rebuilds what a trained policy trades with (env spec, fitted feature
pipeline, bars, the policy itself, MAML adapted first) for run_backtest.py, the live bot,
the autonomous stage's champion and the benches alike, so they cannot drift apart.
``PortfolioCheckpoint`` does the same for a portfolio checkpoint (``PORTFOLIO_KINDS``), whose
policy is a ``History -> target weights`` callable for the portfolio backtest engine;
``TradableCheckpoint`` refuses one, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evotrader.backtest.engine import BacktestResult
from evotrader.backtest.portfolio import History, PortfolioSettings
from evotrader.config import PROJECT_ROOT
from evotrader.core.checkpoint import (
    PORTFOLIO_KINDS,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
)
from evotrader.core.policy import Policy
from evotrader.data import DataError, DataRef, FeaturePipeline, data_roots
from evotrader.data.universe_ref import UniverseRef
from evotrader.env import EnvSpec, PortfolioSpec
from evotrader.models.portfolio_moe import PortfolioMoE
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.training.adaptation import portfolio_trading_net, trading_policy
from evotrader.training.evaluation import evaluate_on_split


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


@dataclass(frozen=True, eq=False)
class TradableCheckpoint:
    """A checkpoint checked once, with everything needed to trade its policy again.

    ``where`` names it in every error (``checkpoint PATH``); ``spec`` and ``pipeline`` are the
    env and fitted features it was trained with, ``data`` its checked data reference (``None``
    when it names none: such a checkpoint trades live bars, or bars the user names, only).
    """

    checkpoint: Checkpoint
    where: str
    spec: EnvSpec
    pipeline: FeaturePipeline
    data: DataRef | None

    @classmethod
    def load(cls, path: Path, roots: Sequence[Path] | None = None) -> TradableCheckpoint:
        """Read ``path`` (weights only) and check it; ``roots`` default to the project's
        data roots."""
        return cls.of(load_checkpoint(path), f"checkpoint {path}", roots)

    @classmethod
    def of(
        cls, checkpoint: Checkpoint, where: str, roots: Sequence[Path] | None = None
    ) -> TradableCheckpoint:
        """Check ``checkpoint``: its env spec, feature state and data reference (which may
        only name a registered source and files inside ``roots``, by default the project's
        data roots); every refusal is a ``CheckpointError`` naming ``where``."""
        if checkpoint.kind in PORTFOLIO_KINDS:
            raise CheckpointError(
                f"{where} is a {checkpoint.kind} checkpoint: it trades a universe, not one "
                "symbol; load it with PortfolioCheckpoint.load (or load_portfolio_policy)"
            )
        try:
            spec = EnvSpec.from_dict(checkpoint.env)
            pipeline = FeaturePipeline.from_state(checkpoint.feature_pipeline)
            raw = checkpoint.extra.get("data")
            reference = (
                None if raw is None else DataRef.checked(raw, roots or data_roots(PROJECT_ROOT))
            )
        except DataError as error:
            raise CheckpointError(f"{where}: {error}") from error
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"{where}: its env or feature state is damaged: {error}"
            ) from error
        return cls(checkpoint, where, spec, pipeline, reference)

    def bars(self, symbol: str | None = None) -> pd.DataFrame:
        """The bars it was trained and split on, or ``symbol``'s from the same source."""
        if self.data is None:
            raise CheckpointError(f"{self.where}: names no data source (extra['data'] is missing)")
        try:
            return self.data.for_symbol(symbol or self.checkpoint.symbol).load()
        except DataError as error:
            raise CheckpointError(f"{self.where}: {error}") from error

    def test_split(self, bars: pd.DataFrame) -> pd.DataFrame:
        """``bars`` inside the checkpoint's test split (its one out-of-sample period)."""
        split = self.checkpoint.data_range
        test = bars.loc[split["test_start"] : split["test_end"]]
        if test.empty:
            raise DataError(
                f"no bars in the test split {split['test_start']} -> {split['test_end']}; "
                f"the bars run {bars.index[0]} -> {bars.index[-1]}"
            )
        return test

    def policy(self, bars: pd.DataFrame, start: pd.Timestamp) -> Policy:
        """The policy ready to trade from ``start``; a MAML policy adapts on the bars before."""
        return trading_policy(self.checkpoint, bars, start)

    def backtest(
        self, bars: pd.DataFrame | None = None, period: pd.DataFrame | None = None
    ) -> BacktestResult:
        """The policy over ``period`` (default: the test split of ``bars``, its own bars by
        default), earlier bars serving as history only, with its own features, env spec and
        costs. A period after the test split is how the model registry compares two
        checkpoints on bars neither was selected on."""
        bars = self.bars() if bars is None else bars
        period = self.test_split(bars) if period is None else period
        policy = self.policy(bars, period.index[0])
        return evaluate_on_split(policy, bars, period, self.pipeline, self.spec)


class PortfolioPolicy:
    """A portfolio checkpoint's network as the portfolio engine's ``History -> weights``.

    At each decision every symbol's features are computed from its history (the training
    pipeline, fitted on the training split) and the last ``window`` rows fed to the network,
    so the observation is PortfolioEnv's (without agent state). The symbols are the
    history's, in its order: the network is permutation-equivariant, so the universe may
    differ from the one trained on. A target equal to the last one returns ``None`` (hold,
    letting weights drift, as the env does); a history shorter than the window holds too.
    """

    def __init__(
        self,
        net: PortfolioTransformer,
        pipeline: FeaturePipeline,
        spec: EnvSpec,
        portfolio: PortfolioSpec,
    ) -> None:
        if spec.agent_state:
            raise ValueError("a weights policy reads history only; env.agent_state must be false")
        self.net, self.pipeline, self.spec, self.portfolio = net.eval(), pipeline, spec, portfolio
        self.positions = np.asarray(spec.positions, dtype=np.float64)
        self._last: np.ndarray | None = None

    def __call__(self, history: History) -> np.ndarray | None:
        window = self.spec.window
        if len(history.closes) < window:
            return None
        frames = _symbol_frames(history)
        obs = np.stack([self.pipeline.transform(frame)[-window:] for frame in frames])
        action = self.net.act(obs[None])[0]
        target = self.portfolio.weights(action, len(frames), self.positions)
        if self._last is not None and np.array_equal(target, self._last):
            return None
        self._last = target
        return target


def _symbol_frames(history: History) -> list[pd.DataFrame]:
    """Each symbol's OHLCV up to the decision; close-only data as its universe holds it
    (open = high = low = close, no volume)."""
    symbols = list(history.closes.columns)
    if history.bars is not None:
        return [history.bars[symbol] for symbol in symbols]
    closes = history.closes
    return [
        pd.DataFrame(
            {"open": c, "high": c, "low": c, "close": c, "volume": 0.0}, index=closes.index
        )
        for c in (closes[symbol] for symbol in symbols)
    ]


@dataclass(frozen=True, eq=False)
class PortfolioCheckpoint:
    """A portfolio checkpoint checked once: its env and action form, fitted features,
    universe reference (checked like a data reference) and network, and the settings the
    portfolio engine trades it with (rebalance every bar, the env's cash and costs)."""

    checkpoint: Checkpoint
    where: str
    spec: EnvSpec
    pipeline: FeaturePipeline
    portfolio: PortfolioSpec
    universe: UniverseRef
    net: PortfolioTransformer

    @classmethod
    def load(cls, path: Path, roots: Sequence[Path] | None = None) -> PortfolioCheckpoint:
        """Read ``path`` (weights only) and check it; every refusal is a ``CheckpointError``
        naming the path."""
        checkpoint, where = load_checkpoint(path), f"checkpoint {path}"
        if checkpoint.kind not in PORTFOLIO_KINDS:
            raise CheckpointError(
                f"{where} is a {checkpoint.kind!r} checkpoint, not a portfolio one "
                f"({sorted(PORTFOLIO_KINDS)}); load it with TradableCheckpoint.load"
            )
        try:
            spec = EnvSpec.from_dict(checkpoint.env)
            pipeline = FeaturePipeline.from_state(checkpoint.feature_pipeline)
            portfolio = PortfolioSpec.from_dict(checkpoint.extra["portfolio"])
            universe = UniverseRef.checked(
                checkpoint.extra["universe"], roots or data_roots(PROJECT_ROOT)
            )
            net = portfolio_network(checkpoint)
            if spec.agent_state:
                raise ValueError("env.agent_state is true, but a weights policy reads history only")
        except DataError as error:
            raise CheckpointError(f"{where}: {error}") from error
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{where}: its portfolio settings are damaged: {error}"
            ) from error
        return cls(checkpoint, where, spec, pipeline, portfolio, universe, net.eval())

    def policy(
        self,
        start: pd.Timestamp | None = None,
        history: Mapping[str, pd.DataFrame] | None = None,
    ) -> PortfolioPolicy:
        """A fresh weights policy (it remembers its last target, so one per backtest) ready
        to trade from ``start`` (default: the test split's first bar); a ``portfolio_maml``
        network adapts first on the bars before it, as a MAML checkpoint does: the universe's,
        or every symbol's ``history`` (a live bot's, from its broker)."""
        net = portfolio_trading_net(
            self.checkpoint,
            self.net,
            self.universe if history is None else history,
            self.test_start if start is None else start,
            self.pipeline,
            self.spec,
            self.portfolio,
        )
        return PortfolioPolicy(net, self.pipeline, self.spec, self.portfolio)

    def settings(self) -> PortfolioSettings:
        """How ``run_portfolio`` trades this policy: as the env it was trained in did."""
        return portfolio_settings(self.spec, self.portfolio)

    @property
    def test_start(self) -> pd.Timestamp:
        """The first bar of its test split (bars before it are history only)."""
        return pd.Timestamp(self.checkpoint.data_range["test_start"])


def portfolio_network(checkpoint: Checkpoint) -> PortfolioTransformer:
    """A portfolio checkpoint's network with its weights: a ``PortfolioMoE`` for
    ``portfolio_moe``, a ``PortfolioTransformer`` for every other portfolio kind. Raises
    (``KeyError``, ``ValueError``, ``RuntimeError``) on a damaged architecture or weights."""
    network = PortfolioMoE if checkpoint.kind == "portfolio_moe" else PortfolioTransformer
    net = network.from_architecture(checkpoint.architecture)
    net.load_state_dict(checkpoint.state_dict)
    return net


def portfolio_settings(spec: EnvSpec, portfolio: PortfolioSpec) -> PortfolioSettings:
    """The portfolio engine's settings for a policy trained in PortfolioEnv under ``spec``:
    a decision every bar, the env's cash, gross limit and execution costs."""
    return PortfolioSettings(
        rebalance="bar",
        long_only=min(spec.positions) >= 0,
        max_gross=portfolio.max_gross,
        initial_cash=spec.initial_cash,
        execution=spec.execution,
    )


def load_portfolio_policy(path: Path, roots: Sequence[Path] | None = None) -> PortfolioPolicy:
    """The weights policy of the portfolio checkpoint at ``path``, ready for ``run_portfolio``."""
    return PortfolioCheckpoint.load(path, roots).policy()
