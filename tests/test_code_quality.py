"""Static checks run with the suite: ruff, mypy strict on shared/, import contracts, docstrings."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_ruff_lint_is_clean() -> None:
    result = _run(_tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(_tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_domain_library() -> None:
    result = _run(_tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_boto3_stays_out_of_domain_code() -> None:
    result = _run(_tool("lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


# -- docstrings: what a thing is and how to call it; design reasoning lives in docs/adr ---------
#: Non-blank lines a docstring may have outside its numpydoc sections.
MAX_PROSE_LINES = 12
NUMPYDOC_SECTIONS = frozenset(
    {"Parameters", "Returns", "Yields", "Raises", "Examples", "Notes", "See Also", "Attributes"}
)
#: Docstrings allowed past the limit, as ``path::qualname`` (path relative to shared/).
PROSE_ALLOWED = {
    "flywheel/workflows/approvals.py::<module>",  # being rewritten
}


def _prose_lines(docstring: str) -> list[str]:
    """The non-blank lines of ``docstring`` outside its numpydoc sections.

    A section starts at a heading underlined with dashes and runs to the next underlined
    heading; an underlined heading that is not a numpydoc section starts prose again.
    """
    lines = docstring.splitlines()
    prose: list[str] = []
    in_section = False
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if text and len(underline) >= 3 and set(underline) == {"-"}:
            in_section = text in NUMPYDOC_SECTIONS
            i += 2
            continue
        if text and not in_section:
            prose.append(text)
        i += 1
    return prose


def _docstrings(path: Path) -> Iterator[tuple[str, str]]:
    """``(qualname, docstring)`` of the module and of every class and function in ``path``."""

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                docstring = ast.get_docstring(child)
                if docstring:
                    yield name, docstring
                yield from visit(child, f"{name}.")
            else:
                yield from visit(child, prefix)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    if docstring:
        yield "<module>", docstring
    yield from visit(tree, "")


def test_prose_outside_numpydoc_sections_is_counted() -> None:
    docstring = (
        "One line.\n\nA paragraph.\n\nParameters\n----------\nx\n    An x.\n\nWhy\n---\nEssay."
    )
    assert _prose_lines(docstring) == ["One line.", "A paragraph.", "Essay."]


def test_docstrings_keep_their_prose_short() -> None:
    shared = ROOT / "shared"
    found: dict[str, int] = {}
    for path in sorted((shared / "flywheel").rglob("*.py")):
        for qualname, docstring in _docstrings(path):
            lines = len(_prose_lines(docstring))
            if lines > MAX_PROSE_LINES:
                found[f"{path.relative_to(shared).as_posix()}::{qualname}"] = lines
    too_long = {key: n for key, n in found.items() if key not in PROSE_ALLOWED}
    assert not too_long, (
        f"docstrings with more than {MAX_PROSE_LINES} lines of prose outside their numpydoc "
        f"sections (say what it is and how to call it; design reasoning goes in an ADR under "
        f"docs/adr/): {too_long}"
    )
    fixed = sorted(PROSE_ALLOWED - found.keys())
    assert not fixed, f"within the limit now, remove from PROSE_ALLOWED: {fixed}"


# -- docs/security.md names the tests that hold each claim: they must exist ----------------------
def _cited_tests(text: str) -> set[tuple[str | None, str]]:
    """``(file, test)`` for every backticked ``path::test`` or bare ``test_...`` name."""
    import re

    cited: set[tuple[str | None, str]] = set()
    for match in re.finditer(r"`(?:(tests/[\w/]+\.py)::)?(test_\w+)`", text):
        cited.add((match.group(1), match.group(2)))
    return cited


def _defined_tests() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        names = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        }
        found[path.relative_to(ROOT).as_posix()] = names
    return found


def test_every_test_the_threat_model_cites_exists() -> None:
    cited = _cited_tests((ROOT / "docs" / "security.md").read_text())
    defined = _defined_tests()
    everywhere = set().union(*defined.values())
    assert len(cited) > 30
    missing = sorted(
        f"{file or '*'}::{name}"
        for file, name in cited
        if (name not in defined.get(file, set()) if file else name not in everywhere)
    )
    assert not missing, missing


def test_a_renamed_test_is_caught() -> None:
    cited = _cited_tests("`tests/unit/x.py::test_gone` and `test_never_written`")
    assert cited == {("tests/unit/x.py", "test_gone"), (None, "test_never_written")}
