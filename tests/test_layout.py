"""The layout's rules, checked on the source (ast, no imports run): no import cycles inside
component/; the client tool (component/cli/) and the protocol plugins (component/xep/)
import nothing of the server side; files (Python, and the Prosody modules' Lua) stay short."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "component"
#: What the client side may import of component/: the protocol, and the pure shared helpers.
CLIENT_SIDE = ("component.cli", "component.xep", "component.namespaces", "component.util", "component.when")
MAX_LINES = 400
#: Files still over MAX_LINES, to be split (issue 11); the list may only shrink.
STILL_LONG: set[str] = set()
#: Protocol plugins that still import domain code (issue 11); the list may only shrink.
XEP_STILL_IMPURE: set[str] = set()


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the component modules it imports (type-checking-only imports included)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                subs = {f"{target}.{a.name}" for a in node.names} & mods.keys()
                deps |= subs or ({target} & mods.keys())
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names} & mods.keys()
        # a module importing its own package is how packages work, not a cycle
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports() -> None:
    graph = import_graph()
    assert "component.delivery.pipeline" in graph["component.app"]
    assert "component.xep.hops" in graph["component.cli.base"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_client_tool_imports_nothing_of_the_server() -> None:
    graph = import_graph()
    server = {
        (m, d)
        for m, deps in graph.items()
        if m.startswith("component.cli")
        for d in deps
        if not d.startswith(CLIENT_SIDE)
    }
    assert server == set()


def test_protocol_plugins_import_nothing_of_the_server() -> None:
    graph = import_graph()
    impure = {
        m for m, deps in graph.items() if m.startswith("component.xep") for d in deps if not d.startswith(CLIENT_SIDE)
    }
    assert impure <= XEP_STILL_IMPURE


def test_source_files_are_short() -> None:
    long = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if len(p.read_text().splitlines()) > MAX_LINES}
    assert long <= STILL_LONG, f"over {MAX_LINES} lines: {sorted(long - STILL_LONG)}"


def test_prosody_modules_are_short() -> None:
    lua = list((ROOT.parent / "prosody-config").rglob("*.lua"))
    assert lua
    long = {str(p.relative_to(ROOT.parent)) for p in lua if len(p.read_text().splitlines()) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {sorted(long)}"


#: Where the event loop's timers may be set: the one scheduler, and the store's group commit
#: (its own batching of routed confirmations, below any feature).
TIMERS_ALLOWED = {"component.scheduler", "component.store"}


def test_every_timer_is_the_schedulers() -> None:
    """Hold windows, drafts, SMS retries and retention run on component/scheduler.py: no feature
    sets a loop timer or keeps a heap of due times of its own (issue 11)."""
    own = []
    for name, path in modules().items():
        if name in TIMERS_ALLOWED or name.startswith("component.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("call_at", "call_later"):
                own.append(f"{name}:{node.lineno} {node.attr}")
            if isinstance(node, ast.Import | ast.ImportFrom) and "heapq" in ast.unparse(node):
                own.append(f"{name}:{node.lineno} heapq")
    assert own == []
