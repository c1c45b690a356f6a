"""The package's shape (issue 10), read from the source with ``ast``: imports run one way (no circle among the
modules of waveunet_tf and data_pipeline, counting imports inside functions), own modules are imported at module
top unless they are heavy themselves, no module over 400 lines, no function over 80 lines, and the command line
imports no heavy library before a command runs (a fast ``waveunet --help``)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("waveunet_tf", "data_pipeline")
# Third-party libraries slow or fragile enough to import only inside the functions that use them.
HEAVY = {"tensorflow", "keras", "museval", "musdb", "matplotlib", "tensorflow_io", "stempeg", "grpc",
         "tensorflow_serving", "soundfile", "soxr", "librosa", "tqdm"}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def find_modules(root=ROOT, packages=PACKAGES) -> dict:
    """{dotted module name: path} of every .py file under the packages (a package is its __init__)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _inside_function(node, parents) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def imports_of(name, path, modules) -> list:
    """[(imported name, line, at module top?)]: own modules as their dotted name (``from pkg import mod`` names
    ``pkg.mod``), third-party ones as their top-level package."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: level 1 is the module's own package
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        top = not _inside_function(node, parents)
        for target in targets:
            own = target.split(".")[0] in PACKAGES
            found.append((target if own else target.split(".")[0], node.lineno, top))
    return found


def import_graph(modules) -> dict:
    """{module: {(own module it imports, line, at top?)}}, imports inside functions included."""
    return {name: {(t, line, top) for t, line, top in imports_of(name, path, modules) if t in modules}
            for name, path in modules.items()}


def heavy_modules(modules) -> set:
    """Own modules whose import (at module top, transitively) imports a heavy library."""
    heavy = {n for n, p in modules.items() if any(top and t in HEAVY for t, _, top in imports_of(n, p, modules))}
    graph = import_graph(modules)
    while True:
        more = {n for n, edges in graph.items() if n not in heavy and any(top and t in heavy for t, _, top in edges)}
        if not more:
            return heavy
        heavy |= more


def import_circles(modules) -> list:
    """Each circle (strongly connected set of two or more modules, or a module importing itself), sorted."""
    graph = {n: {t for t, _, _ in edges} for n, edges in import_graph(modules).items()}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while v not in component:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
            if len(component) > 1 or v in graph[v]:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(circles)


def long_functions(modules) -> list:
    """["module.function: N lines"] for every function (methods and nested ones too) over the limit."""
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name} (line {node.lineno}): {lines} lines")
    return found


def hidden_own_imports(modules) -> list:
    """["module:line imports X inside a function"] for light own modules imported inside a function."""
    heavy = heavy_modules(modules)
    return [f"{n}:{line} imports {t} inside a function" for n, edges in sorted(import_graph(modules).items())
            for t, line, top in sorted(edges, key=lambda e: e[1]) if not top and t not in heavy]


def test_the_checks_find_what_they_look_for(tmp_path):
    pkg = tmp_path / "waveunet_tf"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from waveunet_tf.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n" + "    x = 1\n" * 80)
    (pkg / "net.py").write_text("import keras\n")
    (pkg / "c.py").write_text("def g():\n    from waveunet_tf import net\n    from waveunet_tf.sub import b\n")
    modules = find_modules(tmp_path, ("waveunet_tf",))
    assert import_circles(modules) == [["waveunet_tf.a", "waveunet_tf.sub.b"]]
    assert heavy_modules(modules) == {"waveunet_tf.net"}
    assert hidden_own_imports(modules) == ["waveunet_tf.c:3 imports waveunet_tf.sub.b inside a function",
                                           "waveunet_tf.sub.b:2 imports waveunet_tf.a inside a function"]
    assert long_functions(modules) == ["waveunet_tf.sub.b.f (line 1): 82 lines"]


def test_no_import_circle():
    circles = import_circles(find_modules())
    assert not circles, "import circles (imports inside functions count):\n" + "\n".join(map(" <-> ".join, circles))


def test_own_modules_are_imported_at_module_top():
    hidden = hidden_own_imports(find_modules())
    assert not hidden, "move these to the module's top (only modules that import TensorFlow & co may wait):\n" + \
        "\n".join(hidden)


def test_no_module_over_400_lines():
    long = [f"{n}: {len(p.read_text().splitlines())} lines" for n, p in find_modules().items()
            if len(p.read_text().splitlines()) > MAX_MODULE_LINES]
    assert not long, "\n".join(long)


def test_no_function_over_80_lines():
    long = long_functions(find_modules())
    assert not long, "\n".join(long)


def test_the_command_line_imports_no_heavy_library_before_a_command_runs():
    code = ("import sys\nfrom waveunet_tf.cli import build_parser\nbuild_parser()\n"
            f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]", f"waveunet --help imports {res.stdout.strip()}"
