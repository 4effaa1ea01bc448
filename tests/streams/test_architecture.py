"""The tree is the architecture: dependencies point inward, to a domain that imports nothing else.

    cli -> app, gateway -> kafka, metrics -> pipeline -> db, contract -> domain

The gateway is a process of its own beside the worker's (``app``): neither imports the other.

Adapters implement the ports the pipeline declares (``Publish``, the metrics it records into); no inner
package reaches out to an outer one. Checked on the source, so a new import that breaks the direction
fails here, not in a review.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

STREAMS = ROOT / "streams"

# package -> the streams packages it must not import
FORBIDDEN: dict[str, set[str]] = {
    "contract": {"db", "pipeline", "kafka", "metrics", "cli", "app", "gateway"},
    "db": {"pipeline", "kafka", "metrics", "cli", "app", "gateway"},
    "pipeline": {"kafka", "cli", "app", "gateway"},
    "kafka": {"db", "cli", "app", "gateway"},
    "metrics": {"kafka", "cli", "app", "gateway"},
    "app": {"cli", "gateway"},
    "gateway": {"db", "pipeline", "cli", "app"},
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1].removesuffix(".py") if len(parts) > 1 else ""


def modules(package: str) -> list[Path]:
    root = STREAMS / package
    return sorted(root.rglob("*.py")) if root.is_dir() else [STREAMS / f"{package}.py"]


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_the_domain_imports_only_the_standard_library_and_itself(path: Path) -> None:
    outside = {
        name
        for name in imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names and not name.startswith("streams.domain")
    }
    assert not outside, f"{path.relative_to(STREAMS.parent)} imports {sorted(outside)}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_inward(package: str) -> None:
    wrong = {
        f"{path.relative_to(STREAMS.parent)} -> {name}"
        for path in modules(package)
        for name in imports(path)
        if name.startswith("streams.") and package_of(name) in FORBIDDEN[package]
    }
    assert not wrong, sorted(wrong)


def test_every_module_of_streams_is_in_a_checked_package() -> None:
    """A new top-level module or package is placed in the diagram above, or this fails."""
    known = {"domain", *FORBIDDEN, "cli", "settings"}
    placed = {p.stem if p.suffix else p.name for p in STREAMS.iterdir() if p.name != "__init__.py"}
    placed = {name for name in placed if not name.startswith("__")}
    assert placed <= known, sorted(placed - known)
