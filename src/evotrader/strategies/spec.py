"""Strategy specifications and results: what the generator proposes, the registry stores and
every translator runs.

A ``StrategySpec`` is a template id from the knowledge base plus values for exactly that
template's parameters, a universe, risk rules and lineage. It validates itself on
construction against the shipped knowledge base, so an unknown template, a parameter of the
wrong type or outside its bounds, an unknown filter field or operator is rejected with a
``SpecError`` that names it. Specs and results convert to JSON and back exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator as op
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from numbers import Integral, Real
from typing import Any, cast

import numpy as np
import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.universe_lists import named_list
from evotrader.strategies.knowledge import (
    MIN_UNIVERSE_LEGS,
    KnowledgeError,
    Template,
    default_knowledge,
)

COMPARISONS: tuple[str, ...] = (">", ">=", "<", "<=", "==", "!=")
MEMBERSHIP: tuple[str, ...] = ("in", "not_in")
RANKS: tuple[str, ...] = ("top_n", "bottom_n")  # the n highest / lowest of the field
OPERATORS: tuple[str, ...] = (*COMPARISONS, "between", *RANKS, *MEMBERSHIP)
_COMPARE = dict(zip(COMPARISONS, (op.gt, op.ge, op.lt, op.le, op.eq, op.ne), strict=True))
# Statistics of a symbol over the training window that filters may test (see universe.py).
NUMERIC_FIELDS: tuple[str, ...] = (
    "price",
    "avg_volume",
    "avg_dollar_volume",
    "volatility",
    "total_return",
    "history_bars",
    "momentum",
    "max_drawdown",
    "sharpe",
    "beta",
)
FILTER_FIELDS: tuple[str, ...] = (*NUMERIC_FIELDS, "symbol")
UNIVERSE_KINDS: tuple[str, ...] = ("static", "cointegrated_pairs")
_FLOAT_MARKER = "$float"  # JSON has no inf/nan: {"$float": "inf"} stands for them


class SpecError(ValueError):
    """A strategy spec or result is invalid; the message names the field and the problem."""


@dataclass(frozen=True)
class Filter:
    """One universe filter: ``<field> <operator> <value>``, evaluated on the training window.

    Numeric fields take a comparison and a number, ``between`` and ``[low, high]``
    (inclusive), or ``top_n`` / ``bottom_n`` and a count: the symbols with the highest /
    lowest value among those the earlier filters kept (ties: listed order). ``symbol``
    takes ``==``/``!=`` with a symbol or ``in``/``not_in`` with a list of symbols.
    """

    field: str
    operator: str
    value: float | int | str | tuple[str, ...] | tuple[float, float]

    def __post_init__(self) -> None:
        if self.field not in FILTER_FIELDS:
            raise SpecError(f"filter field {self.field!r} is unknown; known: {list(FILTER_FIELDS)}")
        if self.operator not in OPERATORS:
            raise SpecError(
                f"filter operator {self.operator!r} is unknown; known: {list(OPERATORS)}"
            )
        if self.field == "symbol":
            object.__setattr__(self, "value", self._symbol_value())
        elif self.operator == "between":
            object.__setattr__(self, "value", self._range_value())
        elif self.operator in RANKS:
            _check_int(f"filter {self.field} {self.operator}", self.value, minimum=1)
            object.__setattr__(self, "value", int(cast(int, self.value)))
        else:
            object.__setattr__(self, "value", self._number_value())

    def _symbol_value(self) -> str | tuple[str, ...]:
        if self.operator in MEMBERSHIP:
            values = self.value
            if isinstance(values, str) or not isinstance(values, list | tuple) or not values:
                raise SpecError(f"filter symbol {self.operator}: value must be a list of symbols")
            if not all(isinstance(v, str) and v for v in values):
                raise SpecError(f"filter symbol {self.operator}: every symbol must be a string")
            return tuple(str(v) for v in values)
        if self.operator not in ("==", "!="):
            raise SpecError(
                f"filter symbol: operator must be ==, !=, in or not_in, not {self.operator}"
            )
        if not isinstance(self.value, str) or not self.value:
            raise SpecError(f"filter symbol {self.operator}: value must be a symbol string")
        return self.value

    def _range_value(self) -> tuple[float, float]:
        bounds = self.value
        where = f"filter {self.field} between"
        if isinstance(bounds, str) or not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise SpecError(f"{where}: value must be [low, high]")
        if not all(_finite_number(b) for b in bounds):
            raise SpecError(f"{where}: value must be finite numbers, got {list(bounds)}")
        low, high = float(cast(float, bounds[0])), float(cast(float, bounds[1]))
        if not low <= high:
            raise SpecError(f"{where}: low must be <= high, got {list(bounds)}")
        return low, high

    def _number_value(self) -> float:
        if self.operator in MEMBERSHIP:
            raise SpecError(f"filter {self.field}: operator {self.operator} needs field 'symbol'")
        if not _finite_number(self.value):
            raise SpecError(f"filter {self.field} {self.operator}: value must be a finite number")
        return float(cast(float, self.value))

    def keep(self, stats: Mapping[str, Mapping[str, float | str]]) -> list[str]:
        """The symbols of ``stats`` (symbol -> training-window statistics, in listed order)
        that pass this filter."""
        symbols = list(stats)
        if self.operator in RANKS:
            count = int(cast(int, self.value))
            values = [float(stats[s][self.field]) for s in symbols]
            sign = -1.0 if self.operator == "top_n" else 1.0
            order = sorted(range(len(symbols)), key=lambda i: (sign * values[i], i))
            chosen = set(order[:count])
            return [s for i, s in enumerate(symbols) if i in chosen]
        return [s for s in symbols if self.accepts(stats[s])]

    def accepts(self, stats: Mapping[str, float | str]) -> bool:
        """Does a symbol with these training-window statistics pass the filter? (Not for
        ``top_n``/``bottom_n``, which compare symbols: use ``keep``.)"""
        actual = stats[self.field]
        if self.operator in MEMBERSHIP:
            assert isinstance(self.value, tuple)  # __post_init__ made it a tuple of symbols
            return (actual in self.value) == (self.operator == "in")
        if self.operator == "between":
            low, high = cast(tuple[float, float], self.value)
            return bool(low <= float(actual) <= high)
        if self.operator in RANKS:
            raise ValueError(f"filter {self.field} {self.operator} ranks symbols: use keep()")
        return bool(_COMPARE[self.operator](actual, self.value))

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "operator": self.operator, "value": value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Filter:
        return cls(**_exact_keys(data, ("field", "operator", "value"), (), "filter"))


@dataclass(frozen=True)
class UniverseSpec:
    """Which instruments a strategy trades.

    ``static``: the listed symbols after the filters (for pair templates, consecutive
    symbols form the pairs, and a pair survives only if both pass; a cross-sectional
    template trades them all as one book). ``cointegrated_pairs``:
    the listed symbols after the filters are candidates; pairs whose log closes pass the
    Engle-Granger test over the training window (p < ``max_p_value``) are kept, best first,
    at most ``max_pairs``. ``source`` is the data source the bars come from. ``listed``
    names the shipped list (``evotrader/data/lists``) the symbols were drawn from (a search
    may since have dropped or added some), so the audit can hold the list's as-of date
    against the backtest (see ``UniverseSpec.named``).
    """

    symbols: tuple[str, ...]
    kind: str = "static"
    source: str = "embedded"
    filters: tuple[Filter, ...] = ()
    max_pairs: int = 1
    max_p_value: float = 0.05
    listed: str = ""

    def __post_init__(self) -> None:
        symbols = self.symbols
        if isinstance(symbols, str) or not isinstance(symbols, list | tuple) or not symbols:
            raise SpecError(f"universe symbols must be a non-empty list, got {symbols!r}")
        if not all(isinstance(s, str) and s for s in symbols):
            raise SpecError(f"universe symbols must be non-empty strings, got {list(symbols)}")
        if len(set(symbols)) != len(symbols):
            raise SpecError(f"universe symbols repeat: {list(symbols)}")
        object.__setattr__(self, "symbols", tuple(symbols))
        if self.kind not in UNIVERSE_KINDS:
            raise SpecError(
                f"universe kind {self.kind!r} is unknown; known: {list(UNIVERSE_KINDS)}"
            )
        if not isinstance(self.source, str) or not self.source:
            raise SpecError(f"universe source must be a data source name, got {self.source!r}")
        filters = tuple(self.filters)
        if not all(isinstance(f, Filter) for f in filters):
            raise SpecError("universe filters must be Filter objects (use from_dict for JSON)")
        object.__setattr__(self, "filters", filters)
        _check_int("universe max_pairs", self.max_pairs, minimum=1)
        if isinstance(self.max_p_value, bool) or not isinstance(self.max_p_value, Real):
            raise SpecError(f"universe max_p_value must be a number, got {self.max_p_value!r}")
        if not 0.0 < self.max_p_value < 1.0:
            raise SpecError(f"universe max_p_value must lie in (0, 1), got {self.max_p_value}")
        object.__setattr__(self, "max_p_value", float(self.max_p_value))
        if self.kind == "cointegrated_pairs" and len(self.symbols) < 2:
            raise SpecError("a cointegrated_pairs universe needs at least 2 candidate symbols")
        if not isinstance(self.listed, str):
            raise SpecError(f"universe listed must be a list name, got {self.listed!r}")
        if self.listed:
            try:
                named_list(self.listed)
            except DataError as error:
                raise SpecError(f"universe listed: {error}") from None

    @classmethod
    def named(cls, name: str, **options: Any) -> UniverseSpec:
        """Every symbol of the shipped list ``name``, from the list's data source unless
        ``source`` is given; ``options`` are the other fields (kind, filters...)."""
        try:
            named = named_list(name)
        except DataError as error:
            raise SpecError(f"universe: {error}") from None
        return cls(
            symbols=named.symbols,
            source=options.pop("source", named.source),
            listed=name,
            **options,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbols": list(self.symbols),
            "kind": self.kind,
            "source": self.source,
            "filters": [f.to_dict() for f in self.filters],
            "max_pairs": self.max_pairs,
            "max_p_value": self.max_p_value,
            **({"listed": self.listed} if self.listed else {}),  # older ids stay unchanged
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UniverseSpec:
        optional = ("kind", "source", "filters", "max_pairs", "max_p_value", "listed")
        values = _exact_keys(data, ("symbols",), optional, "universe")
        if "filters" in values:
            raw = values["filters"]
            if not isinstance(raw, list):
                raise SpecError(f"universe filters must be a list, got {type(raw).__name__}")
            values["filters"] = tuple(Filter.from_dict(_mapping(f, "filter")) for f in raw)
        return cls(**values)


@dataclass(frozen=True)
class RiskParams:
    """Sizing and exits applied on top of a template's targets, identically in every engine.

    ``position_size`` scales the template's target (a fraction of each leg's capital).
    ``allow_short=False`` turns short targets into flat. ``max_positions`` keeps at most
    that many legs of a book open (the strongest targets, lower column first on ties).
    ``sizing`` scales each target further, causally and in quarter steps (so the bot can
    hold exactly what the backtest held): ``fixed`` not at all; ``volatility_target`` by
    ``target_vol`` over the leg's annualised volatility of the last ``sizing_window`` bars;
    ``kelly`` by the Kelly fraction (mean over variance) of the book's own unit returns over
    the last ``sizing_window`` bars, capped at ``kelly_cap`` and floored at 0. Exits are
    checked at each close against the trade's return since the close that opened it:
    ``stop_loss`` and ``take_profit`` (fractions), ``trailing_stop`` (a fall of that much
    from the trade's best close) and ``max_holding_bars``. After an exit the position stays
    flat until the template's signal changes side.
    """

    position_size: float = 1.0
    allow_short: bool = True
    stop_loss: float | None = None
    take_profit: float | None = None
    max_holding_bars: int | None = None
    trailing_stop: float | None = None
    max_positions: int | None = None
    sizing: str = "fixed"
    target_vol: float = 0.15
    kelly_cap: float = 0.5
    sizing_window: int = 63

    def __post_init__(self) -> None:
        _check_float("risk position_size", self.position_size, 0.0, 1.0, low_open=True)
        object.__setattr__(self, "position_size", float(self.position_size))
        if not isinstance(self.allow_short, bool):
            raise SpecError(f"risk allow_short must be true or false, got {self.allow_short!r}")
        for name, high in (("stop_loss", 1.0), ("take_profit", 10.0), ("trailing_stop", 1.0)):
            value = getattr(self, name)
            if value is not None:
                _check_float(f"risk {name}", value, 0.0, high, low_open=True)
                object.__setattr__(self, name, float(value))
        if self.max_holding_bars is not None:
            _check_int("risk max_holding_bars", self.max_holding_bars, minimum=1)
        if self.max_positions is not None:
            _check_int("risk max_positions", self.max_positions, minimum=1)
        if self.sizing not in SIZING_METHODS:
            raise SpecError(
                f"risk sizing {self.sizing!r} is unknown; known: {list(SIZING_METHODS)}"
            )
        _check_float("risk target_vol", self.target_vol, 0.0, 2.0, low_open=True)
        _check_float("risk kelly_cap", self.kelly_cap, 0.0, 1.0, low_open=True)
        object.__setattr__(self, "target_vol", float(self.target_vol))
        object.__setattr__(self, "kelly_cap", float(self.kelly_cap))
        _check_int("risk sizing_window", self.sizing_window, minimum=5)

    @property
    def has_exits(self) -> bool:
        exits = (self.stop_loss, self.take_profit, self.trailing_stop, self.max_holding_bars)
        return any(v is not None for v in exits)

    def to_dict(self) -> dict[str, Any]:
        """Every field, except the newer ones at their defaults, so the ids of specs written
        before those fields existed stay what they were."""
        defaults = RiskParams.__dataclass_fields__
        return {
            name: value
            for name, value in asdict(self).items()
            if name in _FIRST_RISK_FIELDS or value != defaults[name].default
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskParams:
        return cls(**_exact_keys(data, (), tuple(cls.__dataclass_fields__), "risk"))


SIZING_METHODS: tuple[str, ...] = ("fixed", "volatility_target", "kelly")
_FIRST_RISK_FIELDS = (
    "position_size",
    "allow_short",
    "stop_loss",
    "take_profit",
    "max_holding_bars",
)


COMBINATIONS: tuple[str, ...] = ("equal_weight", "score_rank", "intersection")
MAX_MEMBERS = 4  # templates combined with a spec's own: more is a portfolio, not a rule


@dataclass(frozen=True)
class Member:
    """Another template, with its parameters, whose targets a spec combines with its own."""

    template: str
    parameters: dict[str, int | float]

    def __post_init__(self) -> None:
        template = _known_template(self.template, "member ")
        object.__setattr__(self, "parameters", _checked_parameters(template, self.parameters))

    @property
    def info(self) -> Template:
        return default_knowledge().template(self.template)

    @classmethod
    def build(cls, template: str, parameters: Mapping[str, int | float] | None = None) -> Member:
        """A member with the template's defaults for every parameter not given."""
        defaults = _known_template(template, "member ").defaults()
        return cls(template, defaults | dict(parameters or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "parameters": dict(self.parameters)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Member:
        return cls(**_exact_keys(data, ("template", "parameters"), (), "member"))


@dataclass(frozen=True)
class StrategySpec:
    """A template instantiated with parameters, a universe, risk rules and lineage.

    ``parameters`` must hold exactly the template's parameters (``build`` fills defaults).
    ``members`` are other templates (same legs) whose targets are combined with this one's
    by ``combine`` (see ``signals.combined``): ``equal_weight`` averages them (in quarter
    steps), ``score_rank`` holds the legs with the strongest summed score at full size,
    ``intersection`` holds a leg only where every template holds it on the same side; the
    risk rules apply to the combined targets, and optimisers tune only the spec's own
    ``parameters``. Lineage: ``parent`` is the spec_id this one was derived from,
    ``generation`` its depth, ``created_by`` who made it (``human``, ``offline``,
    ``llm:<model>``...), ``rationale`` why. ``spec_id`` hashes the content (template,
    parameters, universe, risk, members, combine), not the lineage, so the same strategy
    proposed twice has one id.
    """

    template: str
    parameters: dict[str, int | float]
    universe: UniverseSpec
    risk: RiskParams = field(default_factory=RiskParams)
    members: tuple[Member, ...] = ()
    combine: str = "equal_weight"
    parent: str | None = None
    generation: int = 0
    created_by: str = "human"
    rationale: str = ""

    def __post_init__(self) -> None:
        template = _known_template(self.template)
        object.__setattr__(self, "parameters", _checked_parameters(template, self.parameters))
        if not isinstance(self.universe, UniverseSpec):
            raise SpecError("universe must be a UniverseSpec (use from_dict for JSON)")
        if not isinstance(self.risk, RiskParams):
            raise SpecError("risk must be RiskParams (use from_dict for JSON)")
        self._check_legs(template)
        self._check_members(template)
        if self.parent is not None and (not isinstance(self.parent, str) or not self.parent):
            raise SpecError(f"parent must be a spec id string or null, got {self.parent!r}")
        _check_int("generation", self.generation, minimum=0)
        if not isinstance(self.created_by, str) or not self.created_by:
            raise SpecError(f"created_by must be a non-empty string, got {self.created_by!r}")
        if not isinstance(self.rationale, str):
            raise SpecError(f"rationale must be a string, got {type(self.rationale).__name__}")

    def _check_legs(self, template: Template) -> None:
        kind, count = self.universe.kind, len(self.universe.symbols)
        if template.legs != 2 and kind != "static":
            raise SpecError(
                f"template {self.template} trades {template.legs_text}: use a static universe"
            )
        if template.cross_sectional and count < MIN_UNIVERSE_LEGS:
            raise SpecError(
                f"template {self.template} ranks a universe: list at least "
                f"{MIN_UNIVERSE_LEGS} symbols, got {count}"
            )
        if template.legs == 2:
            if kind == "static" and count % 2:
                raise SpecError(
                    f"template {self.template} trades pairs: a static universe needs an even "
                    f"number of symbols (consecutive pairs), got {count}"
                )
            if not self.risk.allow_short:
                raise SpecError(
                    f"template {self.template} shorts one leg: allow_short must be true"
                )

    def _check_members(self, template: Template) -> None:
        members = self.members
        if isinstance(members, list):
            members = tuple(members)
        if not isinstance(members, tuple) or not all(isinstance(m, Member) for m in members):
            raise SpecError("members must be Member objects (use from_dict for JSON)")
        object.__setattr__(self, "members", members)
        if len(members) > MAX_MEMBERS:
            raise SpecError(f"a spec combines at most {MAX_MEMBERS} members, got {len(members)}")
        if self.combine not in COMBINATIONS:
            raise SpecError(f"combine {self.combine!r} is unknown; known: {list(COMBINATIONS)}")
        seen = {(self.template, json.dumps(self.parameters, sort_keys=True))}
        for member in members:
            if member.info.legs != template.legs:
                raise SpecError(
                    f"member {member.template} trades {member.info.legs_text}, but "
                    f"{self.template} trades {template.legs_text}: combine like with like"
                )
            key = (member.template, json.dumps(member.parameters, sort_keys=True))
            if key in seen:
                raise SpecError(f"member {member.template} {member.parameters} is repeated")
            seen.add(key)

    @property
    def templates(self) -> tuple[str, ...]:
        """The spec's own template, then its members' (what the spec's targets are made of)."""
        return (self.template, *(m.template for m in self.members))

    @classmethod
    def build(
        cls,
        template: str,
        universe: UniverseSpec | list[str] | tuple[str, ...],
        parameters: Mapping[str, int | float] | None = None,
        risk: RiskParams | None = None,
        **lineage: Any,
    ) -> StrategySpec:
        """A spec with the template's defaults for every parameter not given."""
        defaults = _known_template(template).defaults()
        if not isinstance(universe, UniverseSpec):
            universe = UniverseSpec(symbols=tuple(universe))
        return cls(
            template=template,
            parameters=defaults | dict(parameters or {}),
            universe=universe,
            risk=risk or RiskParams(),
            **lineage,
        )

    @property
    def info(self) -> Template:
        """The knowledge-base entry of this spec's template."""
        return default_knowledge().template(self.template)

    def with_parameters(self, parameters: Mapping[str, int | float]) -> StrategySpec:
        """The same spec with some parameters replaced (validated again)."""
        return replace(self, parameters=self.parameters | dict(parameters))

    @property
    def spec_id(self) -> str:
        content = {k: v for k, v in self.to_dict().items() if k in _CONTENT_FIELDS}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Everything; a spec without members leaves ``members`` and ``combine`` out, so its
        id is the one it had before combinations existed."""
        combination = (
            {"members": [m.to_dict() for m in self.members], "combine": self.combine}
            if self.members
            else {}
        )
        return {
            "template": self.template,
            "parameters": dict(self.parameters),
            "universe": self.universe.to_dict(),
            "risk": self.risk.to_dict(),
            **combination,
            "parent": self.parent,
            "generation": self.generation,
            "created_by": self.created_by,
            "rationale": self.rationale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrategySpec:
        optional = tuple(f for f in cls.__dataclass_fields__ if f not in _REQUIRED_FIELDS)
        values = _exact_keys(data, _REQUIRED_FIELDS, optional, "spec")
        values["universe"] = UniverseSpec.from_dict(_mapping(values["universe"], "universe"))
        if "risk" in values:
            values["risk"] = RiskParams.from_dict(_mapping(values["risk"], "risk"))
        if "members" in values:
            raw = values["members"]
            if not isinstance(raw, list):
                raise SpecError(f"spec members must be a list, got {type(raw).__name__}")
            values["members"] = tuple(Member.from_dict(_mapping(m, "member")) for m in raw)
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> StrategySpec:
        return cls.from_dict(_mapping(_loads(text), "spec"))


_REQUIRED_FIELDS = ("template", "parameters", "universe")
_CONTENT_FIELDS = ("template", "parameters", "universe", "risk", "members", "combine")


@dataclass(frozen=True, eq=False)
class StrategyResult:
    """One phase's verdict on one spec, with everything an analyst needs to read it.

    ``metrics`` are after costs (evotrader.backtest.metrics formulas) on bars the phase did
    not fit its parameters on (walk-forward folds, or the validation split),
    ``benchmark`` is buy-and-hold on the same bars. ``parameters`` are the ones the phase
    settled on (for walk-forward screening: the last fold's). ``regimes`` maps a regime
    name to that regime's results. ``failure_reason`` is the analyst-style text (empty when
    passed) and ``failure_details`` its individual findings. ``diagnostics`` holds anything
    JSON-able (folds, in-sample Sharpe...). ``eq=False``: compare ``to_json()`` instead.
    """

    spec_id: str
    phase: str
    passed: bool
    metrics: dict[str, float]
    benchmark: dict[str, float]
    parameters: dict[str, int | float]
    equity: pd.Series
    trades: pd.DataFrame
    regimes: dict[str, dict[str, float]] = field(default_factory=dict)
    fees: float = 0.0
    slippage: float = 0.0
    failure_reason: str = ""
    failure_details: tuple[str, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def drawdown(self) -> pd.Series:
        """Fractional distance below the running peak of equity (<= 0)."""
        return (self.equity / self.equity.cummax() - 1.0).rename("drawdown")

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_id": self.spec_id,
            "phase": self.phase,
            "passed": self.passed,
            "metrics": _encode(self.metrics),
            "benchmark": _encode(self.benchmark),
            "parameters": dict(self.parameters),
            "equity": {
                "index": [t.isoformat() for t in self.equity.index],
                "values": _encode(self.equity.tolist()),
            },
            "trades": _frame_to_dict(self.trades),
            "regimes": _encode(self.regimes),
            "fees": _encode(self.fees),
            "slippage": _encode(self.slippage),
            "failure_reason": self.failure_reason,
            "failure_details": list(self.failure_details),
            "diagnostics": _encode(self.diagnostics),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrategyResult:
        values = _exact_keys(data, tuple(cls.__dataclass_fields__), (), "result")
        equity = _mapping(values["equity"], "result equity")
        values["equity"] = pd.Series(
            _decode(equity["values"]),
            index=pd.DatetimeIndex(pd.to_datetime(equity["index"]), name="timestamp"),
            name="equity",
            dtype=np.float64,
        )
        values["trades"] = _frame_from_dict(_mapping(values["trades"], "result trades"))
        for name in ("metrics", "benchmark", "regimes", "fees", "slippage", "diagnostics"):
            values[name] = _decode(values[name])
        values["failure_details"] = tuple(values["failure_details"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> StrategyResult:
        return cls.from_dict(_mapping(_loads(text), "result"))


def _known_template(template_id: Any, what: str = "") -> Template:
    """The knowledge base's template ``template_id``; ``what`` prefixes the error."""
    if not isinstance(template_id, str):
        raise SpecError(f"{what}template must be a template id string, got {template_id!r}")
    try:
        return default_knowledge().template(template_id)
    except KnowledgeError as exc:
        raise SpecError(f"{what.strip()}: {exc}" if what else str(exc)) from None


def _checked_parameters(template: Template, parameters: Any) -> dict[str, int | float]:
    if not isinstance(parameters, Mapping):
        raise SpecError(f"{template.id}: parameters must be a mapping of name -> value")
    unknown = sorted(set(parameters) - set(template.parameters))
    if unknown:
        raise SpecError(
            f"{template.id}: unknown parameter(s) {unknown}; it takes {list(template.parameters)}"
        )
    missing = [name for name in template.parameters if name not in parameters]
    if missing:
        raise SpecError(f"{template.id}: missing parameter(s) {missing}")
    checked: dict[str, int | float] = {}
    for name, spec in template.parameters.items():
        value = parameters[name]
        where = f"{template.id}: parameter {name}"
        if spec.type == "int":
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise SpecError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, Real):
                raise SpecError(f"{where} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise SpecError(f"{where} must be finite, got {value}")
        if not spec.min <= value <= spec.max:
            raise SpecError(f"{where}={value} is outside its bounds [{spec.min}, {spec.max}]")
        checked[name] = value
    for constraint in template.constraints:
        if not constraint.holds(checked):
            values = f"{constraint.left}={checked[constraint.left]}, "
            values += f"{constraint.right}={checked[constraint.right]}"
            raise SpecError(f"{template.id}: parameters break '{constraint}' ({values})")
    return checked


def _finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise SpecError(f"{name} must be a finite number, got {value!r}")
    number = float(value)
    if (number <= low if low_open else number < low) or number > high:
        bracket = "(" if low_open else "["
        raise SpecError(f"{name} must lie in {bracket}{low}, {high}], got {value}")


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _exact_keys(
    data: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...], what: str
) -> dict[str, Any]:
    data = _mapping(data, what)
    missing = [k for k in required if k not in data]
    if missing:
        raise SpecError(f"{what}: missing key(s) {missing}")
    unknown = sorted(map(str, set(data) - set(required) - set(optional)))
    if unknown:
        raise SpecError(f"{what}: unknown key(s) {unknown}; allowed: {[*required, *optional]}")
    return dict(data)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise SpecError(f"not valid JSON: {exc}") from exc


def _encode(value: Any) -> Any:
    """JSON-able copy of ``value`` with inf/nan floats as {"$float": "inf"} and numpy scalars
    as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_MARKER: repr(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {_FLOAT_MARKER}:
            return float(value[_FLOAT_MARKER])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _frame_to_dict(frame: pd.DataFrame) -> dict[str, Any]:
    columns: dict[str, list[Any]] = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_any_dtype(column):
            columns[str(name)] = [t.isoformat() for t in column]
        else:
            columns[str(name)] = _encode(column.tolist())
    dtypes = [str(dtype) for dtype in frame.dtypes]
    return {"columns": [str(c) for c in frame.columns], "dtypes": dtypes, "data": columns}


def _frame_from_dict(data: Mapping[str, Any]) -> pd.DataFrame:
    columns = {}
    for name, dtype in zip(data["columns"], data["dtypes"], strict=True):
        values = _decode(data["data"][name])
        if dtype.startswith("datetime64"):
            columns[name] = pd.to_datetime(pd.Series(values, dtype=object)).astype(dtype)
        else:
            columns[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(columns, columns=list(data["columns"]))
