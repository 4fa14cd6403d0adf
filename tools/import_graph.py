"""The import graph of irlap and irsock, checked against the layers of docs/architecture.md.

    python3 tools/import_graph.py          # the package graph, one arrow per line, and the verdict
    python3 tools/import_graph.py --dot    # the same as Graphviz (dot -Tsvg > layers.svg)

Every ``import`` and ``from ... import`` in the sources counts, at module level or inside a function
(a lazy import is still an arrow); imports under ``if TYPE_CHECKING:`` do not (they never run).
Exit status 1 when an arrow points up the layers, crosses between two packages of the same layer,
or modules import each other in a circle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("irlap", "irsock")

#: Lowest first. A module may import from its own group and from groups of a lower rank only.
LAYERS: list[tuple[str, ...]] = [
    ("irlap",),  # the link: SIR, frames, QoS, station, simulator, runtime, ports, dongles, emulator
    ("irsock.errors",),  # the base exception of the layers above the link
    ("irsock.lmp",),  # IrLMP, IAS
    ("irsock.ttp", "irsock.ircomm"),  # TinyTP; IrCOMM's framing and control channel (beside it, not on it)
    ("irsock.stack",),  # the protocol stack put together on a station
    ("irsock.obex", "irsock.sim"),  # OBEX codec/client/server (no I/O of its own); simulated runs of the stack
    ("irsock.devices",),  # emulated devices (phone, ...) that run inside a virtual device's stack
    ("irsock.net",),  # the socket API
    ("irsock.daemon",),  # the stack daemon and its clients: one stack shared by processes (irda serve, irda run)
    ("irsock.apps",),  # what uses the API: transfer, demo, bench
    ("irsock",),  # the package's public face (irsock/__init__.py): what programs import
    ("irsock.cli",),  # the irda command: a program like any other, on top
]


def group_of(module: str) -> str:
    """The longest layer group that ``module`` belongs to."""
    best = ""
    for layer in LAYERS:
        for group in layer:
            if (module == group or module.startswith(group + ".")) and len(group) > len(best):
                best = group
    return best


def rank_of(group: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if group in layer)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or _type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".strip(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def check(root: Path = ROOT) -> tuple[dict[tuple[str, str], int], list[str]]:
    """(package arrows with their import counts, problems found) for the sources under ``root``."""
    modules = {module_name(p, root): p for package in PACKAGES for p in sorted((root / package).rglob("*.py"))}
    graph = imports(modules)
    arrows: dict[tuple[str, str], int] = defaultdict(int)
    problems = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = group_of(source), group_of(target)
            if a == b:
                continue
            arrows[(a, b)] += 1
            if rank_of(b) >= rank_of(a):
                problems.append(f"{source} imports {target}: {a} may not depend on {b}")
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import circle: " + " -> ".join(cycle))
    return dict(arrows), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print the package graph for Graphviz")
    args = parser.parse_args(argv)
    arrows, problems = check()
    if args.dot:
        print("digraph layers {\n  rankdir=BT; node [shape=box];")
        for (a, b), count in sorted(arrows.items()):
            print(f'  "{a}" -> "{b}" [label="{count}"];')
        print("}")
    else:
        for rank, layer in reversed(list(enumerate(LAYERS))):
            for group in layer:
                targets = sorted(b for (a, b) in arrows if a == group)
                print(f"{rank} {group:14} -> {', '.join(targets) or '(nothing of ours)'}")
        print("no arrow points up, no circle" if not problems else "\n".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
