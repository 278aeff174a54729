"""The package's shape: the map in each docstring names exactly the modules that exist, imports
run with the flow (no cycle, no earlier stage importing a later one), and the top stays small."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "batchgen"
MAP_LINE = re.compile(r"^\s{2,}(\w+(?:\.py|/))\s", re.M)
# What each stage may never import: a module of an earlier stage imports no later one.
NEVER = {
    "batchgen.manifest": (
        "batchgen.state",
        "batchgen.runner",
        "batchgen.money",
        "batchgen.load",
        "batchgen.pipeline",
        "batchgen.providers",
        "batchgen.settle",
    ),
    "batchgen.money": (
        "batchgen.pipeline",
        "batchgen.load",
        "batchgen.runner",
        "batchgen.state",
        "batchgen.settle",
        "batchgen.results",
    ),
    "batchgen.state": (
        "batchgen.runner",
        "batchgen.pipeline",
        "batchgen.load",
        "batchgen.money",
        "batchgen.manifest",
        "batchgen.providers",
        "batchgen.results",
    ),
    "batchgen.media": ("batchgen.state", "batchgen.runner", "batchgen.pipeline"),
    "batchgen.providers": ("batchgen.state", "batchgen.runner", "batchgen.pipeline"),
    "batchgen.runner": (
        "batchgen.pipeline",
        "batchgen.load",
        "batchgen.settle",
        "batchgen.results",
        "batchgen.cli",
    ),
    "batchgen.jobs": ("batchgen.manifest",),
    "batchgen.status": ("batchgen.",),
    "batchgen.errors": ("batchgen.",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> Iterator[str]:
    """The batchgen modules `name` imports (a submodule named in `from P import m` counts as
    `P.m`; names imported under TYPE_CHECKING count too)."""
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("batchgen"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("batchgen"):
            module = str(node.module)
            submodules = [f"{module}.{a.name}" for a in node.names]
            found = [m for m in submodules if m in MODULES]
            yield from found or [module]


def mapped(docstring: str) -> set[str]:
    return {entry.removesuffix(".py").removesuffix("/") for entry in MAP_LINE.findall(docstring)}


@pytest.mark.parametrize(
    "package", sorted({p.parent for p in PACKAGE.rglob("__init__.py")}), ids=lambda p: p.name
)
def test_each_package_docstring_maps_exactly_its_modules(package):
    """Every module and sub-package is on its package's map, and the map names nothing else."""
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    present = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    present |= {p.parent.name for p in package.glob("*/__init__.py")}
    if package == PACKAGE:
        assert mapped(docstring) == present
    else:
        words = set(re.findall(r"\w+", docstring))
        assert present <= words, f"{package.name}: not on the map: {sorted(present - words)}"


def test_the_top_of_the_package_holds_at_most_sixteen_modules():
    """Core values and the few modules that tie the stages together; the rest is in folders."""
    assert len(list(PACKAGE.glob("*.py"))) <= 16


def test_no_module_imports_itself_back_through_others():
    """The import graph has no cycle (a package's __init__ re-exporting is not a cycle)."""
    graph = {name: {m for m in imports_of(name) if m in MODULES} for name in MODULES}
    faces = {name for name in MODULES if MODULES[name].name == "__init__.py"}
    edges = {name: targets - faces for name, targets in graph.items() if name not in faces}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for target in sorted(edges.get(node, ())):
            assert seen.get(target) != 1, " -> ".join([*path, node, target])
            if target not in seen:
                visit(target, [*path, node])
        seen[node] = 2

    for name in sorted(edges):
        if name not in seen:
            visit(name, [])


@pytest.mark.parametrize("stage", sorted(NEVER))
def test_no_stage_imports_a_later_one(stage):
    """Manifest never imports the state or the runner, money never the pipeline, media never
    the state, and so on down the flow."""
    own = [name for name in MODULES if name == stage or name.startswith(f"{stage}.")]
    wrong = [
        f"{name} imports {target}"
        for name in own
        for target in imports_of(name)
        if target.startswith(NEVER[stage])
    ]
    assert not wrong, wrong


JOB_WRITES = {"apply", "adopt_task", "reset_unknown", "reset_for_retry", "add_jobs"}


@pytest.mark.parametrize(
    "stage", sorted(p.name for p in (PACKAGE / "runner").glob("*.py") if p.name != "context.py")
)
def test_the_runner_changes_a_job_only_through_its_context(stage):
    """`RunContext.record` is the one door: no stage writes a job to the store itself."""
    tree = ast.parse((PACKAGE / "runner" / stage).read_text())
    calls = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in JOB_WRITES
        and "store" in ast.unparse(node.func.value)
    ]
    assert not calls, calls
