"""No import cycle among keras_tl.backbones and keras_tl.weights, and
keras_tl.weights is a leaf: read with `ast` (no keras_tl module is imported),
counting imports at module level and inside functions alike.

An import of `a.b.c` from a module outside `a.b` also runs `a/b/__init__.py`,
so it counts as an import of `a.b` too; a module's own parent packages are
already being imported and do not count.
"""

import ast
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "keras_tl"
CHECKED = ("keras_tl.backbones", "keras_tl.weights")


def _module_files(package_dir):
    """`{module name: (path, is_package)}` of every `.py` file under `package_dir`."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def _ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _imported_names(tree, name, is_package):
    """Every module name an `import` / `from ... import` in `tree` names,
    relative imports resolved; `from m import x` gives `m` and `m.x`."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def import_graph(package_dir=PACKAGE_DIR):
    """`{module: set of modules its imports run}` within the package."""
    modules = _module_files(package_dir)
    graph = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own = _ancestors(name) | {name}
        targets = set()
        for imported in _imported_names(tree, name, is_package):
            if imported not in modules:
                continue  # a name imported from a module, or another library
            targets |= ({imported} | _ancestors(imported)) - own
        graph[name] = {target for target in targets if target in modules}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (or a
    module importing itself), each sorted: Tarjan's algorithm."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _within(graph, prefixes):
    inside = lambda name: name.startswith(prefixes)  # noqa: E731
    return {name: {t for t in targets if inside(t)} for name, targets in graph.items() if inside(name)}


@pytest.mark.core
def test_no_import_cycle_in_backbones_and_weights():
    graph = _within(import_graph(), CHECKED)
    assert len(graph) > 15  # the walk found the modules
    assert cycles(graph) == []


@pytest.mark.core
def test_weights_imports_nothing_from_backbones():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("keras_tl.weights"):
            assert not {t for t in targets if t.startswith("keras_tl.backbones")}, name


@pytest.mark.core
def test_a_cycle_through_a_package_init_is_found(tmp_path):
    """The graph sees what runs: `pkg.b` imports `pkg.a.x`, which runs
    `pkg/a/__init__.py`, which (inside a function) imports `pkg.b`."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "def f():\n    from pkg.b import g\n",
        "pkg/a/x.py": "import os\n",
        "pkg/b.py": "from pkg.a.x import os\n\ndef g():\n    pass\n",
        "pkg/c.py": "from . import b\nfrom .a import x\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    graph = import_graph(tmp_path / "pkg")
    assert graph["pkg.c"] == {"pkg.a", "pkg.a.x", "pkg.b"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
