"""The layer map holds: no module imports a package above its own, and no module-level import cycle.

Layers, bottom to top (the picture in the README's layout section); a module may import its own
layer and the layers below it, never a layer above:

    0 core           evotrader (the package root: ``__version__``), core/
                     orders, fills, positions, instruments, the Policy protocol, the checkpoint
                     format, write_atomic
    1 data           data/
    2 market         env/
    3 components     models/, memory/, reasoning/
    4 agents         agents/, nas/
    5 evaluation     backtest/, risk/
    6 orchestration  training/, strategies/, live/, lifecycle/ (the model registry),
                     config.py (the run configuration)
    7 entry          cli.py, __main__.py (and the run_*.py scripts outside the package)

Both imports at module level and inside functions count for the layer rule (a deferred import
still runs upward); imports under ``if TYPE_CHECKING:`` count too, since they are still a
dependency of the module's meaning. The cycle rule looks at module-level imports only (those
outside ``TYPE_CHECKING``), because only they run when a module is first imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "evotrader"

LAYERS: dict[str, int] = {
    "evotrader": 0,
    "core": 0,
    "data": 1,
    "env": 2,
    "models": 3,
    "memory": 3,
    "reasoning": 3,
    "agents": 4,
    "nas": 4,
    "backtest": 5,
    "risk": 5,
    "training": 6,
    "strategies": 6,
    "live": 6,
    "lifecycle": 6,
    "config": 6,
    "cli": 7,
    "__main__": 7,
}
LAYER_NAMES = (
    "core",
    "data",
    "market",
    "components",
    "agents",
    "evaluation",
    "orchestration",
    "entry",
)

# Upward imports that are known and accepted for now, as (importing module, imported module),
# each with the reason. Empty means the map holds everywhere.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (the deepest one that exists)
    path: Path
    line: int
    # True when it runs as the source module is imported: not in a function, not TYPE_CHECKING
    module_level: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest existing module that ``name`` (a module or a module attribute) points into."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(source: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]

    def targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            return
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base

    def walk(node: ast.AST, module_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in targets(child):
                    target = _resolve(name, modules) if name.startswith("evotrader") else None
                    if target is not None and target != source:
                        yield Import(source, target, path, child.lineno, module_level)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, module_level=False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), False)
                for statement in child.orelse:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), module_level)
            else:
                yield from walk(child, module_level)

    yield from walk(tree, module_level=True)


def _all_imports() -> list[Import]:
    modules = _modules()
    return [found for name, path in modules.items() for found in _imports_of(name, path, modules)]


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    if key not in LAYERS:
        raise AssertionError(f"{module}: no layer assigned; add its package to LAYERS")
    return LAYERS[key]


def _where(found: Import) -> str:
    return f"{found.path.relative_to(PACKAGE_ROOT.parents[1])}:{found.line}"


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        layer_of(module)


def test_no_import_runs_up_the_layers() -> None:
    upward: list[str] = []
    for found in _all_imports():
        below, above = layer_of(found.source), layer_of(found.target)
        if above > below and (found.source, found.target) not in ALLOWED:
            upward.append(
                f"{_where(found)}: {found.source} ({LAYER_NAMES[below]}) imports "
                f"{found.target} ({LAYER_NAMES[above]})"
            )
    upward = sorted(set(upward))  # one line per import statement, not per imported name
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_allowed_exceptions_are_still_needed() -> None:
    edges = {(found.source, found.target) for found in _all_imports()}
    stale = [f"{source} -> {target}" for source, target in ALLOWED if (source, target) not in edges]
    assert not stale, "ALLOWED lists imports that no longer exist: " + ", ".join(stale)


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, dict[str, Import]] = {}
    for found in _all_imports():
        if found.module_level:
            graph.setdefault(found.source, {}).setdefault(found.target, found)

    # Tarjan's strongly connected components, iterative: deep graphs never hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    described = []
    for component in cycles:
        members = set(component)
        edges = [
            f"  {_where(found)}: {source} -> {target}"
            for source in component
            for target, found in sorted(graph.get(source, {}).items())
            if target in members
        ]
        described.append(" <-> ".join(component) + "\n" + "\n".join(edges))
    assert not cycles, "module-level import cycles:\n" + "\n".join(described)
