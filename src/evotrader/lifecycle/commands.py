"""What ``python -m evotrader registry ...`` does: one registry command, answered as plain
text (tables, an entry's record, the changes just made) for the entry point to print."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evotrader.lifecycle.states import CHAMPION, LifecycleError
from evotrader.lifecycle.store import Comparison, Entry, ModelRegistry, Transition

ACTIONS = ("list", "show", "promote", "demote", "history", "record", "compare", "monitor")


@dataclass(frozen=True)
class Command:
    """One operator request against the registry at ``registry`` (a path or a URL)."""

    action: str
    registry: str
    entry: int | None = None
    to: str | None = None
    why: str = ""
    path: Path | None = None  # record: a checkpoint, or a strategy search's strategies.sqlite
    strategy: str | None = None  # record: only this strategy of the search
    against: int | None = None  # compare: the champion to beat (default: its symbol's)
    symbol: str | None = None  # list: only this symbol
    start: str | None = None  # compare: the holdout's first bar (default: after both tests)
    bot_dir: Path | None = None  # monitor: the paper bot's folder (its --out)
    settings: dict[str, Any] | None = None  # monitor: MonitorSettings fields given
    alert_command: tuple[str, ...] | None = None  # monitor: argv run on an alert
    webhook: str | None = None  # monitor: URL an alert is POSTed to


def execute(command: Command) -> str:
    """Carry out ``command``; every change is recorded with its time and reason."""
    if command.action not in ACTIONS:
        raise LifecycleError(f"unknown registry action {command.action!r}; one of {ACTIONS}")
    with ModelRegistry(command.registry) as registry:
        if command.action == "list":
            return entries_table(registry.entries(command.symbol))
        if command.action == "record":
            return entries_table(_record(registry, command))
        if command.action == "history":
            return history_table(registry.history(command.entry))
        entry_id = _needs_entry(command)
        if command.action == "show":
            entry = registry.entry(entry_id)
            return describe(entry, registry.history(entry_id), registry.comparisons(entry_id))
        if command.action == "promote":
            if command.to is None:
                raise LifecycleError("promote needs --to paper or --to champion")
            return history_table(registry.promote(entry_id, command.to, command.why))
        if command.action == "demote":
            return history_table([registry.demote(entry_id, command.why, command.to)])
        if command.action == "monitor":
            return _monitor(registry, entry_id, command)
        return describe_comparison(_compare(registry, entry_id, command))


def _record(registry: ModelRegistry, command: Command) -> list[Entry]:
    """A checkpoint file; or a strategy registry's validated strategies (or ``strategy``)."""
    if command.path is None:
        raise LifecycleError("record needs a checkpoint's or a strategies.sqlite's PATH")
    reason = command.why or "recorded by hand"
    if command.strategy is not None:
        return [registry.record_strategy(command.path, command.strategy, reason)]
    if command.path.suffix == ".sqlite":
        return registry.record_strategies(command.path, reason)
    return [registry.record_checkpoint(command.path, reason)]


def _compare(registry: ModelRegistry, entry_id: int, command: Command) -> Comparison:
    """The challenger against ``--against`` or its symbol's champion, on the bars its own
    data reference loads today (backtest machinery imported only for this action)."""
    from evotrader.lifecycle.holdout import compare_on_holdout
    from evotrader.training.guards import TradableCheckpoint

    challenger = registry.entry(entry_id)
    against = command.against
    if against is None:
        champion = registry.champion(challenger.symbol)
        if champion is None:
            raise LifecycleError(
                f"{challenger.symbol} has no champion to compare entry {entry_id} with; "
                f"promote it without a comparison, or name one with --against ID"
            )
        against = champion.id
    bars = TradableCheckpoint.load(registry.verify(challenger)).bars()
    return compare_on_holdout(registry, entry_id, against, bars, command.start)


def _monitor(registry: ModelRegistry, entry_id: int, command: Command) -> str:
    """The paper monitor's verdict on ``entry_id`` from its bot's folder, carried out, with
    alerts written to the bot's event log (backtest machinery imported only for this)."""
    from evotrader.lifecycle.alerts import Alerts
    from evotrader.lifecycle.monitor import MonitorSettings, monitor, verdict_table
    from evotrader.live.telemetry import EventLog

    if command.bot_dir is None:
        raise LifecycleError("monitor needs the paper bot's folder (--bot-dir)")
    settings = MonitorSettings(**(command.settings or {}))
    events = EventLog(command.bot_dir / "events.jsonl")
    try:
        alerts = Alerts(events, command.alert_command, command.webhook)
        verdict, changes = monitor(registry, entry_id, command.bot_dir, settings, alerts)
    finally:
        events.close()
    return "\n\n".join([verdict_table(verdict), history_table(changes)])


def _needs_entry(command: Command) -> int:
    if command.entry is None:
        raise LifecycleError(f"{command.action} needs an entry ID (see `registry list`)")
    return command.entry


def entries_table(entries: Sequence[Entry]) -> str:
    """One row per entry: its state and the figures each split gave it, named."""
    if not entries:
        return "no entries"
    rows = [
        (
            str(entry.id),
            entry.state + (" *" if entry.state == CHAMPION else ""),
            entry.symbol,
            entry.stage,
            entry.run_name or "-",
            _number(entry.validation.get("sharpe")),
            _number(entry.validation.get("buy_hold_sharpe")),
            _number(entry.test.get("sharpe")),
            _number(entry.dsr),
            _number(entry.pbo),
            entry.recorded_at.strftime("%Y-%m-%d %H:%M"),
        )
        for entry in entries
    ]
    header = (
        "id",
        "state",
        "symbol",
        "stage",
        "run",
        "val Sharpe",
        "val B&H",
        "test Sharpe",
        "DSR",
        "PBO",
        "recorded (UTC)",
    )
    return _table(header, rows)


def history_table(changes: Sequence[Transition]) -> str:
    """Every change: when, which entry, from and to, why."""
    if not changes:
        return "no state changes"
    rows = [
        (
            change.at.strftime("%Y-%m-%d %H:%M:%S"),
            str(change.entry_id),
            change.from_state or "-",
            change.to_state,
            change.reason,
        )
        for change in changes
    ]
    return _table(("at (UTC)", "entry", "from", "to", "reason"), rows)


def describe(entry: Entry, changes: Sequence[Transition], comparisons: Sequence[Comparison]) -> str:
    """An entry's whole record: where it came from, its figures by split, its history."""
    lines = [
        f"entry {entry.id}: {entry.symbol} {entry.stage} ({entry.kind}), {entry.state}",
        f"file: {entry.path}",
        f"sha256: {entry.sha256}",
        f"run: {entry.run_name or '-'} (settings digest {entry.settings_digest or '-'})",
        f"data: {json.dumps(entry.data, sort_keys=True)}",
        "splits: " + ", ".join(f"{k} {v}" for k, v in sorted(entry.data_range.items())),
        f"validation split (used for selection): {_figures(entry.validation)}",
        f"test split (touched once): {_figures(entry.test)}",
        f"DSR {_number(entry.dsr)}, PBO {_number(entry.pbo)}; {entry.verdict or 'no verdict'}",
        f"lineage: {len(entry.lineage)} ancestors" if entry.lineage else "lineage: -",
        f"created {entry.created_at}, recorded {entry.recorded_at:%Y-%m-%d %H:%M:%S} UTC",
        "",
        history_table(changes),
    ]
    for comparison in comparisons:
        lines += ["", describe_comparison(comparison)]
    return "\n".join(lines)


def describe_comparison(comparison: Comparison) -> str:
    """A comparison's rule, bars, figures and verdict."""
    figures = comparison.figures
    lines = [
        f"comparison {comparison.id} ({comparison.basis}, {comparison.at:%Y-%m-%d %H:%M} UTC): "
        f"entry {comparison.challenger_id} vs champion entry {comparison.champion_id}, "
        f"{comparison.period_start} -> {comparison.period_end}",
        f"rule: {comparison.rule}",
    ]
    lines += [
        f"{who}: {_figures(figures[who])}"
        for who in ("challenger", "champion")
        if isinstance(figures.get(who), dict)
    ]
    lines.append(("PASSED: " if comparison.passed else "FAILED: ") + comparison.verdict)
    return "\n".join(lines)


def _figures(values: dict[str, Any]) -> str:
    return ", ".join(f"{key} {_number(value)}" for key, value in sorted(values.items())) or "-"


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
