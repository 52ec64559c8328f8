"""What a bot trades: the model registry's choice, or an explicitly named one, recorded as such.

The registry is the source of truth for what is traded, so a newer file in ``runs/`` never
replaces what a bot trades by itself:

- ``--symbol S`` trades S's champion with real money; on paper and in the sim it trades S's
  paper entry (the one being evaluated there), else S's champion. A candidate or a retired
  entry is never picked.
- ``--entry ID`` trades that entry if it is in paper or champion state (real money: champion).
- ``--checkpoint PATH`` or ``--strategy ID`` trades what is named, on paper and in the sim,
  whatever its state; the bot records that the flag chose it, and the entry and its state
  where the registry knows it. Real money only when what is named is the symbol's champion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evotrader.lifecycle.states import CHAMPION, PAPER, LifecycleError
from evotrader.lifecycle.store import STRATEGY, Entry, ModelRegistry

REGISTRY, BY_ENTRY, BY_CHECKPOINT, BY_STRATEGY = "registry", "--entry", "--checkpoint", "--strategy"
UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class Choice:
    """A checkpoint file, or a strategy of a strategy registry, and how it was chosen."""

    chosen_by: str  # REGISTRY, BY_ENTRY, BY_CHECKPOINT or BY_STRATEGY
    entry: Entry | None  # the registry's entry of it (None: the registry does not know it)
    checkpoint: Path | None = None
    strategy: str | None = None
    strategies: Path | None = None  # the strategy's registry (None: find the newest holding it)

    def record(self) -> dict[str, Any]:
        """What the bot's event log and journal keep of the choice."""
        entry = self.entry
        return {
            "chosen_by": self.chosen_by,
            "entry": entry.id if entry else None,
            "state": entry.state if entry else UNREGISTERED,
        }

    def note(self) -> str | None:
        """A line for the operator when something outside the lifecycle is traded."""
        if self.chosen_by in (REGISTRY, BY_ENTRY):
            return None
        where = f"entry {self.entry.id}, {self.entry.state}" if self.entry else UNREGISTERED
        return f"note: traded as {self.chosen_by} names it ({where}), not by the model registry"


def choose(
    registry_url: str | Path,
    *,
    symbol: str | None = None,
    entry_id: int | None = None,
    checkpoint: Path | None = None,
    strategy: str | None = None,
    strategies: Path | None = None,
    runs_dir: Path = Path("runs"),
    real_money: bool = False,
) -> Choice:
    """What to trade, by the rules above; a ``LifecycleError`` says why nothing may be.
    A named strategy's registry defaults to the newest under ``runs_dir`` holding it."""
    if strategy is not None and strategies is None:
        from evotrader.training.strategy_stage import find_registry  # SQLAlchemy, templates

        try:
            strategies = find_registry(runs_dir, strategy)
        except FileNotFoundError as error:
            raise LifecycleError(f"{error}; pass --registry PATH") from error
    if checkpoint is not None or strategy is not None:
        return _named(registry_url, checkpoint, strategy, strategies, real_money)
    with _opened(registry_url) as registry:
        if entry_id is not None:
            entry = registry.entry(entry_id)
            allowed = (CHAMPION,) if real_money else (PAPER, CHAMPION)
            if entry.state not in allowed:
                need = "only a champion (real money)" if real_money else "a paper or champion entry"
                raise LifecycleError(
                    f"entry {entry_id} is {entry.state}: a bot trades {need}; promote it "
                    f"first (python -m evotrader registry promote {entry_id} --to ...)"
                )
            return _of(registry, entry, BY_ENTRY)
        if symbol is None:
            raise LifecycleError("give a symbol, an entry, a checkpoint or a strategy")
        return _of(registry, _registered(registry, symbol, real_money), REGISTRY)


def _registered(registry: ModelRegistry, symbol: str, real_money: bool) -> Entry:
    champion = registry.champion(symbol)
    papers = [] if real_money else registry.entries(symbol, PAPER)
    if len(papers) > 1:
        listed = ", ".join(f"{entry.id} ({entry.name})" for entry in papers)
        raise LifecycleError(
            f"{symbol} has {len(papers)} paper entries in {registry.shown_url}: {listed}; "
            "choose one with --entry ID"
        )
    if papers:
        return papers[0]
    if champion is not None:
        return champion
    wanted = "champion" if real_money else "paper or champion entry"
    raise LifecycleError(
        f"no {wanted} for {symbol} in the model registry {registry.shown_url}; see "
        f"`python -m evotrader registry list --symbol {symbol}` and promote one"
        + ("" if real_money else ", or name one with --checkpoint PATH or --strategy ID")
    )


def _named(
    registry_url: str | Path,
    checkpoint: Path | None,
    strategy: str | None,
    strategies: Path | None,
    real_money: bool,
) -> Choice:
    known = _exists(registry_url)
    entry = None
    if known:
        with _opened(registry_url) as registry:
            if checkpoint is not None and checkpoint.is_file():
                entry = registry.find(checkpoint)
            elif strategy is not None and strategies is not None:
                entry = registry.find(strategies, strategy)
    chosen_by = BY_CHECKPOINT if checkpoint is not None else BY_STRATEGY
    if real_money and (entry is None or entry.state != CHAMPION):
        what = f"entry {entry.id} is {entry.state}" if entry else "the model registry has no entry"
        raise LifecycleError(
            f"real money trades only the registry's champion: {chosen_by} names something "
            f"that is not ({what}); promote it through paper first"
        )
    return Choice(chosen_by, entry, checkpoint, strategy, strategies)


def _of(registry: ModelRegistry, entry: Entry, chosen_by: str) -> Choice:
    """The entry's artefact, refused when it changed since it was recorded."""
    path = registry.verify(entry)
    if entry.kind == STRATEGY:
        return Choice(chosen_by, entry, strategy=entry.strategy_id, strategies=path)
    return Choice(chosen_by, entry, checkpoint=path)


def _exists(registry_url: str | Path) -> bool:
    """A registry URL names a server (assumed there), a path a file that may be missing."""
    return "://" in str(registry_url) or Path(registry_url).is_file()


def _opened(registry_url: str | Path) -> ModelRegistry:
    if not _exists(registry_url):
        raise LifecycleError(
            f"no model registry at {registry_url}: training records its checkpoints there; "
            "record one with `python -m evotrader registry record PATH`"
        )
    return ModelRegistry(registry_url)
