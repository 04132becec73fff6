"""No import cycle anywhere in keras_tl, between modules or between its
packages, and keras_tl.weights is a leaf: read with `ast` (no keras_tl module
is imported), counting imports at module level and inside functions alike (a
function-local import only hides a circle until the function runs).

An import of `a.b.c` from a module outside `a.b` also runs `a/b/__init__.py`,
so it counts as an import of `a.b` too; a module's own parent packages are
already being imported and do not count.
"""

import ast
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "keras_tl"


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


def cycle_path(graph, component, start=None):
    """One import circle within `component` (a strongly connected set), as
    `a -> b -> ... -> a`: the shortest from `start` (default: its first
    member) back to itself."""
    start, members = start or component[0], set(component)
    paths, queue = {start: [start]}, [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph.get(node, ())):
            if child == start:
                return " -> ".join(paths[node] + [start])
            if child in members and child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    raise AssertionError(f"{component} is not strongly connected")


def package_graph(graph):
    """The graph between keras_tl's top-level units (a sub-package with all
    its modules, or a top-level module such as keras_tl.result)."""
    unit = lambda name: ".".join(name.split(".")[:2])  # noqa: E731
    packages = {}
    for name, targets in graph.items():
        packages.setdefault(unit(name), set()).update(
            unit(target) for target in targets if unit(target) != unit(name))
    return packages


def _described(graph):
    """The shortest circle through each module of each cycle, once each."""
    paths = []
    for component in cycles(graph):
        for start in component:
            path = cycle_path(graph, component, start).split(" -> ")[:-1]
            turn = path.index(min(path))
            path = " -> ".join(path[turn:] + path[:turn + 1])
            if path not in paths:
                paths.append(path)
    return "\n".join(paths)


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert len(graph) > 60  # the walk found the modules
    assert not cycles(graph), "import circles between modules:\n" + _described(graph)


def test_no_import_cycle_between_packages():
    graph = package_graph(import_graph())
    assert {"keras_tl.tasks", "keras_tl.training", "keras_tl.result"} <= set(graph)
    assert not cycles(graph), "import circles between packages:\n" + _described(graph)


def test_weights_imports_nothing_from_backbones():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("keras_tl.weights"):
            assert not {t for t in targets if t.startswith("keras_tl.backbones")}, name


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
    assert cycle_path(graph, ["pkg.a", "pkg.b"]) == "pkg.a -> pkg.b -> pkg.a"
    # between packages: pkg.c (a module) is outside the circle of pkg.a and pkg.b
    assert package_graph(graph)["pkg.c"] == {"pkg.a", "pkg.b"}
    assert cycles(package_graph(graph)) == [["pkg.a", "pkg.b"]]


def test_a_package_cycle_without_a_module_cycle_is_found(tmp_path):
    """`p.x` -> `q.y` and `q.z` -> `p.w`: no module imports itself back, but
    packages `p` and `q` need each other."""
    files = {"top/__init__.py": "", "top/p/__init__.py": "", "top/q/__init__.py": "",
             "top/p/x.py": "from top.q import y\n", "top/q/y.py": "",
             "top/q/z.py": "def f():\n    from top.p.w import g\n", "top/p/w.py": ""}
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    graph = import_graph(tmp_path / "top")
    assert cycles(graph) == []
    packages = package_graph(graph)
    assert cycles(packages) == [["top.p", "top.q"]]
    assert cycle_path(packages, ["top.p", "top.q"]) == "top.p -> top.q -> top.p"


def _imports_of_tests(tree):
    """The names of `tests` modules that the import statements of `tree` name."""
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        yield from (name for name in names if name == "tests" or name.startswith("tests."))


def _docstring_examples(tree):
    """`(line, source)` of every `>>>` example in the docstrings of `tree`."""
    import doctest

    parser = doctest.DocTestParser()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node, clean=True)
            for example in parser.get_examples(docstring or ""):
                yield getattr(node, "lineno", 1) + example.lineno, example.source


def test_no_library_module_or_docstring_imports_the_tests():
    """The wheel ships keras_tl without tests/: an example importing
    `tests.helpers` runs in this checkout only."""
    found = []
    for path, _ in _module_files(PACKAGE_DIR).values():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{path.name}: import {name}" for name in _imports_of_tests(tree)]
        for line, source in _docstring_examples(tree):
            try:
                example = ast.parse(source)
            except SyntaxError:
                continue  # a continuation the example parser split off
            found += [f"{path.name}:{line} (docstring): import {name}"
                      for name in _imports_of_tests(example)]
    assert not found, "\n".join(found)


def test_an_example_importing_the_tests_is_found():
    tree = ast.parse('def f():\n    """Example:\n    >>> from tests.helpers import x\n    """\n')
    assert [list(_imports_of_tests(ast.parse(source))) for _, source in
            _docstring_examples(tree)] == [["tests.helpers"]]
