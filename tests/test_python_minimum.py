"""Python 3.10 is the minimum (pyproject's requires-python; Ubuntu 22.04 and Debian 12 ship 3.10 and 3.11).

CI runs one Python, newer than 3.10; this keeps the code from drifting past the minimum: every module
parses with the 3.10 grammar and uses none of the standard library names that appeared in 3.11. When a
``python3.10`` is on PATH with the dependencies, ``python3.10 -m pytest`` is the real check.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("irlap", "irsock", "hil_tests", "tests", "benchmarks", "examples")
                 for p in (ROOT / folder).rglob("*.py"))

# module -> names added in Python 3.11
NEW_IN_311 = {
    "datetime": {"UTC"},
    "typing": {"Self", "Never", "LiteralString", "assert_never", "assert_type", "reveal_type", "Required",
               "NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform", "get_overloads",
               "clear_overloads"},
    "enum": {"StrEnum", "ReprEnum", "EnumCheck", "FlagBoundary", "verify", "member", "nonmember",
             "global_enum", "property"},
    "asyncio": {"TaskGroup", "timeout", "timeout_at", "Runner", "Barrier"},
    "contextlib": {"chdir"},
    "hashlib": {"file_digest"},
    "operator": {"call"},
}
NEW_MODULES = {"tomllib", "wsgiref.types"}
NEW_BUILTINS = {"ExceptionGroup", "BaseExceptionGroup"}


def test_requires_python_is_310():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib: it is 3.11's
    assert re.search(r'^requires-python = ">=3.10"$', pyproject, re.M)
    assert re.search(r'^target-version = "py310"$', pyproject, re.M)  # ruff


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_runs_on_python_310(path):
    if path.name == "test_python_minimum.py":
        return  # names the 3.11 additions
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in NEW_IN_311:
            found += [f"from {node.module} import {a.name}" for a in node.names if a.name in NEW_IN_311[node.module]]
        elif isinstance(node, ast.ImportFrom) and node.module in NEW_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in NEW_MODULES]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.attr in NEW_IN_311.get(node.value.id, ())):
            found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in NEW_BUILTINS:
            found.append(node.id)
    assert not found, f"{path.relative_to(ROOT)} uses Python 3.11 names: {found}"
