"""The paper monitor ("the sentinel"): a paper bot's realised days against the backtest's.

While an entry is in ``paper``, each trading day's realised return (the day's last equity
mark in the bot's ``summary.json``) is held against the expected return on the same days:
the same policy backtested through ``TradableCheckpoint`` over the same bars, with the same
costs (the bot's own expectation series in ``summary.json`` when the checkpoint's bars do
not cover the paper days). On those days it measures

- tracking error: the standard deviation of the daily return difference (and annualised);
- the band: the realised cumulative log return must stay within the expected one
  ``+- z * sigma * sqrt(k)`` on day ``k``, ``sigma`` the standard deviation of the daily
  returns of the backtest over the checkpoint's test split (its own return distribution);
  a day outside is a breach;
- hit rate: the share of days whose return has the expected sign (flat days count as 0);
- slippage vs assumed: each journal fill against the backtest's fill on the same day, in
  basis points of notional (price paid beyond the assumed price, plus costs beyond the
  assumed costs), notional-weighted; above ``max_slippage_bps`` is a breach.

After ``days`` trading days (default 20) the verdict is *promote* (paper -> champion), *keep
watching* or *demote* (paper -> candidate), with its reasons and figures; a breach before
then flags (an alert, the entry stays in paper) or demotes, as ``breach_action`` says. Every
change goes through the registry with its reason and figures. Where the symbol already has
a champion, a promotion first needs a forward comparison (``against_champion``): the paper
entry's realised days against the champion's backtest on the same bars and days, by the
holdout's rule (excess over buy-and-hold), stored with basis ``forward``; the registry's
promotion reads it and retires the old champion. Without bars covering the paper days, or
without beating the champion, the verdict stays *keep watching*.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from evotrader.backtest.significance import edge_on_test, excess_returns
from evotrader.core.atomic import write_atomic
from evotrader.core.checks import (
    require_between,
    require_int,
    require_nonnegative,
    require_positive,
)
from evotrader.core.trading import Fill
from evotrader.lifecycle.alerts import BREACH, DEMOTION, Alerts
from evotrader.lifecycle.states import CANDIDATE, CHAMPION, PAPER, LifecycleError
from evotrader.lifecycle.store import FORWARD, STRATEGY, Entry, ModelRegistry, Transition
from evotrader.live.journal import Journal
from evotrader.training.guards import TradableCheckpoint

log = logging.getLogger(__name__)

PROMOTE, WATCH, DEMOTE = "promote", "keep watching", "demote"
FLAG = "flag"
BREACH_ACTIONS = (FLAG, DEMOTE)
TRADING_DAYS = 252  # annualises the daily tracking error
FLAT = 1e-12  # a daily return this small is a flat day (sign 0)
VERDICT_FILE = "monitor.json"  # written into the bot's folder
FORWARD_RULE = (
    "paper days, after costs: the challenger's realised excess over buy-and-hold (annualised "
    "Sharpe of the daily excess) must be positive and above the champion's, backtested on the "
    "same bars and days"
)


@dataclass(frozen=True)
class MonitorSettings:
    """How the paper monitor judges: after ``days`` trading days, a band of ``z`` sigmas."""

    days: int = 20
    z: float = 2.0
    breach_action: str = FLAG  # before ``days``: FLAG (alert, stay in paper) or DEMOTE
    min_hit_rate: float = 0.6
    max_slippage_bps: float = 5.0
    timezone: str = "America/New_York"  # the exchange's: a fill's trading day

    def __post_init__(self) -> None:
        where, error = "monitor ", LifecycleError
        require_int(where, self, 2, "days", error=error)
        require_positive(where, self, "z", finite=True, error=error)
        require_between(
            where, self, 0, 1, "min_hit_rate", include_low=True, include_high=True, error=error
        )
        require_nonnegative(where, self, "max_slippage_bps", error=error)
        if self.breach_action not in BREACH_ACTIONS:
            raise LifecycleError(
                f"monitor breach_action must be one of {BREACH_ACTIONS}, got {self.breach_action!r}"
            )


class Backtested(Protocol):
    """What the monitor reads of a backtest: ``BacktestResult`` or ``StrategyBacktest``."""

    @property
    def equity(self) -> pd.Series: ...
    @property
    def benchmark_equity(self) -> pd.Series: ...
    @property
    def fills(self) -> pd.DataFrame: ...


class Tradable(Protocol):
    """A checkpoint (``TradableCheckpoint``) or a strategy (``TradableStrategy``)."""

    def bars(self) -> pd.DataFrame: ...
    def backtest(
        self, bars: pd.DataFrame | None = None, period: pd.DataFrame | None = None
    ) -> Backtested: ...


def tradable_of(registry: ModelRegistry, entry: Entry) -> Tradable:
    """The entry's checkpoint or strategy, refused when it changed since it was recorded."""
    path = registry.verify(entry)
    if entry.kind != STRATEGY:
        return TradableCheckpoint.load(path)
    from evotrader.live.strategy_policy import TradableStrategy  # the knowledge base

    assert entry.strategy_id is not None
    try:
        return TradableStrategy.load(entry.strategy_id, path, path.parent)
    except ValueError as error:  # SetupError: the strategy cannot be traded
        raise LifecycleError(f"entry {entry.id}: {error}") from error


@dataclass(frozen=True)
class PaperRecord:
    """What a paper bot's folder says it did: equity marks, its own expectation, fills."""

    bot_dir: Path
    checkpoint: Path | None
    strategy: str | None  # the spec id a strategy bot traded
    equity: pd.Series  # marked at every bar's close
    expected: pd.Series  # the bot's telemetry: the backtest account stepped with its targets
    fills: tuple[Fill, ...]
    halt: dict[str, Any] | None
    stopped: str


@dataclass(frozen=True)
class Expected:
    """The backtest of the same policy on the same days, and what it assumes."""

    equity: pd.Series
    fills: pd.DataFrame  # price, units, cost per fill day (empty: fills not known)
    daily_sigma: float  # std of the backtest's daily returns over the checkpoint's test split
    source: str  # where ``equity`` came from
    bars: pd.DataFrame | None = None  # the bars backtested (None: the bot's own expectation)


@dataclass(frozen=True)
class Day:
    """One trading day of the paper period, realised against expected."""

    day: str
    realised: float
    expected: float
    deviation: float  # cumulative log return, realised minus expected
    band: float  # z * sigma * sqrt(k)
    inside: bool
    hit: bool


@dataclass(frozen=True)
class MonitorVerdict:
    """The monitor's judgement of one paper entry, with its reasons and figures."""

    entry_id: int
    decision: str  # PROMOTE, WATCH or DEMOTE
    days: int  # trading days marked
    reasons: tuple[str, ...]
    breaches: tuple[str, ...]
    figures: dict[str, Any]
    table: tuple[Day, ...]

    @property
    def reason(self) -> str:
        return "paper monitor: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_paper(bot_dir: Path) -> PaperRecord:
    """The paper bot's ``summary.json`` and journal fills; refused when either is missing."""
    summary_path, journal_path = bot_dir / "summary.json", bot_dir / "journal.sqlite"
    for path in (summary_path, journal_path):
        if not path.is_file():
            raise LifecycleError(f"{bot_dir} is not a bot's folder: {path.name} is missing")
    try:
        summary = json.loads(summary_path.read_text())
        equity, expected = (_series(summary.get(key) or {}) for key in ("equity", "expected"))
    except (OSError, ValueError, TypeError) as error:
        raise LifecycleError(f"{summary_path}: unreadable: {error}") from error
    with Journal(journal_path) as journal:
        fills = tuple(journal.fills())
    checkpoint = summary.get("checkpoint")
    return PaperRecord(
        bot_dir=bot_dir,
        checkpoint=Path(checkpoint) if checkpoint else None,
        strategy=summary.get("strategy"),
        equity=equity,
        expected=expected,
        fills=fills,
        halt=summary.get("halt"),
        stopped=str(summary.get("stopped", "")),
    )


def expectation_for(
    tradable: Tradable, record: PaperRecord, bars: pd.DataFrame | None = None
) -> Expected:
    """The backtest of ``tradable`` over the paper days, on ``bars`` (default: its own data
    reference), with sigma from its test split. Where the bars cannot be loaded or do not
    cover every paper day, the bot's own expectation series stands in (same policy, same
    costs, the bars the bot saw), and sigma comes from that series."""
    days = record.equity.index
    if days.empty:
        raise LifecycleError(f"{record.bot_dir}: the bot marked no equity yet")
    try:
        bars = tradable.bars() if bars is None else bars
        covered = days.isin(bars.index).all()
    except (LifecycleError, ValueError, OSError) as error:  # CheckpointError is a ValueError
        log.warning(f"paper monitor: no backtest bars ({error}); using the bot's expectation")
        covered = False
    if not covered or bars is None:
        sigma = float(np.std(_daily_returns(record.expected), ddof=1))
        return Expected(record.expected, pd.DataFrame(), sigma, "the bot's own expectation")
    result = tradable.backtest(bars, bars.loc[days[0] : days[-1]])
    own = tradable.backtest(bars)  # its test split: the distribution it was judged on
    sigma = float(np.std(_daily_returns(own.equity), ddof=1))
    return Expected(result.equity, result.fills, sigma, "backtest on its own bars", bars)


def judge_paper(
    entry: Entry, record: PaperRecord, expected: Expected, settings: MonitorSettings
) -> MonitorVerdict:
    """The verdict on ``entry`` from its paper ``record`` against ``expected``."""
    realised_days, expected_days = _day_ends(record.equity), _day_ends(expected.equity)
    missing = realised_days.index.difference(expected_days.index)
    if len(missing):
        raise LifecycleError(
            f"the expectation ({expected.source}) has no mark for {len(missing)} paper days, "
            f"first {missing[0]}"
        )
    expected_days = expected_days.loc[realised_days.index]
    realised, wanted = realised_days.pct_change().dropna(), expected_days.pct_change().dropna()
    n_days = len(realised_days)
    table = _days(realised, wanted, expected.daily_sigma, settings.z)
    difference = (realised - wanted).to_numpy()
    tracking = float(np.std(difference, ddof=1)) if len(difference) > 1 else 0.0
    hit_rate = float(np.mean([day.hit for day in table])) if table else 1.0
    slippage = _slippage(record.fills, expected.fills, settings.timezone)
    breaches = [
        f"{day.day}: cumulative deviation {100 * day.deviation:+.2f}% outside the band "
        f"+-{100 * day.band:.2f}%"
        for day in table
        if not day.inside
    ]
    excess = slippage.get("excess_bps")
    if excess is not None and excess > settings.max_slippage_bps:
        breaches.append(
            f"fills cost {excess:.1f} bps beyond the backtest's assumption "
            f"(limit {settings.max_slippage_bps:g})"
        )
    last = table[-1] if table else None
    figures: dict[str, Any] = {
        "days": n_days,
        "period": [str(realised_days.index[0]), str(realised_days.index[-1])],
        "realised_return": float(realised_days.iloc[-1] / realised_days.iloc[0] - 1),
        "expected_return": float(expected_days.iloc[-1] / expected_days.iloc[0] - 1),
        "tracking_error_daily": tracking,
        "tracking_error_annual": tracking * math.sqrt(TRADING_DAYS),
        "daily_sigma": expected.daily_sigma,
        "z": settings.z,
        "final_deviation": last.deviation if last else 0.0,
        "final_band": last.band if last else 0.0,
        "hit_rate": hit_rate,
        "slippage": slippage,
        "breaches": len(breaches),
        "expectation": expected.source,
        "halt": record.halt,
    }
    decision, reasons = _decide(n_days, breaches, hit_rate, record, settings)
    summary = (
        f"{n_days} days, realised {100 * figures['realised_return']:+.2f}% vs expected "
        f"{100 * figures['expected_return']:+.2f}%, tracking error "
        f"{100 * figures['tracking_error_annual']:.2f}% a year, hit rate {hit_rate:.0%}"
    )
    return MonitorVerdict(
        entry.id, decision, n_days, (summary, *reasons), tuple(breaches), figures, tuple(table)
    )


def monitor(
    registry: ModelRegistry,
    entry_id: int,
    bot_dir: Path,
    settings: MonitorSettings | None = None,
    alerts: Alerts | None = None,
    bars: pd.DataFrame | None = None,
) -> tuple[MonitorVerdict, list[Transition]]:
    """Judge paper entry ``entry_id`` on the bot in ``bot_dir``, carry the verdict out
    through the registry, alert, and write it to ``bot_dir/monitor.json``. Backtests run on
    one torch thread, as the bot does: one observation per bar gains nothing from more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _monitor(registry, entry_id, bot_dir, settings or MonitorSettings(), alerts, bars)
    finally:
        torch.set_num_threads(threads)


def _monitor(
    registry: ModelRegistry,
    entry_id: int,
    bot_dir: Path,
    settings: MonitorSettings,
    alerts: Alerts | None,
    bars: pd.DataFrame | None,
) -> tuple[MonitorVerdict, list[Transition]]:
    entry = registry.entry(entry_id)
    if entry.state != PAPER:
        raise LifecycleError(f"entry {entry_id} is {entry.state}: only a paper entry is monitored")
    tradable = tradable_of(registry, entry)
    record = read_paper(bot_dir)
    traded = record.strategy if entry.strategy_id else record.checkpoint
    if entry.strategy_id:
        same = record.strategy == entry.strategy_id
    else:
        same = record.checkpoint is not None and record.checkpoint.resolve() == Path(entry.path)
    if not same:
        raise LifecycleError(
            f"the bot in {bot_dir} traded {traded}, not entry {entry_id}'s {entry.name}"
        )
    expected = expectation_for(tradable, record, bars)
    verdict = judge_paper(entry, record, expected, settings)
    champion = registry.champion(entry.symbol)
    if verdict.decision == PROMOTE and champion is not None:
        verdict = against_champion(registry, verdict, record, expected, champion)
    changes = apply_verdict(registry, verdict, alerts)
    if alerts is not None:
        alerts.events.emit(
            "monitor", entry=entry_id, decision=verdict.decision, reasons=list(verdict.reasons)
        )
    write_atomic(bot_dir / VERDICT_FILE, json.dumps(verdict.to_dict(), indent=1, default=str))
    log.info(f"entry {entry_id}: {verdict.decision} ({verdict.reason})")
    return verdict, changes


def against_champion(
    registry: ModelRegistry,
    verdict: MonitorVerdict,
    record: PaperRecord,
    expected: Expected,
    champion: Entry,
) -> MonitorVerdict:
    """A paper entry fit to promote, against the symbol's champion on the paper days: its
    realised days against the champion's backtest on the same bars and days, judged by
    ``FORWARD_RULE`` and stored as a ``forward`` comparison (which the promotion reads). A
    verdict that does not beat the champion, or that has no bars to backtest it on, stays
    *keep watching*."""
    if expected.bars is None:
        return replace(
            verdict,
            decision=WATCH,
            reasons=(
                *verdict.reasons,
                f"{champion.symbol} has champion entry {champion.id} and the paper days are not "
                "in the checkpoint's bars, so it cannot be backtested on them: "
                f"`registry compare {verdict.entry_id}` on a holdout instead",
            ),
        )
    ours = _day_ends(record.equity)
    days = ours.index
    old = tradable_of(registry, champion).backtest(
        expected.bars, expected.bars.loc[days[0] : days[-1]]
    )
    theirs = _day_ends(old.equity).loc[days]
    buy_hold = _day_ends(old.benchmark_equity).loc[days]
    edges = {
        name: edge_on_test(excess_returns(curve, buy_hold))
        for name, curve in (("challenger", ours), ("champion", theirs))
    }
    sharpe = {name: float(edge.sharpe * math.sqrt(TRADING_DAYS)) for name, edge in edges.items()}
    passed = sharpe["challenger"] > 0 and sharpe["challenger"] > sharpe["champion"]
    first, last = str(days[0]), str(days[-1])
    text = (
        f"entry {verdict.entry_id} {'beats' if passed else 'does not beat'} champion entry "
        f"{champion.id} on the paper days {first} -> {last} ({len(days)} days): excess over "
        f"buy-and-hold Sharpe {sharpe['challenger']:.2f} (realised) vs "
        f"{sharpe['champion']:.2f} (backtested), after costs"
    )
    comparison = registry.record_comparison(
        verdict.entry_id,
        champion.id,
        basis=FORWARD,
        rule=FORWARD_RULE,
        period=(first, last),
        figures={
            "days": len(days),
            "challenger": {
                "excess_sharpe": sharpe["challenger"],
                "excess_psr": float(edges["challenger"].probability),
                "total_return": float(ours.iloc[-1] / ours.iloc[0] - 1),
            },
            "champion": {
                "excess_sharpe": sharpe["champion"],
                "excess_psr": float(edges["champion"].probability),
                "total_return": float(theirs.iloc[-1] / theirs.iloc[0] - 1),
            },
            "buy_hold_return": float(buy_hold.iloc[-1] / buy_hold.iloc[0] - 1),
        },
        passed=passed,
        verdict=text,
    )
    log.info(text)
    reason = f"forward comparison {comparison.id}: {text}"
    figures = verdict.figures | {"forward_comparison": comparison.id}
    if passed:
        return replace(verdict, reasons=(*verdict.reasons, reason), figures=figures)
    return replace(verdict, decision=WATCH, reasons=(*verdict.reasons, reason), figures=figures)


def apply_verdict(
    registry: ModelRegistry, verdict: MonitorVerdict, alerts: Alerts | None = None
) -> list[Transition]:
    """Promote or demote through the registry with the verdict's reasons and figures;
    alert on a demotion, on breaches flagged, and on a halt not alerted before."""
    evidence = {"monitor": verdict.figures, "breach_list": list(verdict.breaches)}
    changes: list[Transition] = []
    if verdict.decision == PROMOTE:
        changes = registry.promote(verdict.entry_id, CHAMPION, verdict.reason, evidence=evidence)
    elif verdict.decision == DEMOTE:
        demoted = registry.demote(verdict.entry_id, verdict.reason, CANDIDATE, evidence=evidence)
        changes = [demoted]
    if alerts is None:
        return changes
    halt = verdict.figures.get("halt")
    if isinstance(halt, dict) and not _alerted(alerts, "halt", str(halt.get("at"))):
        alerts.halt(halt, entry=verdict.entry_id)
    if verdict.decision == DEMOTE:
        alerts.fire(
            DEMOTION, verdict.reason, entry=verdict.entry_id, breaches=list(verdict.breaches)
        )
    elif verdict.breaches:
        alerts.fire(BREACH, verdict.reason, entry=verdict.entry_id, breaches=list(verdict.breaches))
    return changes


def verdict_table(verdict: MonitorVerdict) -> str:
    """The verdict, its reasons, and one line per day (for the CLI)."""
    lines = [f"entry {verdict.entry_id}: {verdict.decision.upper()} after {verdict.days} days"]
    lines += [f"  - {reason}" for reason in verdict.reasons]
    lines += [f"  ! {breach}" for breach in verdict.breaches]
    slip = verdict.figures.get("slippage", {})
    lines.append(
        f"  slippage vs assumed: {_bps(slip.get('price_bps'))} price, "
        f"{_bps(slip.get('cost_bps'))} costs vs {_bps(slip.get('assumed_cost_bps'))} assumed, "
        f"{slip.get('matched', 0)} fills matched, {slip.get('unmatched', 0)} not"
    )
    header = f"{'day':<22}{'realised':>10}{'expected':>10}{'deviation':>11}{'band':>9}  ok  hit"
    lines += ["", header, "-" * len(header)]
    lines += [
        f"{day.day:<22}{100 * day.realised:>9.2f}%{100 * day.expected:>9.2f}%"
        f"{100 * day.deviation:>10.2f}%{100 * day.band:>8.2f}%  "
        f"{'yes' if day.inside else 'NO ':<4}{'yes' if day.hit else 'no'}"
        for day in verdict.table
    ]
    return "\n".join(lines)


def _decide(
    n_days: int,
    breaches: list[str],
    hit_rate: float,
    record: PaperRecord,
    settings: MonitorSettings,
) -> tuple[str, list[str]]:
    if breaches and (n_days >= settings.days or settings.breach_action == DEMOTE):
        return DEMOTE, [f"{len(breaches)} breaches, first {breaches[0]}"]
    reasons = [f"{len(breaches)} breaches flagged, first {breaches[0]}"] if breaches else []
    if n_days < settings.days:
        return WATCH, [*reasons, f"{n_days} of {settings.days} trading days so far"]
    if record.halt:
        halt = record.halt
        return WATCH, [f"the bot halted ({halt.get('kind')}: {halt.get('reason')})"]
    if hit_rate < settings.min_hit_rate:
        return WATCH, [f"hit rate {hit_rate:.0%} below {settings.min_hit_rate:.0%}"]
    return PROMOTE, [f"inside the {settings.z:g}-sigma band every day, fills as assumed"]


def _days(realised: pd.Series, expected: pd.Series, sigma: float, z: float) -> list[Day]:
    deviation = np.log1p(realised).cumsum() - np.log1p(expected).cumsum()
    table = []
    for k, day in enumerate(realised.index, start=1):
        band = z * sigma * math.sqrt(k)
        r, e, d = float(realised[day]), float(expected[day]), float(deviation[day])
        table.append(Day(f"{day:%Y-%m-%d}", r, e, d, band, abs(d) <= band, _sign(r) == _sign(e)))
    return table


def _slippage(fills: tuple[Fill, ...], assumed: pd.DataFrame, timezone: str) -> dict[str, Any]:
    """Journal fills against the backtest's fill on the same day and side, in bps of
    notional: positive means worse than assumed."""
    if assumed.empty or not fills:
        return {"matched": 0, "unmatched": len(fills), "excess_bps": None}
    days = assumed.index
    rows = []
    unmatched = 0
    for fill in fills:
        day = fill.timestamp.tz_convert(timezone).normalize()
        day = day.tz_localize(None) if days.tz is None else day.tz_convert(days.tz)
        same = assumed.loc[assumed.index == day]
        same = same.loc[np.sign(same["units"]) == np.sign(fill.signed_quantity)]
        if same.empty:
            unmatched += 1
            continue
        price, units, cost = (float(same.iloc[0][key]) for key in ("price", "units", "cost"))
        notional = fill.quantity * fill.price
        rows.append(
            (
                notional,
                fill.side.sign * (fill.price / price - 1) * 1e4,
                fill.cost / notional * 1e4,
                cost / (abs(units) * price) * 1e4,
            )
        )
    if not rows:
        return {"matched": 0, "unmatched": unmatched, "excess_bps": None}
    weights, price_bps, cost_bps, assumed_bps = np.array(rows, dtype=np.float64).T
    mean = {
        name: float(np.average(values, weights=weights))
        for name, values in (("price", price_bps), ("cost", cost_bps), ("assumed", assumed_bps))
    }
    return {
        "matched": len(rows),
        "unmatched": unmatched,
        "price_bps": mean["price"],
        "cost_bps": mean["cost"],
        "assumed_cost_bps": mean["assumed"],
        "excess_bps": mean["price"] + mean["cost"] - mean["assumed"],
    }


def _alerted(alerts: Alerts, kind: str, at: str) -> bool:
    """Whether the event log already holds an alert of ``kind`` for the moment ``at`` that
    reached a hook (or, with no hooks here, any such alert): a bot without hooks logs its
    halt, and the monitor's hooks still hear of it, once."""
    hooked = alerts.command is not None or alerts.webhook is not None
    path = alerts.events.path
    if path is None or not path.is_file():
        return False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        same = event.get("event") == "alert" and event.get("kind") == kind
        if (
            same
            and event.get("at") == at
            and (not hooked or any((event.get("delivered") or {}).values()))
        ):
            return True
    return False


def _series(raw: dict[str, float]) -> pd.Series:
    series = pd.Series(raw, dtype=np.float64)
    series.index = pd.to_datetime(series.index)
    return series.sort_index()


def _day_ends(equity: pd.Series) -> pd.Series:
    """The last mark of each trading day (daily bars: every mark)."""
    index = pd.DatetimeIndex(equity.index)
    return equity.groupby(index.normalize()).last()


def _daily_returns(equity: pd.Series) -> np.ndarray:
    returns: np.ndarray = _day_ends(equity).pct_change().dropna().to_numpy(np.float64)
    if len(returns) < 2:
        raise LifecycleError(f"a return distribution needs 2 daily returns, got {len(returns)}")
    return returns


def _sign(value: float) -> int:
    return 0 if abs(value) < FLAT else (1 if value > 0 else -1)


def _bps(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} bps"
