"""strategy_search: evolve readable template strategies, screened and validated, into a registry.

Time follows the run's splits, so the strategy track obeys the same honesty rules as the
RL stages. Screening (walk-forward with backtesting.py) sees bars up to the end of the
training split only; validation (NautilusTrader) trades the validation split, which the
screen never saw, with earlier bars as indicator history; the test split is left to
``run_backtest.py --strategy ID``. Universes come from ``strategy_search.universes`` or,
when that is empty, from the run's data: ``data.symbol`` and each ``data.universe``
symbol alone, plus ``data.universe`` as candidates for cointegrated pairs.

The search's loop state is saved after every cycle in ``runs/<run_name>/evolver_state.json``:
an interrupted search resumes from it, and a search that paused after exhaustion carries on
from it when the stage runs again in that folder (see ``strategies.evolver``).

The registry (``runs/<run_name>/strategies.sqlite`` unless ``registry_url`` names another
database) keeps every spec, its lineage and its verdicts, plus the windows, data source
and costs of the search, so a registered strategy can be backtested again later. The
stage's headline is the leaderboard's best validated strategy on the validation split,
after costs, next to buy-and-hold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from evotrader.config import StrategySearchConfig, TrainingConfig, project_path
from evotrader.data import DataError, TimeSplits, load_bars
from evotrader.data.universe_lists import named_lists
from evotrader.env import ExecutionModel
from evotrader.risk.preferences import Preferences, load_preferences
from evotrader.strategies.auditor import AuditLimits, AuditReport, audit
from evotrader.strategies.backtest_bridge import run_engine
from evotrader.strategies.evolver import STATE_FILE, CycleReport, Evolver, Judges
from evotrader.strategies.generator import Evaluated, UniverseChoice, make_generator
from evotrader.strategies.registry import SEARCH_META, LeaderboardRow, Registry, RegistryError
from evotrader.strategies.runs import SpecRun
from evotrader.strategies.screening import screen
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.validation import validate
from evotrader.training.pipeline import StageContext, StageResult
from evotrader.training.stages import register_stage

log = logging.getLogger(__name__)

REGISTRY_FILE = "strategies.sqlite"


@dataclass(frozen=True)
class Windows:
    """Where each phase may look: screen up to ``search_end``, validate the validation
    split, and the test split for ``run_backtest.py --strategy`` only."""

    search_end: pd.Timestamp
    validation_start: pd.Timestamp
    validation_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    @classmethod
    def from_splits(cls, splits: TimeSplits) -> Windows:
        return cls(
            search_end=splits.train.index[-1],
            validation_start=splits.validation.index[0],
            validation_end=splits.validation.index[-1],
            test_start=splits.test.index[0],
            test_end=splits.test.index[-1],
        )

    def to_dict(self) -> dict[str, str]:
        return {name: stamp.isoformat() for name, stamp in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> Windows:
        return cls(**{name: pd.Timestamp(raw[name]) for name in cls.__dataclass_fields__})


def check_settings(ctx: StageContext) -> None:
    """What loading the config could not check: the human's preferences file and the
    universes (screening, validation, evolver and llm checked themselves then)."""
    preferences(ctx.config.strategy_search)
    universe_choices(ctx.config)


def preferences(settings: StrategySearchConfig) -> Preferences:
    """The preferences file the audit holds specs to (a relative path: from the project root)."""
    return load_preferences(project_path(settings.preferences))


def run_strategy_stage(ctx: StageContext) -> StageResult:
    settings = ctx.config.strategy_search
    windows = Windows.from_splits(ctx.splits)
    universes = universe_choices(ctx.config)
    bars = UniverseBars(data_meta(ctx.config), windows.validation_end)
    registry_url = settings.registry_url or str(ctx.run_dir / REGISTRY_FILE)
    with Registry(registry_url) as registry:
        registry.set_meta(
            SEARCH_META,
            {
                "windows": windows.to_dict(),
                "data": data_meta(ctx.config),
                "execution": asdict(ctx.config.env.execution),
                "cash": settings.validation.cash,
            },
        )
        generator = make_generator(universes, settings.llm, ctx.config.seed)
        log.info(
            f"[{ctx.name}] generator {generator.name}; universes "
            f"{', '.join(u.name for u in universes)}; screen <= {windows.search_end:%Y-%m-%d}, "
            f"validate {windows.validation_start:%Y-%m-%d}..{windows.validation_end:%Y-%m-%d} "
            f"(test split untouched)"
        )
        judges = make_judges(ctx, bars, windows)
        evolver = Evolver(
            generator,
            judges,
            registry,
            settings.evolver,
            mapper=ray_map if settings.parallel and ray.is_initialized() else map,
            on_cycle=lambda report: _log_cycle(ctx.name, report),
            state_path=ctx.run_dir / STATE_FILE,
        )
        report = evolver.run()
        log.info(f"[{ctx.name}] {report.summary}")
        best = best_validated(registry, evolver)
        log.info(leaderboard_table(registry.leaderboard(settings.leaderboard_size)))
        log.info(phase_counts(registry))
        log.info(f"[{ctx.name}] best: {best.spec_id} -> run_backtest.py --strategy {best.spec_id}")
        # the run's own file is a path, so the pipeline records its validated strategies in
        # the model registry; a database URL is shown masked (recorded by hand)
        location = registry_url if not settings.registry_url else registry.shown_url
    return StageResult(checkpoint=location, validation=headline(best), seconds=0.0)


def _log_cycle(stage: str, report: CycleReport) -> None:
    log.info(f"[{stage}] {report.line()}")


class UniverseBars:
    """Every universe symbol's bars up to ``end``, loaded once and sliced per phase."""

    def __init__(self, data: dict[str, Any], end: pd.Timestamp) -> None:
        self.data, self.end = data, end
        self.cache: dict[tuple[str, str], pd.DataFrame] = {}

    def get(self, spec: StrategySpec, end: pd.Timestamp) -> dict[str, pd.DataFrame]:
        if end > self.end:
            raise ValueError(f"bars after {self.end} are not the search's to read")
        return {s: self._bars(spec.universe.source, s).loc[:end] for s in spec.universe.symbols}

    def _bars(self, source: str, symbol: str) -> pd.DataFrame:
        if (source, symbol) not in self.cache:
            self.cache[source, symbol] = load_symbol(self.data, source, symbol, self.end)
        return self.cache[source, symbol]


def data_meta(config: TrainingConfig) -> dict[str, Any]:
    """How the run loads bars: its source, start and that source's options."""
    data = config.data
    return {"source": data.source, "start": data.start, "options": dict(data.options)}


def load_symbol(data: dict[str, Any], source: str, symbol: str, end: pd.Timestamp) -> pd.DataFrame:
    """One universe symbol's bars up to ``end``, with the run's options where the symbol
    comes from the run's own source (e.g. a synthetic seed)."""
    options = data["options"] if source == data["source"] else {}
    return load_bars(source, symbol, data["start"], None, **options).loc[:end]


def universe_bars(
    data: dict[str, Any], spec: StrategySpec, end: pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """Every universe symbol's bars up to ``end``, in the universe's order (``load_symbol``)."""
    return {s: load_symbol(data, spec.universe.source, s, end) for s in spec.universe.symbols}


def universe_choices(config: TrainingConfig) -> list[UniverseChoice]:
    """``strategy_search.universes`` (else data.symbol and each data.universe symbol alone,
    plus data.universe whole), then every shipped list of ``strategy_search.lists`` from its
    own source (unless ``strategy_search.source`` names one)."""
    settings, data = config.strategy_search, config.data
    source = settings.source or data.source
    for key in ("lists", "accept_survivorship"):
        unknown = [n for n in getattr(settings, key) if n not in named_lists()]
        if unknown:
            raise DataError(
                f"strategy_search.{key}: unknown list(s) {unknown}; "
                f"known lists: {', '.join(named_lists())}"
            )
    named = [UniverseChoice.named(name, settings.source) for name in settings.lists]
    if settings.universes:
        return [UniverseChoice.of(symbols, source) for symbols in settings.universes] + named
    symbols = list(dict.fromkeys([data.symbol, *data.universe]))
    choices = [UniverseChoice.of([s], source) for s in symbols]
    if len(data.universe) >= 2:
        choices.append(UniverseChoice.of(list(data.universe), source))
    return choices + named


def make_judges(ctx: StageContext, bars: UniverseBars, windows: Windows) -> Judges:
    """Screen, validate and audit bound to their windows, costs, the human's limits and the
    run's seed."""
    settings, seed = ctx.config.strategy_search, ctx.config.seed
    screening, validation = settings.screening, settings.validation
    # backtesting.py has no impact model; validation measures impact in its capacity scan
    execution = replace(ctx.config.env.execution, impact_coef=0.0)
    limits = AuditLimits.from_preferences(
        preferences(settings), screening.min_trades, seed, tuple(settings.accept_survivorship)
    )

    def screen_spec(spec: StrategySpec) -> StrategyResult:
        return screen(spec, bars.get(spec, windows.search_end), screening, execution, seed)

    def validate_spec(spec: StrategySpec, screened: StrategyResult) -> StrategyResult:
        data = bars.get(spec, windows.validation_end)
        return validate(
            spec,
            data,
            start=windows.validation_start,
            parameters=screened.parameters,
            config=validation,
        )

    def audit_spec(spec: StrategySpec, screened: StrategyResult) -> AuditReport:
        return audit(spec, screened, bars.get(spec, windows.search_end), limits)

    return Judges(screen_spec, validate_spec, audit_spec, screening.max_drawdown)


def ray_map(
    function: Callable[[StrategySpec], StrategyResult], specs: Sequence[StrategySpec]
) -> list[StrategyResult]:
    """Screen a batch as Ray tasks (one CPU each), results in the order of ``specs``."""
    if not specs:
        return []
    task = ray.remote(num_cpus=1)(function)
    return ray.get([task.remote(spec) for spec in specs])


def best_validated(registry: Registry, evolver: Evolver) -> StrategyResult:
    """The leaderboard's best validated result. When no spec passed the screen, nothing was
    validated: the fittest screened spec is promoted now (validated, and audited if it
    passes) so the run still has a held-out number to show, flagged by its verdict."""
    board = registry.leaderboard(limit=None)
    for row in board:
        if row.validation is not None:
            return row.validation
    screened = [Evaluated(row.spec, row.screen) for row in board if row.screen is not None]
    if not screened:
        raise RuntimeError("the strategy search screened no spec: the generator proposed none")
    top = max(screened, key=lambda entry: (entry.fitness, entry.spec.spec_id))
    log.info("[strategy_search] no spec passed the screen: validating the fittest screened one")
    validated, _ = evolver.promote(top)
    assert validated.validation is not None
    return validated.validation


def headline(result: StrategyResult) -> dict[str, float]:
    """The numbers the pipeline's summary table prints (validation split, after costs)."""
    m, b = result.metrics, result.benchmark
    return {
        "sharpe": m["sharpe"],
        "buy_hold_sharpe": b["sharpe"],
        "total_return": m["total_return"],
        "buy_hold_return": b["total_return"],
        "max_drawdown": m["max_drawdown"],
        "n_trades": m["n_trades"],
    }


def leaderboard_table(rows: Sequence[LeaderboardRow]) -> str:
    """Screen (walk-forward on the search window) and validation (the validation split,
    used for selection, NautilusTrader) numbers side by side, after costs, best first."""
    header = (
        f"{'#':>2} {'spec':<16} {'template':<42} {'universe':<18} {'gen':>3} "
        f"{'scr SR':>7} {'scr DD':>7} {'trd':>4} {'ok':>3} "
        f"{'val SR':>7} {'B&H SR':>7} {'val ret':>8} {'val DD':>7} {'reg+':>4} "
        f"{'capacity':>9} {'ok':>3} {'live':>4}"
    )
    lines = [
        "",
        "Strategy leaderboard (after costs; screen: walk-forward folds of the search window; "
        "validation: validation split (used for selection), in NautilusTrader)",
        header,
        "-" * len(header),
    ]
    for rank, row in enumerate(rows, start=1):
        s, v = row.screen, row.validation
        line = (
            f"{rank:>2} {row.spec.spec_id:<16} {row.spec.template:<42} "
            f"{'+'.join(row.spec.universe.symbols)[:18]:<18} {row.spec.generation:>3} "
        )
        line += (
            f"{s.metrics['sharpe']:>7.2f} {abs(s.metrics['max_drawdown']):>7.1%} "
            f"{s.metrics['n_trades']:>4.0f} {_mark(s.passed):>3} "
            if s
            else f"{'-':>7} {'-':>7} {'-':>4} {'-':>3} "
        )
        line += (
            f"{v.metrics['sharpe']:>7.2f} {v.benchmark['sharpe']:>7.2f} "
            f"{v.metrics['total_return']:>8.1%} {abs(v.metrics['max_drawdown']):>7.1%} "
            f"{len(v.diagnostics['positive_regimes']):>4d} "
            f"{_money(v.diagnostics['capacity']):>9} {_mark(v.passed):>3}"
            if v
            else f"{'-':>7} {'-':>7} {'-':>8} {'-':>7} {'-':>4} {'-':>9} {'-':>3}"
        )
        lines.append(line + f" {_mark(row.live_ready) if row.audit_passed is not None else '-':>4}")
    return "\n".join(lines)


def phase_counts(registry: Registry) -> str:
    counts = registry.counts()
    parts = [f"{phase} {passed}/{judged} passed" for phase, (judged, passed) in counts.items()]
    return f"Specs: {len(registry)} registered; " + ", ".join(parts)


def _mark(flag: bool) -> str:
    return "yes" if flag else "no"


def _money(value: float) -> str:
    if math.isinf(value):
        return "unbound"
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"${value / scale:.1f}{unit}"
    return f"${value:.0f}"


# --- run_backtest.py --strategy ------------------------------------------------------------


def find_registry(runs_dir: Path, spec_id: str) -> Path:
    """The most recently written ``runs/*/strategies.sqlite`` holding ``spec_id``."""
    candidates = sorted(
        Path(runs_dir).glob(f"*/{REGISTRY_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in candidates:
        with Registry(path) as registry:
            if spec_id in registry:
                return path
    raise FileNotFoundError(f"no registry under {runs_dir} holds strategy {spec_id}")


@dataclass(frozen=True)
class RegisteredTest:
    """A registered strategy's test-split inputs: the spec, the parameters its verdict
    settled on, every universe symbol's bars up to the test end, the search's windows,
    execution costs and cash."""

    spec: StrategySpec
    parameters: dict[str, int | float]
    bars: dict[str, pd.DataFrame]
    windows: Windows
    execution: ExecutionModel
    cash: float

    def run(self) -> SpecRun:
        """The strategy on the test split with our engine, after costs, next to
        buy-and-hold; the universe is resolved on the bars before it (history only)."""
        return run_engine(
            self.spec,
            self.bars,
            parameters=self.parameters,
            start=self.windows.test_start,
            execution=self.execution,
            cash=self.cash,
        )


def registered_test(registry: Registry, spec_id: str) -> RegisteredTest:
    """What a test-split backtest of a registered strategy needs: the validated parameters
    (else the screened), the bars of its universe and the search's windows and costs."""
    spec = registry.spec(spec_id)
    verdict = registry.result(spec_id, "validate") or registry.result(spec_id, "screen")
    if verdict is None:
        raise RegistryError(f"strategy {spec_id} was never screened: nothing to backtest")
    meta = registry.meta(SEARCH_META)
    windows = Windows.from_dict(meta["windows"])
    bars = universe_bars(meta["data"], spec, windows.test_end)
    execution = ExecutionModel(**meta["execution"])
    return RegisteredTest(spec, dict(verdict.parameters), bars, windows, execution, meta["cash"])


def backtest_registered(registry: Registry, spec_id: str) -> tuple[StrategySpec, SpecRun, Windows]:
    """The registered strategy on the search's test split (see ``RegisteredTest.run``)."""
    test = registered_test(registry, spec_id)
    return test.spec, test.run(), test.windows


register_stage(
    "strategy_search",
    config=StrategySearchConfig,
    run=run_strategy_stage,
    check_settings=check_settings,
    checkpoint_kind=None,
)
