"""Portfolio risk: target weights checked against the human's limits before they trade.

``PortfolioRisk.check`` is a plain function of (target weights, trailing returns, decision
time) with no backtest, broker or clock in it, so the portfolio backtest
(``run_portfolio(risk=...)``) and the basket bot the live runner does not have yet call the
very same code, and a backtest shows what the bot would really do. (The bot will check each
target vector here, then its orders still pass ``RiskEngine.check_order`` one by one.)
Weights are fractions of equity, as in the engine's position and leverage limits.

Policy, in order; every step that changes the target is recorded as an ``Adjustment`` with
its figures:

1. ``history``: with a cluster or VaR/CVaR limit on and fewer than ``risk_lookback`` returns
   up to the decision bar, the risk cannot be measured, so the target is refused: all cash.
2. ``instrument``: a symbol outside ``allowed_instruments`` goes to 0 (the live engine would
   refuse its orders anyway).
3. ``positions``: beyond ``max_positions``, the smallest targets (by |weight|; ties by symbol
   order) go to 0: the policy's strongest views survive.
4. ``asset_weight``: each |weight| is clipped to ``max_position_pct`` / 100, sign kept.
5. ``cluster``: a correlation cluster whose gross weight is over ``max_cluster_weight`` has its
   members scaled down together to the cap (only the concentrated bet shrinks).
6. ``gross`` (``max_leverage``), ``net`` (``max_net_exposure``), ``var`` and ``cvar``
   (``max_var_pct`` / ``max_cvar_pct``): the whole book is scaled by the smallest factor that
   meets all four. Each is positively homogeneous (historical VaR and CVaR of ``s * w`` are
   ``s`` times those of ``w``), so one scale meets them exactly, and scaling never undoes
   steps 2 to 5.

Nothing else is refused: every limit above is repaired by shrinking, so approved weights
always meet every enabled limit. Only returns dated at or before the decision time are read.

Clusters are single-linkage hierarchical clusters of the trailing correlation matrix (scipy),
cut at distance ``1 - cluster_correlation``: single linkage is the one linkage that puts every
pair correlated at or above the threshold in the same cluster, so a concentrated bet cannot
escape the cap by being split across two near-identical assets (its chaining errs strict),
and its dendrogram is monotone, so a lower threshold only merges clusters: stricter, as the
tightening rule assumes. Undefined correlations (a constant series) count as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from evotrader.risk.preferences import Preferences

TOLERANCE = 1e-9  # relative slack: a weight exactly at its cap is not over it
# Every limit an Adjustment can name, in the order the check applies them.
LIMITS = (
    "history",
    "instrument",
    "positions",
    "asset_weight",
    "cluster",
    "gross",
    "net",
    "var",
    "cvar",
)


class PortfolioRiskError(ValueError):
    """Target weights or returns handed to the portfolio check are malformed."""


@dataclass(frozen=True)
class Adjustment:
    """One limit that changed the target: which, on what, the figure before and after, and
    the cap (``value`` is the measured figure: a weight, a count, or a percent for VaR)."""

    limit: str
    symbols: tuple[str, ...]
    value: float
    cap: float
    reason: str


@dataclass(frozen=True)
class PortfolioCheck:
    """The approved weights (by symbol), every adjustment, and the approved book's measured
    VaR/CVaR in percent of equity (None when not measured)."""

    approved: pd.Series
    adjustments: tuple[Adjustment, ...]
    var_pct: float | None = None
    cvar_pct: float | None = None

    @property
    def adjusted(self) -> bool:
        return bool(self.adjustments)


class PortfolioRisk:
    """Checks target portfolios against frozen ``Preferences`` (backtest and live alike)."""

    def __init__(self, preferences: Preferences) -> None:
        self.preferences = preferences

    @property
    def needs_history(self) -> bool:
        prefs = self.preferences
        return any(
            limit is not None
            for limit in (prefs.max_cluster_weight, prefs.max_var_pct, prefs.max_cvar_pct)
        )

    def check(self, targets: pd.Series, returns: pd.DataFrame, at: pd.Timestamp) -> PortfolioCheck:
        """Approve ``targets`` (weights by symbol) decided at ``at``; ``returns`` are per-bar
        simple returns by symbol, of which only rows dated at or before ``at`` are read."""
        prefs, weights = self.preferences, _checked_targets(targets)
        notes: list[Adjustment] = []
        symbols = list(weights.index)
        w = weights.to_numpy(np.float64).copy()
        window = self._window(returns, symbols, at) if self.needs_history else None
        if window is not None and len(window) < prefs.risk_lookback and np.any(w):
            notes.append(
                Adjustment(
                    "history",
                    tuple(symbols),
                    float(len(window)),
                    float(prefs.risk_lookback),
                    f"only {len(window)} returns up to {at} (need {prefs.risk_lookback}) to "
                    "measure correlation and VaR: target refused, all cash",
                )
            )
            return PortfolioCheck(pd.Series(0.0, index=weights.index, name="weight"), tuple(notes))
        _drop_disallowed(w, symbols, prefs, notes)
        _keep_largest(w, symbols, prefs.max_positions, notes)
        _clip_assets(w, symbols, prefs.max_position_pct / 100.0, notes)
        history = None if window is None else window.to_numpy(np.float64)
        if prefs.max_cluster_weight is not None and history is not None:
            _cap_clusters(w, symbols, history, prefs, notes)
        _scale_book(w, symbols, history, prefs, notes)
        approved = pd.Series(w, index=weights.index, name="weight")
        var_pct = cvar_pct = None
        if history is not None:
            var, cvar = tail_losses(history @ w, prefs.var_confidence)
            var_pct, cvar_pct = 100.0 * var, 100.0 * cvar
        return PortfolioCheck(approved, tuple(notes), var_pct, cvar_pct)

    def _window(self, returns: pd.DataFrame, symbols: list[str], at: pd.Timestamp) -> pd.DataFrame:
        """The last ``risk_lookback`` rows of returns dated at or before ``at``, checked."""
        missing = [s for s in symbols if s not in returns.columns]
        if missing:
            raise PortfolioRiskError(f"portfolio risk at {at}: no returns for {missing}")
        index = pd.DatetimeIndex(returns.index)
        if not index.is_monotonic_increasing or not index.is_unique:
            raise PortfolioRiskError("portfolio risk: returns index must increase strictly")
        end = int(index.searchsorted(pd.Timestamp(at), side="right"))
        window = returns[symbols].iloc[max(0, end - self.preferences.risk_lookback) : end]
        values = window.to_numpy(np.float64)
        bad = np.argwhere(~np.isfinite(values))
        if len(bad):
            row, col = bad[0]
            raise PortfolioRiskError(
                f"portfolio risk: return of {symbols[col]} at {window.index[row]} is "
                f"{values[row, col]}"
            )
        return window


def tail_losses(pnl: np.ndarray, confidence: float) -> tuple[float, float]:
    """Historical VaR and CVaR of per-bar P&L (fractions of equity), as positive losses.

    With n returns the tail is the worst k = ceil((1 - confidence) * n) losses: VaR is the
    smallest of them, CVaR their mean. Both scale linearly with the book, which is what lets
    the check repair a breach by scaling. A tail of gains gives a VaR of 0 or below.
    """
    losses = np.sort(-np.asarray(pnl, dtype=np.float64))[::-1]
    if len(losses) == 0:
        return 0.0, 0.0
    k = max(1, math.ceil((1.0 - confidence) * len(losses) - TOLERANCE))
    return float(losses[k - 1]), float(losses[:k].mean())


def correlation_clusters(history: np.ndarray, threshold: float) -> np.ndarray:
    """A cluster label per column of ``history`` (bars, assets): single-linkage clusters of
    the correlation matrix cut at distance ``1 - threshold`` (see the module docstring)."""
    n = history.shape[1]
    if n < 2:
        return np.ones(n, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(history, rowvar=False)
    rho = np.nan_to_num(rho, nan=0.0)
    distance = np.clip(1.0 - rho, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="single")
    labels: np.ndarray = fcluster(tree, t=1.0 - threshold + TOLERANCE, criterion="distance")
    return labels


def _checked_targets(targets: pd.Series) -> pd.Series:
    if not isinstance(targets, pd.Series):
        raise PortfolioRiskError(
            f"portfolio risk: targets must be a Series by symbol, got {type(targets)}"
        )
    weights = targets.astype(np.float64)
    if not weights.index.is_unique:
        raise PortfolioRiskError(f"portfolio risk: repeated symbols in {list(weights.index)}")
    bad = weights[~np.isfinite(weights.to_numpy())]
    if len(bad):
        raise PortfolioRiskError(f"portfolio risk: target for {bad.index[0]} is {bad.iloc[0]}")
    return weights


def _drop_disallowed(
    w: np.ndarray, symbols: list[str], prefs: Preferences, notes: list[Adjustment]
) -> None:
    for i, symbol in enumerate(symbols):
        if w[i] and symbol not in prefs.allowed_instruments:
            notes.append(
                Adjustment("instrument", (symbol,), float(w[i]), 0.0, f"{symbol} is not allowed")
            )
            w[i] = 0.0


def _keep_largest(
    w: np.ndarray, symbols: list[str], limit: int | None, notes: list[Adjustment]
) -> None:
    held = np.flatnonzero(w)
    if limit is None or len(held) <= limit:
        return
    order = held[np.argsort(-np.abs(w[held]), kind="stable")]  # ties keep symbol order
    dropped = np.sort(order[limit:])
    names = tuple(symbols[i] for i in dropped)
    notes.append(
        Adjustment(
            "positions",
            names,
            float(len(held)),
            float(limit),
            f"{len(held)} positions over the limit {limit}: dropped the smallest {list(names)}",
        )
    )
    w[dropped] = 0.0


def _clip_assets(w: np.ndarray, symbols: list[str], cap: float, notes: list[Adjustment]) -> None:
    for i in np.flatnonzero(np.abs(w) > cap * (1 + TOLERANCE)):
        notes.append(
            Adjustment(
                "asset_weight",
                (symbols[i],),
                float(w[i]),
                cap,
                f"{symbols[i]} weight {w[i]:+.4f} clipped to the per-asset cap {cap:g}",
            )
        )
        w[i] = math.copysign(cap, w[i])


def _cap_clusters(
    w: np.ndarray,
    symbols: list[str],
    history: np.ndarray,
    prefs: Preferences,
    notes: list[Adjustment],
) -> None:
    assert prefs.max_cluster_weight is not None  # the caller checks the limit is on
    cap = prefs.max_cluster_weight
    labels = correlation_clusters(history, prefs.cluster_correlation)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        gross = float(np.abs(w[members]).sum())
        if gross <= cap * (1 + TOLERANCE):
            continue
        names = tuple(symbols[i] for i in members if w[i])
        notes.append(
            Adjustment(
                "cluster",
                names,
                gross,
                cap,
                f"cluster {list(names)} (correlation >= {prefs.cluster_correlation:g}) holds "
                f"{gross:.4f} gross, over {cap:g}: scaled by {cap / gross:.4f}",
            )
        )
        w[members] *= cap / gross


def _scale_book(
    w: np.ndarray,
    symbols: list[str],
    history: np.ndarray | None,
    prefs: Preferences,
    notes: list[Adjustment],
) -> None:
    """Scale the whole book by the smallest factor meeting gross, net, VaR and CVaR."""
    measured = [
        ("gross", float(np.abs(w).sum()), prefs.max_leverage, "gross exposure"),
        ("net", abs(float(w.sum())), prefs.max_net_exposure, "net exposure"),
    ]
    if history is not None:
        var, cvar = tail_losses(history @ w, prefs.var_confidence)
        level = f"at {prefs.var_confidence:g} over {len(history)} bars, % of equity"
        measured.append(("var", 100.0 * var, prefs.max_var_pct, f"historical VaR {level}"))
        measured.append(("cvar", 100.0 * cvar, prefs.max_cvar_pct, f"historical CVaR {level}"))
    scale = 1.0
    held = tuple(s for s, x in zip(symbols, w, strict=True) if x)
    for limit, value, cap, what in measured:
        if cap is None or value <= cap * (1 + TOLERANCE):
            continue
        factor = cap / value
        scale = min(scale, factor)
        notes.append(
            Adjustment(
                limit,
                held,
                value,
                cap,
                f"{what} {value:.4f} over {cap:g}: needs scale {factor:.4f}",
            )
        )
    if scale < 1.0:
        w *= scale
