"""The package's shape, as the architecture page describes it: small modules and
functions, no private name used across modules, no import cycle (function-level imports
included), no notebook's chapter module importing another's, and benchmarks that use
the library, never a chapter. This is the one test that walks the package's imports."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from sgquant.chapters import CHAPTERS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sgquant"
MODULES = sorted(PACKAGE.rglob("*.py"))
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))
#: The targets of the architecture page: lines a module, lines a function or method.
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: The most parameters of a search's or a chapter's public function (and a chapter's fields).
MAX_PARAMETERS = 12
ENTRY_MODULES = [PACKAGE / "search" / "driver.py", *sorted((PACKAGE / "chapters").glob("*.py"))]


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


def test_every_module_is_at_most_500_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES + BENCHMARKS
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_every_function_is_at_most_80_lines():
    """Functions and methods, nested ones too, from ``def`` to their last line."""
    long = {}
    for path in MODULES + BENCHMARKS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = lines
    assert not long, long


def parameter_count(node: "ast.FunctionDef | ast.AsyncFunctionDef") -> int:
    """A function's parameters (``*args`` and ``**kwargs`` one each), ``self`` and
    ``cls`` not counted."""
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return len(names) - (names[:1] in (["self"], ["cls"]))


def public_functions(tree: ast.Module) -> list["ast.FunctionDef | ast.AsyncFunctionDef"]:
    """A module's public functions and its public classes' public methods."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            out += [n for n in node.body if isinstance(n, (ast.FunctionDef,
                                                            ast.AsyncFunctionDef))]
    return [n for n in out if not n.name.startswith("_")]


def test_searches_and_chapter_entries_take_at_most_12_parameters():
    """``cost_model_search`` and every chapter entry take at most 12 parameters: a
    search's settings travel as one SearchSpec, the run's as one RunSettings."""
    import dataclasses
    import importlib

    many = {f"{path.relative_to(REPO)}:{node.lineno} {node.name}": n
            for path in ENTRY_MODULES for node in public_functions(ast.parse(path.read_text()))
            if (n := parameter_count(node)) > MAX_PARAMETERS}
    for name in ("common", *CHAPTERS.values()):
        module = importlib.import_module(f"sgquant.chapters.{name}")
        for cls in vars(module).values():
            if (isinstance(cls, type) and cls.__module__ == module.__name__
                    and dataclasses.is_dataclass(cls) and cls.__name__.endswith("Chapter")
                    and len(dataclasses.fields(cls)) > MAX_PARAMETERS):
                many[f"{module.__name__}.{cls.__name__} fields"] = len(dataclasses.fields(cls))
    assert not many, many


def test_parameter_count_counts_every_kind_of_parameter():
    tree = ast.parse("def f(a, /, b, *c, d, e=1, **f): pass\n"
                     "class C:\n    def m(self, a): pass\n    def _p(self, a, b): pass")
    assert [(n.name, parameter_count(n)) for n in public_functions(tree)] == [("f", 6),
                                                                             ("m", 1)]


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


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (any depth), ``from X import y`` counting as both
    ``X`` and ``X.y`` (``y`` may be a submodule)."""
    out = set()
    for module, names, _ in imports(path):
        out |= {module, *(f"{module}.{n}" for n in names)}
    return out


def test_no_chapter_module_imports_another_notebooks_module():
    """A notebook's module (``chapters.CHAPTERS``) is imported by no other module of the
    chapters package: what two chapters share lives in a helper module (``common``,
    ``table3``, ``at_paper``) or in the library."""
    notebook = {f"sgquant.chapters.{m}" for m in CHAPTERS.values()}
    bad = [f"{path.relative_to(REPO)} imports {m}"
           for path in sorted((PACKAGE / "chapters").glob("*.py"))
           for m in sorted(_imported_modules(path) & notebook) if m != module_name(path)]
    assert not bad, bad


def test_benchmarks_import_no_chapter():
    """Benchmarks use library modules only, in an import or a job's ``module:function``
    name (:func:`sgquant.memory.run_isolated`)."""
    bad = []
    for path in BENCHMARKS:
        bad += [f"{path.name} imports {m}" for m in sorted(_imported_modules(path))
                if m == "sgquant.chapters" or m.startswith("sgquant.chapters.")]
        bad += [f"{path.name} runs {job}" for job in
                re.findall(r"sgquant\.chapters[\w.]*:\w+", path.read_text())]
    assert not bad, bad


def test_the_architecture_page_lists_every_module():
    page = (REPO / "book" / "architecture.md").read_text()
    missing = [module_name(p) for p in MODULES
               if p.name != "__init__.py" and f"`{module_name(p).split('.', 1)[1]}`" not in page
               and f"`{p.stem}`" not in page]
    assert not missing, missing
