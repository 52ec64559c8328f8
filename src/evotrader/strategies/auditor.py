"""The audit a strategy must pass before it is marked live-ready: deterministic checks.

Look-ahead: every bar after a cut-off is perturbed (and, separately, dropped) and no
decision up to the cut-off may change. Then the screened result is held against limits:
in-sample vs walk-forward Sharpe gap, minimum trades, drawdown, position concentration per
symbol and profit concentration in one trade. Static universes get a survivorship note, and
a universe taken from a shipped list fails when the list's as-of date is after the backtest
starts, unless the user accepted that list explicitly.
The limits are a small dataclass here, in fractions; ``AuditLimits.from_preferences`` reads
them off the human's risk preferences (percentages).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evotrader.core.checks import require_at_least, require_positive
from evotrader.data.universe_lists import named_list
from evotrader.risk.preferences import Preferences
from evotrader.strategies.signals import spec_targets
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.universe import align, resolve_books

PERTURB_VOL = 0.02  # daily log-volatility of the random walk that rescales future prices


@dataclass(frozen=True)
class AuditLimits:
    """Thresholds of the audit; fractions of equity, not percentages."""

    max_sharpe_gap: float = 1.0
    min_trades: int = 20
    max_drawdown: float = 0.30
    max_position: float = 1.0
    max_trade_share: float = 0.5
    look_ahead_cuts: int = 3
    seed: int = 0
    accept_survivorship: tuple[str, ...] = ()  # named lists the user accepts explicitly

    def __post_init__(self) -> None:
        limits = ("max_sharpe_gap", "max_drawdown", "max_position", "max_trade_share")
        require_positive("audit ", self, *limits)
        require_at_least("audit ", self, 0, "min_trades")
        require_at_least("audit ", self, 1, "look_ahead_cuts")

    @classmethod
    def from_preferences(
        cls,
        preferences: Preferences,
        min_trades: int,
        seed: int,
        accept_survivorship: tuple[str, ...] = (),
    ) -> AuditLimits:
        """The human's limits (percentages) as audit thresholds, with the screen's minimum
        trades; ``seed`` picks the look-ahead cut-offs; ``accept_survivorship`` names the
        shipped lists whose later as-of date the user accepts."""
        return cls(
            min_trades=min_trades,
            max_drawdown=preferences.max_drawdown_pct / 100.0,
            max_position=preferences.max_position_pct / 100.0,
            seed=seed,
            accept_survivorship=tuple(accept_survivorship),
        )


@dataclass(frozen=True)
class AuditCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class AuditReport:
    """Every check with its verdict, plus notes that inform without failing."""

    spec_id: str
    checks: tuple[AuditCheck, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def summary(self) -> str:
        lines = [f"audit of {self.spec_id}: {'live-ready' if self.passed else 'NOT live-ready'}"]
        lines += [f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "spec_id": self.spec_id,
            "passed": self.passed,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
            "notes": list(self.notes),
        }


def check_look_ahead(
    decide: Callable[[list[pd.DataFrame]], np.ndarray],
    frames: Sequence[pd.DataFrame],
    cuts: int = 3,
    seed: int = 0,
) -> AuditCheck:
    """Do decisions up to bar t survive changing, or removing, every bar after t?

    ``decide`` maps bar frames to decisions (one row per bar). For ``cuts`` seeded cut-offs
    t, all later rows of every frame are rescaled by a random walk (prices) and random
    factors (volume), and separately truncated; decisions at bars <= t must be identical.
    """
    frames = list(frames)
    n = len(frames[0])
    rng = np.random.default_rng(seed)
    reference = np.asarray(decide(frames), dtype=np.float64)
    low = max(n // 3, 1)
    for cut in sorted(
        rng.choice(np.arange(low, n - 1), size=min(cuts, n - 1 - low), replace=False)
    ):
        when = frames[0].index[cut]
        variants = {
            "perturbed": [_perturbed(frame, int(cut), rng) for frame in frames],
            "truncated": [frame.iloc[: cut + 1] for frame in frames],
        }
        for how, changed in variants.items():
            decisions = np.asarray(decide(changed), dtype=np.float64)[: cut + 1]
            same = np.isclose(decisions, reference[: cut + 1], rtol=0, atol=0, equal_nan=True)
            differs = np.flatnonzero(~same.reshape(cut + 1, -1).all(axis=1))
            if differs.size:
                bar = int(differs[0])
                return AuditCheck(
                    "look-ahead",
                    False,
                    f"decision at bar {bar} ({frames[0].index[bar]}) changed when the bars after "
                    f"bar {cut} ({when}) were {how}: it reads the future",
                )
    return AuditCheck(
        "look-ahead",
        True,
        f"decisions unchanged when later bars change or vanish ({cuts} cut-offs)",
    )


def audit(
    spec: StrategySpec,
    result: StrategyResult,
    data: Mapping[str, pd.DataFrame],
    limits: AuditLimits | None = None,
) -> AuditReport:
    """Audit ``spec`` with the parameters ``result`` settled on, on ``data`` (by symbol).

    ``result`` is a screening result: its metrics are the walk-forward folds' (each traded
    after fitting on earlier bars) and its diagnostics carry their mean in-sample Sharpe.
    """
    limits = limits or AuditLimits()
    tuned = spec.with_parameters(result.parameters)
    frames = align(data, spec.universe.symbols)
    books = resolve_books(tuned, frames)
    checks = [
        *(
            check_look_ahead(
                lambda fs: spec_targets(tuned, fs),
                [frames[s] for s in book],
                limits.look_ahead_cuts,
                limits.seed,
            )
            for book in books
        ),
        _sharpe_gap(result, limits),
        _trade_count(result, limits),
        _drawdown(result, limits),
        _position_concentration(tuned, frames, books, limits),
        _trade_concentration(result, limits),
    ]
    if not books:
        checks.insert(0, AuditCheck("universe", False, "the universe resolves to no instrument"))
    if spec.universe.listed:
        start = frames[spec.universe.symbols[0]].index[0]
        checks.append(_listed_survivorship(spec.universe.listed, start, limits))
    return AuditReport(spec_id=spec.spec_id, checks=tuple(checks), notes=_survivorship(spec))


def _perturbed(frame: pd.DataFrame, cut: int, rng: np.random.Generator) -> pd.DataFrame:
    later = len(frame) - cut - 1
    scale = np.exp(np.cumsum(rng.normal(0.0, PERTURB_VOL, later)))
    changed = frame.copy()
    prices = ["open", "high", "low", "close"]
    changed.iloc[cut + 1 :, changed.columns.get_indexer(prices)] *= scale[:, None]
    volume = changed.columns.get_loc("volume")
    changed.iloc[cut + 1 :, volume] *= np.exp(rng.normal(0.0, 0.5, later))
    return changed


def _sharpe_gap(result: StrategyResult, limits: AuditLimits) -> AuditCheck:
    in_sample = result.diagnostics.get("in_sample_sharpe")
    if in_sample is None:
        return AuditCheck("sharpe gap", False, "the result carries no in-sample Sharpe to compare")
    gap = in_sample - result.metrics["sharpe"]
    detail = f"in-sample {in_sample:.2f} vs walk-forward {result.metrics['sharpe']:.2f}"
    return AuditCheck(
        "sharpe gap",
        gap <= limits.max_sharpe_gap,
        f"{detail} (gap {gap:.2f}, limit {limits.max_sharpe_gap:g})",
    )


def _trade_count(result: StrategyResult, limits: AuditLimits) -> AuditCheck:
    trades = result.metrics["n_trades"]
    return AuditCheck(
        "minimum trades",
        trades >= limits.min_trades,
        f"{trades:.0f} trades (minimum {limits.min_trades})",
    )


def _drawdown(result: StrategyResult, limits: AuditLimits) -> AuditCheck:
    drawdown = abs(result.metrics["max_drawdown"])
    return AuditCheck(
        "drawdown",
        drawdown <= limits.max_drawdown,
        f"max drawdown {drawdown:.1%} (limit {limits.max_drawdown:.0%})",
    )


def _position_concentration(
    spec: StrategySpec,
    frames: Mapping[str, pd.DataFrame],
    books: list[tuple[str, ...]],
    limits: AuditLimits,
) -> AuditCheck:
    """Largest exposure to one symbol as a fraction of total equity (legs share capital)."""
    legs = sum(len(book) for book in books)
    exposure: dict[str, np.ndarray] = {}
    for book in books:
        targets = np.abs(spec_targets(spec, [frames[s] for s in book])) / max(legs, 1)
        for column, symbol in enumerate(book):
            exposure[symbol] = exposure.get(symbol, 0.0) + targets[:, column]
    largest = max(((float(v.max()), s) for s, v in exposure.items()), default=(0.0, "-"))
    return AuditCheck(
        "position concentration",
        largest[0] <= limits.max_position,
        f"largest position {largest[0]:.0%} of equity in {largest[1]} "
        f"(limit {limits.max_position:.0%})",
    )


def _trade_concentration(result: StrategyResult, limits: AuditLimits) -> AuditCheck:
    pnl = result.trades["pnl"].to_numpy(np.float64)
    net = float(pnl.sum())
    if net <= 0 or pnl.size == 0:
        return AuditCheck(
            "profit concentration", True, f"no net profit to concentrate ({net:,.0f})"
        )
    share = float(pnl.max()) / net
    return AuditCheck(
        "profit concentration",
        share <= limits.max_trade_share,
        f"best trade made {share:.0%} of the net profit (limit {limits.max_trade_share:.0%})",
    )


def _listed_survivorship(name: str, start: pd.Timestamp, limits: AuditLimits) -> AuditCheck:
    """A shipped list fixed after the backtest starts fails unless the user accepted it."""
    listed = named_list(name)
    when = f"list {name} is as of {listed.as_of.date()}, the backtest starts {start.date()}"
    if not listed.chosen_after(start):
        return AuditCheck("survivorship", True, f"{when}: chosen before the data it trades")
    if name in limits.accept_survivorship:
        return AuditCheck(
            "survivorship", True, f"{when}; accepted explicitly: {listed.survivorship}"
        )
    return AuditCheck(
        "survivorship",
        False,
        f"{when}: its members were picked knowing who survived ({listed.survivorship}) "
        f"Accept it explicitly with strategy_search.accept_survivorship=[{name}]",
    )


def _survivorship(spec: StrategySpec) -> tuple[str, ...]:
    symbols = ", ".join(spec.universe.symbols)
    if spec.universe.kind == "static":
        return (
            f"static universe [{symbols}] was chosen with today's knowledge: symbols that were "
            "delisted or failed are missing, so survivorship bias likely flatters the result",
        )
    return (
        f"pairs were chosen on training windows only, but from a fixed candidate list "
        f"[{symbols}]: survivorship bias in that list still applies",
    )
