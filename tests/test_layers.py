"""The layers of docs/architecture.md hold: every import points down, none goes round in a circle."""

from __future__ import annotations

import runpy
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
graph = runpy.run_path(str(ROOT / "tools" / "import_graph.py"))


def test_every_import_points_down_the_layers_and_none_goes_round():
    arrows, problems = graph["check"]()
    assert problems == []
    assert ("irsock.net", "irsock.ttp") in arrows and ("irsock.apps", "irsock.net") in arrows


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.mark.parametrize("files, expected", [
    ({"irlap/__init__.py": "", "irlap/station.py": "from irsock.lmp import stack\n",
      "irsock/__init__.py": "", "irsock/lmp/__init__.py": "", "irsock/lmp/stack.py": ""},
     "irlap.station imports irsock.lmp.stack"),
    ({"irlap/__init__.py": "", "irsock/__init__.py": "", "irsock/lmp/__init__.py": "",
      "irsock/lmp/stack.py": "def later():\n    from irsock.net import sockets\n",
      "irsock/net/__init__.py": "", "irsock/net/sockets.py": ""},
     "irsock.lmp.stack imports irsock.net.sockets"),
    ({"irlap/__init__.py": "", "irsock/__init__.py": "", "irsock/net/__init__.py": "",
      "irsock/net/a.py": "from irsock.net import b\n", "irsock/net/b.py": "from . import a\n"},
     "import circle: irsock.net.a -> irsock.net.b -> irsock.net.a"),
    ({"irlap/__init__.py": "", "irsock/__init__.py": "", "irsock/obex/__init__.py": "",
      "irsock/obex/server.py": "import irsock.sim.soak\n", "irsock/sim/__init__.py": "", "irsock/sim/soak.py": ""},
     "irsock.obex.server imports irsock.sim.soak"),
])
def test_the_check_catches_an_upward_arrow_a_lazy_one_a_circle_and_a_sideways_one(tmp_path, files, expected):
    _arrows, problems = graph["check"](write(tmp_path, files))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_imports_only_for_type_checkers_are_no_arrow(tmp_path):
    files = {"irlap/__init__.py": "", "irsock/__init__.py": "", "irsock/lmp/__init__.py": "",
             "irsock/lmp/stack.py": "from typing import TYPE_CHECKING\n"
                                    "if TYPE_CHECKING:\n    from irsock.net import x\n",
             "irsock/net/__init__.py": "", "irsock/net/x.py": ""}
    assert graph["check"](write(tmp_path, files))[1] == []


def test_the_graph_in_the_architecture_page_is_the_graph_of_the_code(capsys):
    assert graph["main"]([]) == 0
    printed = capsys.readouterr().out
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert printed in page, "docs/architecture.md shows another graph: paste `python3 tools/import_graph.py`"
