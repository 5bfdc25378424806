"""The packages import each other only as docs/ARCHITECTURE.md draws it (lazy imports included), and no
module imports itself back through others when it is loaded."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = ("wire", "unit", "models", "provisioning", "central", "hil")
# the nodes of the picture, most specific first: a file or an imported module belongs to the first that matches
NODES = ("unit.sources", "unit.commands", "models.training", "central.api", "central.routes", "central.console",
         "wire", "unit", "models", "provisioning", "central", "hil", "benchmarks", "firmware")
ALLOWED = {
    "wire": set(),
    "unit": {"wire", "unit.sources"},
    "unit.sources": {"unit"},
    "unit.commands": {"unit", "unit.sources", "wire"},
    "models": set(),
    "models.training": {"unit", "unit.sources", "provisioning", "hil", "wire"},
    "provisioning": {"unit", "unit.sources", "wire"},
    "central": {"wire"},
    "central.api": {"central", "central.routes", "central.console", "wire"},
    "central.routes": {"central", "central.console", "wire"},
    "central.console": {"central", "central.routes", "wire"},
    "hil": {"unit", "unit.sources", "central", "wire", "models.training"},
    "benchmarks": {"unit", "unit.sources", "central", "hil", "wire"},
    "firmware": {"unit"},
}
ONLY_FROM = {("hil", "models.training"): {"hil/build_demo.py"},     # the demo builder renders plates
             ("models.training", "hil"): {"models/training/siteclips.py"},   # a site's clips as the harness runs them
             ("models.training", "wire"): {"models/training/siteclips.py"}}
SOURCES_TAKE = {"unit.schema", "unit.clips"}                        # and unit.config for type names only


def node(dotted: str) -> str | None:
    return next((n for n in NODES if dotted == n or dotted.startswith(n + ".")), None)


def code_files() -> dict[str, str]:
    """Repository-relative path -> the node it belongs to."""
    out = {}
    for path in sorted(REPO.glob("*/**/*.py")) + [REPO / "firmware" / "build-bundle"]:
        rel = path.relative_to(REPO).as_posix()
        if rel.split("/")[0] not in TOP + ("benchmarks",) and not rel.startswith("firmware/"):
            continue
        dotted = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        out[rel] = "firmware" if rel.startswith("firmware/") else node(dotted)
    return out


def imported(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module, only for type checking) for every import in the file; `from a import b` gives a.b too,
    so that `from central import routes` counts as importing central.routes."""
    typing_only: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            typing_only |= {id(m) for s in n.body for m in ast.walk(s)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [(a.name, id(n) in typing_only) for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            out += [(f"{n.module}.{a.name}", id(n) in typing_only) for a in n.names]
    return out


def edges() -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rel, src in code_files().items():
        for module, _ in imported(ast.parse((REPO / rel).read_text("utf-8"), rel)):
            dst = node(module)
            if dst is not None and dst != src:
                found.setdefault((src, dst), set()).add(rel)
    return found


def test_every_import_between_packages_is_one_the_architecture_draws():
    found = edges()
    assert ("unit", "wire") in found and ("central", "wire") in found and ("hil", "central") in found
    stray = {f"{a} -> {b}": sorted(files) for (a, b), files in found.items() if b not in ALLOWED[a]}
    assert stray == {}, "an import docs/ARCHITECTURE.md does not draw: change the code, or the picture and this test"
    narrow = {f"{a} -> {b}": sorted(found[(a, b)] - files) for (a, b), files in ONLY_FROM.items()
              if found.get((a, b), set()) - files}
    assert narrow == {}


def test_camera_sources_take_only_the_schema_and_the_clip_format_from_the_unit():
    taken = {}
    for rel, src in code_files().items():
        if src != "unit.sources":
            continue
        for module, typing_only in imported(ast.parse((REPO / rel).read_text("utf-8"), rel)):
            owner = next((m for m in SOURCES_TAKE | {"unit.config"} if module == m or module.startswith(m + ".")),
                         module)
            if node(module) == "unit" and not (owner in SOURCES_TAKE or (owner == "unit.config" and typing_only)):
                taken.setdefault(rel, []).append(module)
    assert len([1 for s in code_files().values() if s == "unit.sources"]) >= 8
    assert taken == {}


def test_nothing_outside_tests_imports_a_test_module():
    test_modules = {p.stem for p in (REPO / "tests").glob("*.py")}
    bad = {rel: sorted({m.split(".")[0] for m, _ in imported(ast.parse((REPO / rel).read_text("utf-8"), rel))}
                       & test_modules)
           for rel in code_files()}
    assert {rel: names for rel, names in bad.items() if names} == {}


def module_level_imports(tree: ast.Module, package: str) -> set[str]:
    """Modules imported when the file is (not inside functions, not for type checking only)."""
    out: set[str] = set()
    todo = list(tree.body)
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            todo += n.orelse
            continue
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                parts = package.split(".")[: len(package.split(".")) - (n.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in n.names}
        todo += list(ast.iter_child_nodes(n))
    return out


def test_no_import_cycles_between_modules():
    modules = {}
    for rel in code_files():
        if rel.endswith(".py"):
            dotted = rel.removesuffix(".py").replace("/", ".")
            modules[dotted.removesuffix(".__init__")] = (rel, dotted.removesuffix(".__init__") if dotted.endswith(
                "__init__") else dotted.rpartition(".")[0])
    graph = {m: {d for d in module_level_imports(ast.parse((REPO / rel).read_text("utf-8"), rel), pkg)
                 if d in modules and d != m}
             for m, (rel, pkg) in modules.items()}
    assert len(graph) > 150 and graph["unit.service"] and graph["central.api"]
    cycles = []
    for start in graph:                        # depth-first from each module: a path back to it is a cycle
        stack, seen = [(start, (start,))], set()
        while stack:
            m, path = stack.pop()
            for d in graph[m]:
                if d == start:
                    cycles.append(" -> ".join(path + (d,)))
                elif d not in seen:
                    seen.add(d)
                    stack.append((d, path + (d,)))
    assert cycles == []
