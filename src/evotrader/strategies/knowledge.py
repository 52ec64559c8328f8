"""The strategy knowledge base: templates and concept notes, markdown with YAML front matter.

The files ship inside the package (``evotrader/knowledge``, declared as package data), so an
installed wheel finds them exactly as a source checkout does; the repository's top-level
``knowledge/`` is a link to that folder. Templates live at ``<category>/<name>.md`` and their
``id`` is that path without ``.md``; concept notes live at ``concepts/<name>.md``. Every file
is checked when loaded, and the first problem raises ``KnowledgeError`` naming the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

CATEGORIES: tuple[str, ...] = (
    "momentum",
    "mean-reversion",
    "trend-following",
    "breakout",
    "volatility",
    "pairs",
    "factor",
    "seasonal",
    "low-volatility",
    "quality",
)
# ``legs: universe`` in a template's front matter: the rule ranks every symbol of its book
# against the others (cross-sectional) and returns one target per symbol.
UNIVERSE_LEGS = 0
MIN_UNIVERSE_LEGS = 2  # a cross-section of one symbol ranks nothing
CONCEPTS_DIR = "concepts"
PARAMETER_TYPES: tuple[str, ...] = ("int", "float")
DIRECTIONS: tuple[str, ...] = ("long-short", "long-only")
CONSTRAINT_OPERATORS: tuple[str, ...] = ("<", "<=", "!=")

_TEMPLATE_KEYS = (
    "id",
    "name",
    "category",
    "summary",
    "rule",
    "legs",
    "direction",
    "parameters",
    "constraints",
    "universes",
    "frequencies",
    "failure_modes",
    "literature",
)
_CONCEPT_KEYS = ("id", "title", "summary", "related")
_PARAMETER_KEYS = ("type", "min", "max", "default", "description")
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.DOTALL)
_CONSTRAINT = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(<=|<|!=)\s*([a-z_][a-z0-9_]*)\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class KnowledgeError(ValueError):
    """A knowledge file is missing, malformed or inconsistent; the message names the file."""


@dataclass(frozen=True)
class ParameterSpec:
    """One tunable parameter of a template: its type, inclusive bounds and default."""

    name: str
    type: str
    min: float
    max: float
    default: float
    description: str

    def grid(self, points: int) -> list[float]:
        """``points`` values spread evenly over [min, max] (ints rounded, duplicates dropped)."""
        values = [self.min + (self.max - self.min) * i / max(points - 1, 1) for i in range(points)]
        if self.type == "int":
            return sorted({round(v) for v in values})
        return sorted(set(values))

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "integer" if self.type == "int" else "number",
            "minimum": self.min,
            "maximum": self.max,
            "default": self.default,
            "description": self.description,
        }


@dataclass(frozen=True)
class Constraint:
    """A relation between two parameters of one template, e.g. ``fast < slow``."""

    left: str
    operator: str
    right: str

    def holds(self, parameters: Mapping[str, float]) -> bool:
        a, b = parameters[self.left], parameters[self.right]
        return {"<": a < b, "<=": a <= b, "!=": a != b}[self.operator]

    def __str__(self) -> str:
        return f"{self.left} {self.operator} {self.right}"


@dataclass(frozen=True)
class Template:
    """A documented strategy family member the generator may instantiate (never free code)."""

    id: str
    name: str
    category: str
    summary: str
    rule: str
    legs: int  # 1, 2, or UNIVERSE_LEGS for a cross-sectional rule
    direction: str
    parameters: dict[str, ParameterSpec]
    constraints: tuple[Constraint, ...]
    universes: tuple[str, ...]
    frequencies: tuple[str, ...]
    failure_modes: tuple[str, ...]
    literature: tuple[str, ...]
    body: str
    path: str

    @property
    def cross_sectional(self) -> bool:
        """Does the rule rank every symbol of its book (``legs: universe``)?"""
        return self.legs == UNIVERSE_LEGS

    @property
    def legs_text(self) -> str:
        return "every symbol of the universe" if self.cross_sectional else f"{self.legs} leg(s)"

    def defaults(self) -> dict[str, float]:
        return {name: spec.default for name, spec in self.parameters.items()}

    def parameters_json_schema(self) -> dict[str, Any]:
        """JSON schema of this template's parameter object (for LLM tool definitions)."""
        return {
            "type": "object",
            "properties": {name: p.json_schema() for name, p in self.parameters.items()},
            "required": list(self.parameters),
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class Concept:
    """A note on a research concept (look-ahead bias, costs...) the generator can read."""

    id: str
    title: str
    summary: str
    related: tuple[str, ...]
    body: str
    path: str


@dataclass(frozen=True)
class Knowledge:
    """Every template and concept note, keyed by id."""

    root: str
    templates: dict[str, Template]
    concepts: dict[str, Concept]

    def template(self, template_id: str) -> Template:
        found = self.templates.get(template_id)
        if found is None:
            raise KnowledgeError(
                f"unknown template {template_id!r}; known templates: {', '.join(self.templates)}"
            )
        return found

    def by_category(self, category: str) -> list[Template]:
        return [t for t in self.templates.values() if t.category == category]


def default_root() -> Path:
    """Where the shipped knowledge base lives: ``evotrader/knowledge`` inside the package."""
    return Path(str(resources.files("evotrader") / "knowledge"))


@cache
def default_knowledge() -> Knowledge:
    """The shipped knowledge base, loaded and validated once per process."""
    return load_knowledge(default_root())


def load_knowledge(root: str | Path | None = None) -> Knowledge:
    """Load and validate every template and concept note under ``root`` (default: shipped).

    Markdown files other than ``README.md`` are read; those under ``concepts/`` are concept
    notes, the rest templates. Concept ``related`` links must name existing ids.
    """
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        raise KnowledgeError(f"knowledge folder {root} does not exist")
    templates: dict[str, Template] = {}
    concepts: dict[str, Concept] = {}
    for path in sorted(root.rglob("*.md")):
        relative = path.relative_to(root)
        if relative.name == "README.md":
            continue
        meta, body = _read(path)
        expected_id = relative.with_suffix("").as_posix()
        if relative.parts[0] == CONCEPTS_DIR:
            concepts[expected_id] = _concept(meta, body, path, expected_id)
        else:
            templates[expected_id] = _template(meta, body, path, expected_id)
    if not templates:
        raise KnowledgeError(f"knowledge folder {root} holds no templates")
    for concept in concepts.values():
        unknown = [r for r in concept.related if r not in templates and r not in concepts]
        if unknown:
            raise KnowledgeError(f"{concept.path}: 'related' names unknown ids {unknown}")
    return Knowledge(root=str(root), templates=templates, concepts=concepts)


def _read(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise KnowledgeError(f"{path}: no YAML front matter (the file must start with '---')")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{path}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise KnowledgeError(f"{path}: front matter must be a mapping, got {type(meta).__name__}")
    body = match.group(2).strip()
    if not body:
        raise KnowledgeError(f"{path}: the markdown body after the front matter is empty")
    return meta, body


def _keys(meta: dict[str, Any], required: tuple[str, ...], where: str) -> None:
    missing = [k for k in required if k not in meta]
    if missing:
        raise KnowledgeError(f"{where}: missing required key(s) {missing}")
    unknown = sorted(map(str, set(meta) - set(required)))
    if unknown:
        raise KnowledgeError(f"{where}: unknown key(s) {unknown}; allowed: {list(required)}")


def _text(meta: dict[str, Any], key: str, path: Path) -> str:
    value = meta[key]
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(f"{path}: {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _texts(
    meta: dict[str, Any], key: str, path: Path, allow_empty: bool = False
) -> tuple[str, ...]:
    value = meta[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise KnowledgeError(f"{path}: {key!r} must be a list of non-empty strings, got {value!r}")
    if not value and not allow_empty:
        raise KnowledgeError(f"{path}: {key!r} must not be empty")
    return tuple(v.strip() for v in value)


def _template(meta: dict[str, Any], body: str, path: Path, expected_id: str) -> Template:
    _keys(meta, _TEMPLATE_KEYS, str(path))
    template_id = _text(meta, "id", path)
    if template_id != expected_id:
        raise KnowledgeError(f"{path}: id {template_id!r} does not match its path {expected_id!r}")
    category = _text(meta, "category", path)
    if category not in CATEGORIES:
        raise KnowledgeError(f"{path}: unknown category {category!r}; known: {list(CATEGORIES)}")
    if template_id.split("/")[0] != category or template_id.count("/") != 1:
        raise KnowledgeError(f"{path}: id {template_id!r} must be '{category}/<name>'")
    legs = UNIVERSE_LEGS if meta["legs"] == "universe" else meta["legs"]
    if legs not in (1, 2, UNIVERSE_LEGS) or isinstance(legs, bool):
        raise KnowledgeError(
            f"{path}: 'legs' must be 1 (one instrument), 2 (a pair) or universe "
            f"(cross-sectional), got {meta['legs']!r}"
        )
    direction = _text(meta, "direction", path)
    if direction not in DIRECTIONS:
        raise KnowledgeError(f"{path}: 'direction' must be one of {list(DIRECTIONS)}")
    parameters = _parameters(meta["parameters"], path)
    constraints = tuple(
        _constraint(text, parameters, path) for text in _texts(meta, "constraints", path, True)
    )
    defaults = {name: p.default for name, p in parameters.items()}
    for constraint in constraints:
        if not constraint.holds(defaults):
            raise KnowledgeError(f"{path}: the defaults break constraint '{constraint}'")
    return Template(
        id=template_id,
        name=_text(meta, "name", path),
        category=category,
        summary=_text(meta, "summary", path),
        rule=_text(meta, "rule", path),
        legs=legs,
        direction=direction,
        parameters=parameters,
        constraints=constraints,
        universes=_texts(meta, "universes", path),
        frequencies=_texts(meta, "frequencies", path),
        failure_modes=_texts(meta, "failure_modes", path),
        literature=_texts(meta, "literature", path),
        body=body,
        path=str(path),
    )


def _concept(meta: dict[str, Any], body: str, path: Path, expected_id: str) -> Concept:
    _keys(meta, _CONCEPT_KEYS, str(path))
    concept_id = _text(meta, "id", path)
    if concept_id != expected_id:
        raise KnowledgeError(f"{path}: id {concept_id!r} does not match its path {expected_id!r}")
    return Concept(
        id=concept_id,
        title=_text(meta, "title", path),
        summary=_text(meta, "summary", path),
        related=_texts(meta, "related", path, allow_empty=True),
        body=body,
        path=str(path),
    )


def _parameters(raw: Any, path: Path) -> dict[str, ParameterSpec]:
    if not isinstance(raw, dict) or not raw:
        raise KnowledgeError(f"{path}: 'parameters' must be a non-empty mapping of name -> spec")
    return {name: _parameter(name, spec, path) for name, spec in raw.items()}


def _parameter(name: Any, raw: Any, path: Path) -> ParameterSpec:
    where = f"{path}: parameter {name!r}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise KnowledgeError(f"{where}: names must be lower_snake_case identifiers")
    if not isinstance(raw, dict):
        raise KnowledgeError(f"{where}: must be a mapping with keys {list(_PARAMETER_KEYS)}")
    _keys(raw, _PARAMETER_KEYS, where)
    kind = raw["type"]
    if kind not in PARAMETER_TYPES:
        raise KnowledgeError(f"{where}: type must be one of {list(PARAMETER_TYPES)}, got {kind!r}")
    values = {}
    for key in ("min", "max", "default"):
        value = raw[key]
        wrong = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong or (kind == "int" and not isinstance(value, int)):
            raise KnowledgeError(f"{where}: {key} must be an {kind} number, got {value!r}")
        if not math.isfinite(value):
            raise KnowledgeError(f"{where}: {key} must be finite, got {value!r}")
        values[key] = value if kind == "int" else float(value)
    if not values["min"] < values["max"]:
        raise KnowledgeError(f"{where}: min {values['min']} must be below max {values['max']}")
    if not values["min"] <= values["default"] <= values["max"]:
        raise KnowledgeError(
            f"{where}: default {values['default']} lies outside [{values['min']}, {values['max']}]"
        )
    description = raw["description"]
    if not isinstance(description, str) or not description.strip():
        raise KnowledgeError(f"{where}: description must be a non-empty string")
    return ParameterSpec(name=name, type=kind, description=description.strip(), **values)


def _constraint(text: str, parameters: dict[str, ParameterSpec], path: Path) -> Constraint:
    match = _CONSTRAINT.match(text)
    if match is None:
        raise KnowledgeError(
            f"{path}: constraint {text!r} must read '<param> <op> <param>' "
            f"with op in {list(CONSTRAINT_OPERATORS)}"
        )
    left, operator, right = match.groups()
    unknown = [n for n in (left, right) if n not in parameters]
    if unknown:
        raise KnowledgeError(f"{path}: constraint {text!r} names unknown parameter(s) {unknown}")
    return Constraint(left, operator, right)
