"""The dependency rules of docs/DESIGN.md: kernels import nothing from above them, and only the CLI
imports click. Checked on the source (ast), so a new import that breaks a rule fails here."""

import ast
import pathlib

import numbacnn

PACKAGE = pathlib.Path(numbacnn.__file__).parent


def _imports(path):
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names += [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names.append(node.module)
    return names


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
    """Guard against a checker that passes vacuously: conv.py's relative imports are resolved."""
    names = _imports(PACKAGE / "kernels" / "cpu" / "conv.py")
    assert "numbacnn.kernels.workspace" in names
    assert "numbacnn.errors" in _imports(PACKAGE / "kernels" / "cuda" / "launch.py")
