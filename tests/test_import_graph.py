"""The package's import graph, read from the source with `ast` (function-local imports included).

Two rules keep the stages apart: no cycle between the stage packages (through
core's modules too), and core's foundation modules (everything but the CLI, the
pipeline and the HTML report, which orchestrate the stages) import no stage and
none of those orchestration modules. The walker is tested on a synthetic
package and the rules on synthetic graphs, so a planted cycle is shown to fail.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "mcuforge"
STAGES = ("mcuforge.train", "mcuforge.compress", "mcuforge.deploy", "mcuforge.firmware")
ORCHESTRATION = ("cli", "pipeline", "html_report")  # core modules named so (cli_*, too) may import the stages


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # file:line of the import statement


def package_dirs(packages=(ROOT, *STAGES)) -> dict[str, Path]:
    """Each package's folder, found without importing it (the repository maps them onto sibling folders)."""
    return {name: Path(importlib.util.find_spec(name).submodule_search_locations[0]) for name in packages}


def modules(dirs: dict[str, Path]) -> dict[str, Path]:
    """Every module's dotted name -> file; a file belongs to the package whose folder is nearest to it."""
    found = {}
    for package, folder in dirs.items():
        nested = [d for d in dirs.values() if d != folder and folder in d.parents]
        for path in folder.rglob("*.py"):
            if any(d in path.parents for d in nested):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> list[Edge]:
    """The project modules `name` imports anywhere in its file (top level, functions, classes)."""
    is_package = path.name == "__init__.py"
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import mcuforge.deploy.tflite_model.x` -> the module
                target = target.rpartition(".")[0]
            edge = Edge(name, target, f"{path}:{node.lineno}")
            if target and target != name and edge not in edges:
                edges.append(edge)
    return edges


def graph(dirs: dict[str, Path]) -> list[Edge]:
    found = modules(dirs)
    return [edge for name, path in sorted(found.items()) for edge in imports(name, path, set(found))]


def node_of(module: str) -> str:
    """A stage package is one node; each core module is its own node."""
    return next((stage for stage in STAGES if module == stage or module.startswith(stage + ".")), module)


def is_foundation(module: str) -> bool:
    if node_of(module) != module or module in STAGES or not (module == ROOT or module.startswith(ROOT + ".")):
        return False
    leaf = module.rpartition(".")[2]
    return not any(leaf == o or leaf.startswith(o + "_") for o in ORCHESTRATION)


def cycle_edges(edges: list[Edge]) -> list[Edge]:
    """The module imports that make a cycle between nodes (stages and core modules): edges inside a strongly connected component."""
    successors: dict[str, set[str]] = {}
    for e in edges:
        a, b = node_of(e.source), node_of(e.target)
        if a != b:
            successors.setdefault(a, set()).add(b)

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in successors.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reach = {node: reachable(node) for node in successors}
    return [e for e in edges if node_of(e.source) != node_of(e.target) and node_of(e.source) in reach.get(node_of(e.target), ())]


def foundation_violations(edges: list[Edge]) -> list[Edge]:
    """Imports from a foundation module of a stage or of an orchestration module."""
    return [e for e in edges if is_foundation(e.source) and not is_foundation(node_of(e.target))]


def describe(found: list[Edge]) -> str:
    """One line per pair of nodes: how many imports, and where each one is."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for e in found:
        pairs.setdefault((node_of(e.source), node_of(e.target)), []).append(e.where)
    return "\n".join(f"{a} -> {b}: {len(w)} import(s) at {', '.join(w)}" for (a, b), w in sorted(pairs.items()))


# --- the project -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_edges() -> list[Edge]:
    return graph(package_dirs())


def test_the_walk_sees_every_stage_and_known_imports(project_edges):
    sources = {node_of(e.source) for e in project_edges}
    assert set(STAGES) <= sources
    pairs = {(e.source, e.target) for e in project_edges}
    # a top-level import and a function-local one, both in the repository's files
    assert ("mcuforge.train.datasets.keywords", "mcuforge.features") in pairs
    assert ("mcuforge.deploy.cli_edge", "mcuforge.deploy.edgetpu_compiler") in pairs


def test_no_cycle_between_stage_packages(project_edges):
    found = cycle_edges(project_edges)
    assert not found, "imports on a cycle:\n" + describe(found)


def test_core_foundation_imports_no_stage(project_edges):
    found = foundation_violations(project_edges)
    assert not found, "foundation modules importing stages or the pipeline:\n" + describe(found)


# --- the walker and the rules on synthetic input -------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_walker_reads_function_local_relative_and_from_imports(tmp_path):
    write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/errors.py": "",
            "train/__init__.py": "",
            "train/fit.py": "import os\nfrom mcuforge import errors\n\ndef f():\n    from mcuforge.firmware import board\n",
            "firmware/__init__.py": "",
            "firmware/board.py": "from . import helper\nfrom .helper import x\nimport mcuforge.train.fit\n",
            "firmware/helper.py": "from ..train import fit\n",
        },
    )
    dirs = {ROOT: tmp_path / "core", "mcuforge.train": tmp_path / "train", "mcuforge.firmware": tmp_path / "firmware"}
    pairs = sorted((e.source, e.target, e.where.rpartition(":")[2]) for e in graph(dirs))
    assert pairs == [
        ("mcuforge.firmware.board", "mcuforge.firmware.helper", "1"),
        ("mcuforge.firmware.board", "mcuforge.firmware.helper", "2"),
        ("mcuforge.firmware.board", "mcuforge.train.fit", "3"),
        ("mcuforge.firmware.helper", "mcuforge.train.fit", "1"),
        ("mcuforge.train.fit", "mcuforge.errors", "2"),
        ("mcuforge.train.fit", "mcuforge.firmware.board", "5"),
    ]
    cycle = {(e.source, e.target) for e in cycle_edges(graph(dirs))}
    assert cycle == {
        ("mcuforge.train.fit", "mcuforge.firmware.board"),
        ("mcuforge.firmware.board", "mcuforge.train.fit"),
        ("mcuforge.firmware.helper", "mcuforge.train.fit"),
    }


def edges(*pairs: str) -> list[Edge]:
    return [Edge(*pair.split(" -> "), where="x.py:1") for pair in pairs]


def test_a_planted_cycle_is_found_with_every_edge_on_it():
    acyclic = edges("mcuforge.deploy.convert -> mcuforge.train.zoo", "mcuforge.firmware.build -> mcuforge.deploy.tflite_model",
                    "mcuforge.train.zoo -> mcuforge.errors", "mcuforge.cli -> mcuforge.firmware.cli_demo")  # fmt: skip
    assert cycle_edges(acyclic) == []
    planted = edges("mcuforge.train.datasets.keywords -> mcuforge.firmware.build")
    assert cycle_edges(acyclic + planted) == [acyclic[0], acyclic[1], planted[0]]


def test_a_cycle_through_a_core_module_is_found():
    through_core = edges("mcuforge.train.trainer -> mcuforge.pipeline", "mcuforge.pipeline -> mcuforge.train.trainer")
    assert cycle_edges(through_core) == through_core


def test_foundation_modules_may_not_import_stages_or_orchestration():
    allowed = edges("mcuforge.spec -> mcuforge.errors", "mcuforge.pipeline -> mcuforge.deploy.convert", "mcuforge.cli_pipeline -> mcuforge.pipeline",
                    "mcuforge.train.cli -> mcuforge.spec", "mcuforge.layout -> mcuforge.artifacts")  # fmt: skip
    assert foundation_violations(allowed) == []
    bad = edges("mcuforge.spec -> mcuforge.train.zoo", "mcuforge.features -> mcuforge.firmware.build", "mcuforge.results -> mcuforge.pipeline")
    assert foundation_violations(allowed + bad) == bad
