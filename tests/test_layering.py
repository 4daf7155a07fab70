"""The dependency rules of docs/DESIGN.md: no import cycles, kernels import nothing from above
them, only the CLI imports click; and the shape of the tree (a small package root, small modules).
Checked on the source (ast), so a new import that breaks a rule fails here."""

import ast
import pathlib

import numbacnn

PACKAGE = pathlib.Path(numbacnn.__file__).parent


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name):
    folder = PACKAGE.parent.joinpath(*name.split("."))
    return folder.is_dir() or folder.with_suffix(".py").is_file()


def _imports(path):
    """Absolute names of the modules ``path`` imports, anywhere in the file (inside functions
    too), relative imports resolved; ``from package import module`` names the module."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # "from X import m" imports the module X.m; "from X import name" runs X itself.
            modules = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            names += modules + ([target] if len(modules) < len(node.names) else [])
    return [n for n in names if not n.startswith("numbacnn") or _is_module(n)]


def _import_graph():
    """{module: the numbacnn modules it imports}, over every module of the package."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[_module_name(path)] = {n for n in _imports(path) if n.startswith("numbacnn")} - {_module_name(path)}
    return graph


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    """Guard against a check that passes vacuously: a made-up cycle through three modules is found,
    and the real graph has edges that imports inside functions make."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = _import_graph()
    assert "numbacnn.runtime.cuda_device" in graph["numbacnn.runtime.devices"]  # inside get_device
    assert "numbacnn.runtime.jit_cache" in graph["numbacnn"]  # from .runtime import jit_cache


def test_the_package_root_is_small_and_no_module_is_long():
    root = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(root) <= 12, sorted(root)
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def test_kernels_import_nothing_from_above_them():
    offenders = []
    for path in sorted((PACKAGE / "kernels").rglob("*.py")):
        for name in _imports(path):
            if name.startswith("numbacnn") and not (name.startswith("numbacnn.kernels") or name == "numbacnn.errors"):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_errors_is_a_leaf():
    assert [n for n in _imports(PACKAGE / "errors.py") if n.startswith("numbacnn")] == []


def test_only_the_cli_imports_click():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "cli" not in path.relative_to(PACKAGE).parts and any(n.split(".")[0] == "click" for n in _imports(path))
    ]
    assert offenders == []


def test_the_resolver_sees_relative_imports():
    """Guard against a checker that passes vacuously: relative imports (three levels up here) are
    resolved."""
    names = _imports(PACKAGE / "kernels" / "cpu" / "conv" / "direct_channels.py")
    assert "numbacnn.kernels.workspace" in names
    assert "numbacnn.errors" in _imports(PACKAGE / "kernels" / "cuda" / "launch.py")


def test_layers_import_nothing_that_reads_or_writes_files_or_trains():
    """layers/ sits below formats/, data/, models/, training/, tools/ and cli/: Module.save and
    Module.load delegate to formats/module_files.py, which registers itself."""
    above = ("formats", "data", "models", "training", "tools", "cli", "onnx", "adversarial", "inspect", "distributed")
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / "layers").rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[:2] in [["numbacnn", part] for part in above]
    ]
    assert offenders == []
