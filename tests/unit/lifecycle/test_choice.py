"""What a bot trades is what the model registry promoted: a newer file never replaces it."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.lifecycle.helpers import lifecycle_checkpoint
from tests.unit.live.helpers import make_strategy_registry

from evotrader.lifecycle.choice import BY_CHECKPOINT, BY_ENTRY, BY_STRATEGY, REGISTRY, choose
from evotrader.lifecycle.states import CHAMPION, PAPER, LifecycleError
from evotrader.lifecycle.store import ModelRegistry
from evotrader.strategies.spec import StrategySpec


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("runs")
    return {
        "champion": lifecycle_checkpoint(runs / "old" / "GOOG_autonomous_final.pth", 0),
        "newer": lifecycle_checkpoint(runs / "new" / "GOOG_autonomous_final.pth", 4),
    }


@pytest.fixture
def url(tmp_path: Path, files: dict[str, Path]) -> Path:
    """A registry whose GOOG champion is the older file; the newer run is a candidate."""
    path = tmp_path / "registry.sqlite"
    with ModelRegistry(path) as registry:
        champion = registry.record_checkpoint(files["champion"])
        registry.promote(champion.id, PAPER, "paper first")
        registry.promote(champion.id, CHAMPION, "matched its backtest on paper")
        registry.record_checkpoint(files["newer"])
    return path


def test_a_newer_run_does_not_replace_the_traded_champion(url, files) -> None:
    for real_money in (False, True):
        chosen = choose(url, symbol="GOOG", real_money=real_money)
        assert chosen.checkpoint == files["champion"].resolve()
        assert chosen.chosen_by == REGISTRY and chosen.entry and chosen.entry.state == CHAMPION
        assert chosen.note() is None


def test_paper_trades_the_paper_entry_real_money_the_champion(url, files) -> None:
    with ModelRegistry(url) as registry:
        newer = registry.find(files["newer"])
        assert newer is not None
        registry.promote(newer.id, PAPER, "to be watched on paper")
    assert choose(url, symbol="GOOG").checkpoint == files["newer"].resolve()
    assert choose(url, symbol="GOOG", real_money=True).checkpoint == files["champion"].resolve()
    by_entry = choose(url, entry_id=newer.id)
    assert (by_entry.chosen_by, by_entry.checkpoint) == (BY_ENTRY, files["newer"].resolve())
    with pytest.raises(LifecycleError, match=f"entry {newer.id} is paper: .*only a champion"):
        choose(url, entry_id=newer.id, real_money=True)


def test_candidates_and_unknown_symbols_are_never_picked(url, files) -> None:
    with ModelRegistry(url) as registry:
        newer = registry.find(files["newer"])
    assert newer is not None
    with pytest.raises(
        LifecycleError, match=f"entry {newer.id} is candidate: a bot trades a paper"
    ):
        choose(url, entry_id=newer.id)
    with pytest.raises(LifecycleError, match="no paper or champion entry for AAPL"):
        choose(url, symbol="AAPL")
    with pytest.raises(LifecycleError, match="no model registry at"):
        choose(url.parent / "missing.sqlite", symbol="GOOG")


def test_an_explicit_file_trades_on_paper_recorded_as_chosen_never_real_money(url, files) -> None:
    named = choose(url, symbol="GOOG", checkpoint=files["newer"])
    assert (named.chosen_by, named.checkpoint) == (BY_CHECKPOINT, files["newer"])
    assert named.record() == {"chosen_by": BY_CHECKPOINT, "entry": 2, "state": "candidate"}
    assert "not by the model registry" in (named.note() or "")
    with pytest.raises(LifecycleError, match=r"real money trades only the registry's champion"):
        choose(url, checkpoint=files["newer"], real_money=True)
    champion = choose(url, checkpoint=files["champion"], real_money=True)
    assert champion.entry is not None and champion.entry.state == CHAMPION
    unknown = choose(url.parent / "none.sqlite", checkpoint=files["newer"])
    assert unknown.record() == {"chosen_by": BY_CHECKPOINT, "entry": None, "state": "unregistered"}


def test_a_changed_file_is_not_traded_as_its_entry(url, files, tmp_path) -> None:
    copy = tmp_path / "GOOG_autonomous_final.pth"
    copy.write_bytes(files["champion"].read_bytes())
    with ModelRegistry(url) as registry:
        entry = registry.record_checkpoint(copy)
        registry.promote(entry.id, PAPER, "a copy")
    copy.write_bytes(files["newer"].read_bytes())
    with pytest.raises(LifecycleError, match="changed since it was recorded"):
        choose(url, symbol="GOOG")


def test_a_paper_strategy_is_chosen_by_its_symbol(url, tmp_path) -> None:
    spec = StrategySpec.build("momentum/volatility-scaled-momentum", ["GOOG"])
    strategies = make_strategy_registry(tmp_path / "search" / "strategies.sqlite", spec)
    with ModelRegistry(url) as registry:
        entry = registry.record_strategy(strategies, spec.spec_id)
        registry.promote(entry.id, PAPER, "validated")
    chosen = choose(url, symbol="GOOG")
    assert (chosen.strategy, chosen.strategies, chosen.checkpoint) == (
        spec.spec_id,
        strategies.resolve(),
        None,
    )
    named = choose(url, strategy=spec.spec_id, runs_dir=tmp_path)
    assert named.chosen_by == BY_STRATEGY and named.record()["entry"] == entry.id


def test_two_paper_entries_need_an_entry_id(url, files) -> None:
    with ModelRegistry(url) as registry:
        newer = registry.find(files["newer"])
        assert newer is not None
        registry.promote(newer.id, PAPER, "one")
    extra = files["newer"].parent / "GOOG_stage_1_ppo.pth"
    lifecycle_checkpoint(extra, 2)
    with ModelRegistry(url) as registry:
        entry = registry.record_checkpoint(extra)
        registry.promote(entry.id, PAPER, "two")
    with pytest.raises(LifecycleError, match=r"2 paper entries .* choose one with --entry ID"):
        choose(url, symbol="GOOG")
