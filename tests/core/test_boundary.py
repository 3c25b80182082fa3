"""The edge core's walls: SQL only in the store, no private doors into it, no import cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import crown_edge

ROOT = Path(crown_edge.__file__).parent
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.S)
#: other databases than the workshop store: the cloud's own, and a bench's scratch file
OWN_DATABASES = ("cloud/", "bench/stream.py")
#: the edge core's command side: its modules must sit on no import cycle
EDGE_CORE = (
    "crown_edge.daemon.app",
    "crown_edge.daemon.handlers",
    "crown_edge.daemon.links",
    "crown_edge.daemon.jobs",
    "crown_edge.daemon.activities",
    "crown_edge.daemon.machines",
    "crown_edge.store",
    "crown_edge.scheduler",
    "crown_edge.metrics",
    "crown_edge.lifecycle",
)


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def outside_store(name: str) -> bool:
    rel = name.removeprefix("crown_edge.").replace(".", "/")
    return not name.startswith("crown_edge.store") and not any(
        rel.startswith(o.removesuffix(".py")) for o in OWN_DATABASES
    )


def test_sql_lives_in_the_store_alone() -> None:
    found = []
    for name, tree in modules().items():
        if not outside_store(name):
            continue
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and SQL.search(text):
                found.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in ("run_sql", "_read", "_write"):
                found.append(f"{name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "crown_edge.store"
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private:
                    found.append(f"{name}:{node.lineno} imports {private}")
    assert found == []


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Modules ``name`` imports, anywhere but under ``if TYPE_CHECKING``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in known:
                    out.add(sub)
                elif node.module in known:
                    out.add(node.module)
    out.discard(name)
    return out


def test_no_import_cycle_reaches_the_edge_core() -> None:
    trees = modules()
    known = set(trees)
    graph = {name: imports(name, tree, known) for name, tree in trees.items()}
    cycles = []
    for start in (n for n in graph if n.startswith(EDGE_CORE)):
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join((*path, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
    assert cycles == []
