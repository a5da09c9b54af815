"""The package's shape, as the architecture page describes it: small modules, no
private name used across modules, and no import cycle (function-level imports
included)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sgquant"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` of every import in ``path`` (any depth), absolute."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
    return out


def dependency_graph() -> dict[str, set[str]]:
    """Module -> the sgquant modules it imports (a package's ``__init__`` is the package)."""
    names = {module_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        deps = set()
        for module, imported, _ in imports(path):
            if not module.startswith("sgquant"):
                continue
            subs = {f"{module}.{n}" for n in imported if f"{module}.{n}" in names}
            deps |= subs if subs and len(subs) == len(imported) else {module} | subs
        graph[module_name(path)] = {d for d in deps if d in names and d != module_name(path)}
    return graph


def test_every_module_is_under_600_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) >= 600}
    assert not long, long


def test_no_private_name_is_imported_across_modules():
    bad = []
    for path in MODULES:
        for module, names, line in imports(path):
            if module.startswith("sgquant") and module != module_name(path):
                bad += [f"{path.relative_to(REPO)}:{line} {module}.{n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_no_import_cycle():
    graph = dependency_graph()
    parent = {m: m.rsplit(".", 1)[0] for m in graph if "." in m}

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        assert node not in stack, "import cycle: " + " -> ".join(stack[stack.index(node):] + [node])
        if node in done:
            return
        for dep in sorted(graph[node]):
            # a submodule importing its own package's __init__ is fine only when the
            # package does not import it back (checked as a cycle like any other)
            visit(dep, stack + [node], done)
        done.add(node)

    done: set[str] = set()
    for node in sorted(graph):
        visit(node, [], done)
    assert parent  # the package has submodules


def test_the_architecture_page_lists_every_module():
    page = (REPO / "book" / "architecture.md").read_text()
    missing = [module_name(p) for p in MODULES
               if p.name != "__init__.py" and f"`{module_name(p).split('.', 1)[1]}`" not in page
               and f"`{p.stem}`" not in page]
    assert not missing, missing
