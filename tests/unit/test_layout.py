"""The layout rules (docs/design.md, Layout): the product never imports what helps build, run or
measure it, and the product's unit tests run without the offline stack (devstack/)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

from tests.support.paths import REPO

# devstack/ itself and the packages in it (`local`, the emulator; `bench`, the benchmarks).
DEVSTACK = frozenset({"devstack"} | {p.name for p in (REPO / "devstack").iterdir() if (p / "__init__.py").is_file()})
OPERATOR_CLI = "tools"


def imported_modules(source: str) -> set[str]:
    """The absolute module names `source` imports, wherever the import stands (relative ones are the package's own)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO / folder).rglob("*.py"))


def imports_of(files: list[Path], wanted: Callable[[str], bool]) -> list[str]:
    """`file: module` for every import in `files` of a `wanted` module."""
    return [
        f"{path.relative_to(REPO)}: {module}"
        for path in files
        for module in sorted(imported_modules(path.read_text(encoding="utf-8")))
        if wanted(module)
    ]


def in_packages(packages: frozenset[str]) -> Callable[[str], bool]:
    return lambda module: module.split(".")[0] in packages


def test_the_import_scan_sees_every_absolute_import_and_skips_relative_ones() -> None:
    # GIVEN a source importing the emulator at the top, inside a function and by `from`, and a sibling relatively
    source = "import local.cfn, json\nfrom . import sibling\ndef f():\n    from bench.chaos import run\n"
    # WHEN it is scanned
    modules = imported_modules(source)
    # THEN every absolute import is seen, and only those
    assert modules == {"local.cfn", "json", "bench.chaos"}
    # AND the development stack's packages are known by their folders
    assert {"devstack", "local", "bench"} <= DEVSTACK


def test_product_code_never_imports_the_development_stack_or_the_operator_cli() -> None:
    # GIVEN the product's Python code (the handlers and the layer)
    files = python_files("functions", "shared")
    assert any(path.name == "app.py" for path in files) and any(path.parent.name == "categorizer" for path in files)
    # WHEN its imports are scanned, THEN none reaches devstack/ or tools/
    assert imports_of(files, in_packages(DEVSTACK | {OPERATOR_CLI})) == []


def test_unit_tests_and_their_helpers_never_import_the_development_stack() -> None:
    # GIVEN the product's unit tests and the helpers they import
    files = python_files("tests/unit", "tests/support")
    assert REPO / "tests" / "unit" / "test_layout.py" in files
    # WHEN their imports are scanned, THEN none reaches the emulator or the benchmarks
    assert imports_of(files, in_packages(DEVSTACK)) == []


def test_tests_take_helpers_from_tests_support_never_from_a_conftest() -> None:
    # GIVEN every test module and helper
    files = python_files("tests")
    # WHEN their imports are scanned, THEN none imports a conftest: conftest files only define fixtures
    assert imports_of(files, lambda module: module.rsplit(".", 1)[-1] == "conftest") == []
