"""Only shared/storage/ talks to a database: no other module of the service imports a driver or an
adapter module, and only the factory picks an adapter (lazily, by settings)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = ("pynamodb", "pymysql")
ADAPTERS = ("shared.storage.dynamodb", "shared.storage.mysql")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(f"{root}.") for root in roots)


# bench/ writes its fake DynamoDB's items through the DynamoDB adapter (it measures that adapter).
ADAPTER_USERS = ("bench",)


def test_no_module_outside_the_storage_package_imports_a_driver_or_an_adapter():
    offenders = {}
    for package in ("shared", "functions", "local", "bench", "stress"):
        roots = DRIVERS if package in ADAPTER_USERS else (*DRIVERS, *ADAPTERS)
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith("shared/storage/"):
                continue
            bad = sorted(name for name in imported_modules(path) if forbidden(name, roots))
            if bad:
                offenders[relative] = bad
    assert offenders == {}


def test_only_the_factory_imports_an_adapter_and_only_inside_a_function():
    storage = ROOT / "shared" / "storage"
    for path in sorted(storage.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        names = {alias.name for node in top_level if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)}
        adapters = {name for name in names if name.startswith(ADAPTERS)}
        assert adapters == set(), (path.name, adapters)


def test_the_storage_package_init_files_are_empty():
    for path in (ROOT / "shared" / "storage").rglob("__init__.py"):
        assert path.read_text(encoding="utf-8") == "", path
