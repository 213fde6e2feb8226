"""The front door stays honest: no dated measurement history in the code (it lives in docs/decisions.md), every
`ragft` command the README shows parses, every notebook parameter parses for papermill, and environment.yml installs
through pyproject.toml."""

import logging
import re
import shlex
from pathlib import Path

import pytest

from ragft.ui.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
# stats.py defines the test (a definition, not a count)
MCNEMAR_ALLOWED = {("ragft/evaluation/stats.py", None)}


def _allowed(rel: str, line: str) -> bool:
    return any(rel == path and (text is None or text in line) for path, text in MCNEMAR_ALLOWED)


def test_no_dated_measurement_history_in_the_package():
    found = []
    for path in sorted((ROOT / "ragft").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DATE.search(line) and rel != "ragft/evaluation/stats.py":
                found.append(f"{rel}:{n}: date: {line.strip()[:100]}")
            if "McNemar" in line and not _allowed(rel, line):
                found.append(f"{rel}:{n}: McNemar count: {line.strip()[:100]}")
    assert not found, "measurement history belongs in docs/decisions.md:\n" + "\n".join(found)


def readme_commands(text: str) -> list[str]:
    """Every `ragft ...` line of the README's ```bash blocks (continuation lines joined)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("ragft "):
                out.append(line)
    return out


def test_every_ragft_command_in_the_readme_parses():
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    bad = []
    for line in commands:
        argv = shlex.split(line, comments=True)[1:]
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            bad.append(line)
    assert not bad, "README commands the CLI refuses:\n" + "\n".join(bad)


def test_the_readme_command_reader_finds_commands():
    text = "```bash\nragft index docs --out my.idx   # a comment\n$ ragft update my.idx \\\n  docs\n```\n"
    assert readme_commands(text) == ["ragft index docs --out my.idx   # a comment", "ragft update my.idx    docs"]


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_parameter_parses_for_papermill(notebook, caplog):
    papermill = pytest.importorskip("papermill")
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assignments = [ln for c in cells for ln in c.source.splitlines() if re.match(r"^\w+\s*(:[^=]*)?=", ln)]
    with caplog.at_level(logging.DEBUG, logger="papermill"):
        params = papermill.inspect_notebook(str(notebook))
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert sorted(params) == sorted(ln.split(":")[0].split("=")[0].strip() for ln in assignments)
    assert all(p["inferred_type_name"] not in ("None", "") for p in params.values()), "each parameter keeps its type"


def test_environment_yml_installs_through_pyproject():
    yaml = pytest.importorskip("yaml")
    tomllib = pytest.importorskip("tomllib")
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[dev]" in pip
    assert {re.split(r"[=<>\s]", d)[0] for d in conda} == {"python", "pip", "cxx-compiler"}, "conda: Python and a compiler"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = {re.split(r"[=<>!~\[;\s]", d)[0].lower() for d in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        pinned |= {re.split(r"[=<>!~\[;\s]", d)[0].lower() for d in extra}
    listed = {re.split(r"[=<>!~\[;\s]", d)[0].lower() for d in pip if not d.startswith(("-", "."))}
    assert not listed & pinned, f"pinned in both environment.yml and pyproject.toml: {listed & pinned}"
    assert listed <= {"torch"}, "only torch (kept out of pyproject on purpose) is pinned in environment.yml"
    setup = (ROOT / "scripts" / "setup_env.sh").read_text(encoding="utf-8")
    torch = next(d for d in pip if d.startswith("torch"))
    assert f'"{torch}"' in setup, "the same torch pin as scripts/setup_env.sh"
