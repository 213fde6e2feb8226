"""The package's shape, checked from the source: which part may import which, no import cycle, modules and notebook cells
of a readable size. Read from the files (ast and json), nothing is imported or executed."""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ragft"

# The parts of ragft, the most specific folder first, and the imports that must never exist between them.
PARTS = {"retrieval/pgvector": "Stores", "core": "Core", "data": "Data", "builders": "Build", "retrieval": "Retrieval",
         "generation": "Generation", "training": "Training", "evaluation": "Evaluation", "systems": "Systems",
         "ui": "Faces", "report": "Faces"}
NEVER = {("Core", p) for p in ("Data", "Build", "Retrieval", "Stores", "Generation", "Training", "Evaluation",
                               "Systems", "Faces")} | {
    ("Data", "Build"), ("Retrieval", "Generation"), ("Retrieval", "Evaluation"), ("Retrieval", "Systems"),
    ("Retrieval", "Stores"), ("Generation", "Systems"), ("Training", "Systems"), ("Evaluation", "Systems"),
    ("Systems", "Faces"), ("Systems", "Build"), ("Training", "Build"), ("Faces", "Build"),
}
MAX_MODULE_LINES = 600
MAX_CELL_LINES = 25


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str | None:
    rel = module.removeprefix("ragft").lstrip(".").replace(".", "/")
    for folder, part in PARTS.items():
        if rel == folder or rel.startswith(folder + "/"):
            return part
    return None


def package_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "_scripts" not in p.parts]


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_in(source: str, package: str) -> set[str]:
    """The ragft modules a source in `package` imports: `from ..x import y` resolved, and y too when it is a module.

    >>> sorted(imports_in("from ..evaluation import scoring", "ragft.retrieval"))
    ['ragft.evaluation', 'ragft.evaluation.scoring']
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ragft")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.startswith("ragft"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")}
    return found


def imports_of(path: Path) -> set[str]:
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def test_no_part_imports_what_it_must_never_import():
    broken = []
    for path in package_files():
        here = part_of(module_name(path))
        for target in imports_of(path):
            there = part_of(target)
            if here and there and (here, there) in NEVER:
                broken.append(f"{path.relative_to(ROOT)} ({here}) imports {target} ({there})")
    assert not broken, "\n".join(broken)


def test_no_import_cycle_between_modules():
    modules = {module_name(p): p for p in package_files()}
    graph = {m: {t for t in imports_of(p) if t in modules and t != m and not modules[t].name == "__init__.py"}
             for m, p in modules.items() if p.name != "__init__.py"}
    state, cycle = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                cycle.append(stack[stack.index(t):] + [t] if t in stack else [m, t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycle, "import cycles: " + "; ".join(" -> ".join(c) for c in cycle)


def test_no_module_over_the_size_limit():
    long = {str(p.relative_to(ROOT)): n for p in package_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concept): {long}"


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_notebook_code_cells_are_short(notebook):
    cells = json.loads((ROOT / "notebooks" / notebook).read_text(encoding="utf-8"))["cells"]
    long = [(i, n) for i, c in enumerate(cells) if c["cell_type"] == "code"
            and "parameters" not in c.get("metadata", {}).get("tags", [])
            and (n := len("".join(c["source"]).splitlines())) > MAX_CELL_LINES]
    assert not long, f"{notebook}: code cells (index, lines) over {MAX_CELL_LINES} lines: {long}"


def test_the_reader_sees_a_forbidden_import():
    """A relative import is resolved to the part it lands in, so a forbidden one cannot hide behind dots."""
    found = imports_in("from ..evaluation import scoring\nfrom ...core.io import atomic_path", "ragft.retrieval.pgvector")
    assert found == {"ragft.retrieval.evaluation", "ragft.core.io"}  # two dots from pgvector land in retrieval
    found = imports_in("from ..evaluation import scoring", "ragft.retrieval")
    assert {part_of(m) for m in found} == {"Evaluation"} and ("Retrieval", "Evaluation") in NEVER
    assert part_of("ragft.retrieval.pgvector.store") == "Stores" and part_of("ragft.retrieval.index") == "Retrieval"
    assert part_of("ragft.ui.cli") == part_of("ragft.report.page") == "Faces"
