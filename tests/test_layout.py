"""The house rules of the ``listserv`` package, read from its source with ``ast``.

A newcomer should be able to trust the tree (docs/architecture.md):

- packages import downwards only: the graph of imports between packages
  (and the few top-level modules) has no cycle, so it has none between
  modules either;
- each package says in its docstring which of its modules are core (pure:
  deciding) and which are shell (I/O: doing), and what it may import;
  the code is held to what the docstring says;
- a core module imports only core modules and no I/O library;
- no module takes an underscore name from another module;
- no module is over 400 lines, and at most 10 stay directly in listserv/.

Lazy imports inside functions count like any other: a cycle that only
works because one side imports late is still a cycle in the design.
The checker itself is tested on small packages written to ``tmp_path``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "listserv"
MAX_LINES = 400
MAX_TOP_LEVEL = 10

# Libraries that do I/O (network, database, processes, event loop, logging):
# a core module imports none of them.
IO_LIBRARIES = frozenset({
    "aiohttp", "aiosmtpd", "aiosmtplib", "aiosqlite", "apscheduler", "asyncio",
    "concurrent", "dns", "logging", "multiprocessing", "shutil", "socket", "sqlite3",
    "ssl", "subprocess", "tempfile",
})
# (module, library): why this core module may use it anyway.
CORE_EXCEPTIONS = {
    ("listserv.config", "socket"): "the default [server] hostname is socket.getfqdn()",
}


@dataclass
class Module:
    name: str                       # dotted, e.g. listserv.intake.server
    path: Path
    tree: ast.Module
    lines: int
    imports: set[str] = field(default_factory=set)          # listserv modules it imports
    libraries: set[str] = field(default_factory=set)        # other top-level packages
    private: list[str] = field(default_factory=list)        # "line N: module._name"

    @property
    def unit(self) -> str:
        """The package it belongs to, or the module's own name at the top level."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else "listserv"


def load(package: Path) -> dict[str, Module]:
    """Every module under ``package``, with its imports resolved to module names."""
    root = package.name
    modules: dict[str, Module] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        text = path.read_text(encoding="utf-8")
        modules[".".join(parts)] = Module(".".join(parts), path, ast.parse(text),
                                          len(text.splitlines()))
    for module in modules.values():
        _read_imports(module, modules, root)
    return modules


def _read_imports(module: Module, modules: dict[str, Module], root: str) -> None:
    is_package = module.path.name == "__init__.py"
    bound: dict[str, str] = {}   # local name -> listserv module it is bound to
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == root:
                    module.imports.add(alias.name)
                    bound[alias.asname or alias.name] = alias.name
                else:
                    module.libraries.add(top)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = module.name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([source] if source else []))
            if source.split(".")[0] != root:
                module.libraries.add(source.split(".")[0])
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                if candidate in modules:      # "from listserv.pkg import module"
                    module.imports.add(candidate)
                    bound[alias.asname or alias.name] = candidate
                else:
                    module.imports.add(source)
                    if _is_private(alias.name) and source != module.name:
                        module.private.append(f"line {node.lineno}: {source}.{alias.name}")
    for node in ast.walk(module.tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in bound and _is_private(node.attr)
                and bound[node.value.id] != module.name):
            module.private.append(f"line {node.lineno}: {bound[node.value.id]}.{node.attr}")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def module_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    return {m.name: {i for i in m.imports if i in modules and i != m.name}
            for m in modules.values()}


def unit_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m.unit: set() for m in modules.values()}
    for m in modules.values():
        for target in m.imports:
            if target in modules and modules[target].unit != m.unit:
                graph[m.unit].add(modules[target].unit)
    return graph


@dataclass(frozen=True)
class Declaration:
    """What a package's docstring says of itself."""

    core: frozenset[str]
    shell: frozenset[str]
    may_import: frozenset[str]


def declaration(docstring: str | None) -> Declaration | None:
    """Read the ``Core:``, ``Shell:`` and ``May import:`` lines of a docstring.

    A line that ends in a comma goes on in the next line.
    """
    found: dict[str, frozenset[str]] = {}
    lines = [line.strip() for line in (docstring or "").splitlines()]
    for i, line in enumerate(lines):
        key, sep, rest = line.partition(":")
        if sep and key in ("Core", "Shell", "May import"):
            while rest.rstrip().endswith(",") and i + 1 < len(lines):
                i += 1
                rest += " " + lines[i]
            names = [n.strip() for n in rest.replace("(none)", "").split(",")]
            found[key] = frozenset(n for n in names if n)
    if set(found) != {"Core", "Shell", "May import"}:
        return None
    return Declaration(found["Core"], found["Shell"], found["May import"])


def declarations(modules: dict[str, Module]) -> dict[str, Declaration | None]:
    """Per package (and for the top level, ``listserv``), its declaration."""
    return {m.unit: declaration(ast.get_docstring(m.tree)) for m in modules.values()
            if m.path.name == "__init__.py"}


def is_top_level(module: Module) -> bool:
    """A module directly in listserv/ (declared in listserv/__init__.py), not a package."""
    return module.name.count(".") == 1 and module.path.name != "__init__.py"


def short(module: Module) -> str:
    return module.name.rsplit(".", 1)[-1]


def undeclared_modules(modules: dict[str, Module]) -> list[str]:
    decl = declarations(modules)
    problems = []
    for unit, d in sorted(decl.items()):
        if d is None:
            problems.append(f"{unit}: the package docstring lacks Core:/Shell:/May import: lines")
            continue
        members = {short(m) for m in modules.values() if m.path.name != "__init__.py"
                   and (is_top_level(m) if unit == "listserv" else m.unit == unit)}
        for name in sorted(members - d.core - d.shell):
            problems.append(f"{unit}.{name}: neither Core nor Shell in the package docstring")
        for name in sorted((d.core | d.shell) - members):
            problems.append(f"{unit}: declares {name}, which does not exist")
        for name in sorted(d.core & d.shell):
            problems.append(f"{unit}.{name}: declared both Core and Shell")
    return problems


def is_core(module: Module, decl: dict[str, Declaration | None]) -> bool:
    d = decl.get("listserv" if is_top_level(module) else module.unit)
    return d is not None and short(module) in d.core


def impure_core(modules: dict[str, Module]) -> list[str]:
    decl = declarations(modules)
    problems = []
    for m in sorted(modules.values(), key=lambda m: m.name):
        if not is_core(m, decl):
            continue
        for lib in sorted(m.libraries & IO_LIBRARIES):
            if (m.name, lib) not in CORE_EXCEPTIONS:
                problems.append(f"{m.name} is core but imports {lib}")
        for target in sorted(m.imports):
            t = modules.get(target)
            if t is not None and t.path.name != "__init__.py" and not is_core(t, decl):
                problems.append(f"{m.name} is core but imports the shell module {target}")
    return problems


def undeclared_imports(modules: dict[str, Module]) -> list[str]:
    decl = declarations(modules)
    graph = unit_graph(modules)
    problems = []
    for unit, targets in sorted(graph.items()):
        d = decl.get(unit)
        if d is None or unit == "listserv":   # top-level modules: no line of their own
            continue
        for target in sorted(targets - d.may_import):
            problems.append(f"{unit} imports {target}, not in its 'May import:' line")
        for target in sorted(d.may_import - targets):
            problems.append(f"{unit} declares 'May import: {target}' but does not import it")
    return problems


# -- the rules, on listserv ------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load(PACKAGE)


def test_no_module_is_over_400_lines(modules: dict[str, Module]) -> None:
    long = [f"{m.name}: {m.lines} lines" for m in modules.values() if m.lines > MAX_LINES]
    assert not long, "split these, by what they decide and what they do:\n" + "\n".join(long)


def test_at_most_ten_modules_stay_at_the_top(modules: dict[str, Module]) -> None:
    top = sorted(m.name for m in modules.values() if is_top_level(m))
    assert len(top) <= MAX_TOP_LEVEL, top


def test_no_import_cycle_between_modules(modules: dict[str, Module]) -> None:
    cycle = find_cycle(module_graph(modules))
    assert cycle is None, " -> ".join(cycle or [])


def test_packages_import_downwards_only(modules: dict[str, Module]) -> None:
    cycle = find_cycle(unit_graph(modules))
    assert cycle is None, " -> ".join(cycle or [])


def test_no_module_takes_a_private_name_from_another(modules: dict[str, Module]) -> None:
    reaches = [f"{m.name} {p}" for m in modules.values() for p in m.private]
    assert not reaches, "make the name public, with a docstring, or move it:\n" + "\n".join(reaches)


def test_every_module_is_declared_core_or_shell(modules: dict[str, Module]) -> None:
    problems = undeclared_modules(modules)
    assert not problems, "\n".join(problems)


def test_core_modules_are_pure(modules: dict[str, Module]) -> None:
    problems = impure_core(modules)
    assert not problems, "\n".join(problems)


def test_packages_import_only_what_they_declare(modules: dict[str, Module]) -> None:
    problems = undeclared_imports(modules)
    assert not problems, "\n".join(problems)


# -- the checker, on packages made to break a rule ---------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "listserv"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


TOP = '"""Top.\n\nCore: config\nShell: (none)\nMay import: (none)\n"""\n'


def test_checker_finds_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__.py": TOP,
        "config.py": "",
        "a/__init__.py": '"""A.\n\nCore: one\nShell: (none)\nMay import: b\n"""\n',
        "a/one.py": "from listserv.b.two import thing\n",
        "b/__init__.py": '"""B.\n\nCore: (none)\nShell: two\nMay import: a\n"""\n',
        "b/two.py": "def thing():\n    from listserv.a import one\n    return one\n",
    })
    modules = load(package)
    assert find_cycle(module_graph(modules)) == ["listserv.a.one", "listserv.b.two",
                                                 "listserv.a.one"]
    assert find_cycle(unit_graph(modules)) == ["a", "b", "a"]


def test_checker_finds_private_reaches_both_ways(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__.py": TOP,
        "config.py": "_secret = 1\n",
        "user.py": ("from listserv.config import _secret\nfrom listserv import config\n"
                    "x = config._secret + _secret\n"),
        "fine.py": "from listserv import __version__\n_own = 1\nprint(_own)\n",
    })
    modules = load(package)
    assert modules["listserv.user"].private == ["line 1: listserv.config._secret",
                                                "line 3: listserv.config._secret"]
    assert modules["listserv.fine"].private == []


def test_checker_holds_core_and_imports_to_the_docstring(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__.py": TOP,
        "config.py": "",
        "p/__init__.py": '"""P.\n\nCore: pure\nShell: io\nMay import: config, q\n"""\n',
        "p/pure.py": "import sqlite3\nfrom listserv.p import io\n",
        "p/io.py": "from listserv.r import x\n",
        "p/stray.py": "",
        "r/__init__.py": '"""R, with no declaration."""\n',
        "r/x.py": "",
    })
    modules = load(package)
    assert impure_core(modules) == [
        "listserv.p.pure is core but imports sqlite3",
        "listserv.p.pure is core but imports the shell module listserv.p.io",
    ]
    assert undeclared_modules(modules) == [
        "p.stray: neither Core nor Shell in the package docstring",
        "r: the package docstring lacks Core:/Shell:/May import: lines",
    ]
    assert undeclared_imports(modules) == [
        "p imports r, not in its 'May import:' line",
        "p declares 'May import: config' but does not import it",
        "p declares 'May import: q' but does not import it",
    ]


def test_declaration_lines_may_go_on_after_a_comma() -> None:
    d = declaration("P.\n\nCore: a,\n  b\nShell: (none)\nMay import: x, y,\n    z\n")
    assert d == Declaration(frozenset({"a", "b"}), frozenset(), frozenset({"x", "y", "z"}))
    assert declaration("P.\n\nCore: a\nShell: b\n") is None


def test_checker_counts_long_modules(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"__init__.py": TOP, "config.py": "x = 1\n" * 401})
    assert load(package)["listserv.config"].lines == 401
