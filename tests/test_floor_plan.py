"""The floor plan's rules (docs/explanation/architecture.md), read from the source with ``ast``:
no import cycle, the transport knows nothing of Django's models or settings, only the rollups
write the aggregates, and the package root stays small and says what is public."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import django_nexmo_conversion

PACKAGE = Path(django_nexmo_conversion.__file__).parent
NAME = "django_nexmo_conversion"
#: What the transport may import from the package besides itself.
TRANSPORT_MAY_IMPORT = {f"{NAME}.exceptions", f"{NAME}.choices", f"{NAME}.__about__"}
#: The models that hold counted figures, and the calls that write rows.
AGGREGATES = {"ConversionStat", "StatusCount", "StatusCountChange"}
WRITES = {
    "create",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
    "update",
    "delete",
    "save",
}
ROOT_LIMIT = 20
LINE_LIMIT = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts
    }


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Lines under ``if TYPE_CHECKING:``: imports for annotations, never run."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imported(name: str) -> Iterator[str]:
    """The package's modules that ``name`` imports, at the top or inside a function."""
    path = modules()[name]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            # ``from .rollups import rates`` imports the module; ``from .models import X``
            # imports from the module.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base
                for alias in node.names
            ]
        for target in targets:
            while target not in modules() and "." in target:
                target = target.rpartition(".")[0]
            if target in modules() and target not in (name, NAME):
                yield target


@cache
def graph() -> dict[str, frozenset[str]]:
    return {name: frozenset(imported(name)) for name in modules()}


def cycle_through(start: str) -> list[str] | None:
    """An import path from ``start`` back to itself, if there is one."""
    edges = graph()
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in edges[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_import_cycle() -> None:
    cycles = [cycle for name in sorted(modules()) if (cycle := cycle_through(name))]
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_transport_imports_only_itself_exceptions_and_choices() -> None:
    transport = f"{NAME}.transport"
    wrong = {
        (name, target)
        for name, targets in graph().items()
        if name == transport or name.startswith(transport + ".")
        for target in targets
        if not target.startswith(transport) and target not in TRANSPORT_MAY_IMPORT
    }
    assert wrong == set(), f"the transport imports what it must not: {sorted(wrong)}"


def writes_to_aggregates(path: Path) -> list[str]:
    """``ConversionStat.objects....update(...)``, ``StatusCount(...)`` and the like."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in AGGREGATES:
            found.append(f"{path.name}:{node.lineno} builds a {func.id}")
            continue
        if not (isinstance(func, ast.Attribute) and func.attr in WRITES):
            continue
        chain: ast.expr = func.value
        while isinstance(chain, (ast.Attribute, ast.Call, ast.Subscript)):
            chain = chain.func if isinstance(chain, ast.Call) else chain.value
        if isinstance(chain, ast.Name) and chain.id in AGGREGATES:
            found.append(f"{path.name}:{node.lineno} {func.attr}() on {chain.id}")
    return found


def test_only_the_rollups_write_the_aggregates() -> None:
    rollups = f"{NAME}.rollups"
    writers = {
        name: found
        for name, path in modules().items()
        if not (name == rollups or name.startswith(rollups + "."))
        and (found := writes_to_aggregates(path))
    }
    assert writers == {}, f"aggregates written outside rollups/: {writers}"


def test_the_rollups_do_write_the_aggregates() -> None:
    """The check above finds writes at all (it would pass on nothing otherwise)."""
    found = writes_to_aggregates(PACKAGE / "rollups" / "by_status.py")
    assert any("StatusCount" in line for line in found)


def root_modules() -> list[str]:
    return sorted(
        path.stem
        for path in PACKAGE.glob("*.py")
        if path.name not in ("__init__.py", "__about__.py")
    )


def test_the_root_holds_at_most_twenty_modules() -> None:
    assert len(root_modules()) <= ROOT_LIMIT, root_modules()


def test_the_package_docstring_says_which_root_modules_are_public() -> None:
    """Each root module is listed as public or internal in the package's docstring, or is
    visibly internal (a leading underscore)."""
    doc = django_nexmo_conversion.__doc__ or ""
    unlisted = [m for m in root_modules() if not m.startswith("_") and f"``{m}``" not in doc]
    assert unlisted == []


def test_no_module_is_over_five_hundred_lines() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > LINE_LIMIT
    }
    assert long == {}
