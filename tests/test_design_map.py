"""docs/DESIGN.md's map of the code matches the tree: every module of the package has a row in its
module tables (a row names a module by path, or lists several of one folder, or one folder's
``*.py``), and every module a row names exists."""

import pathlib
import re

import numbacnn

PACKAGE = pathlib.Path(numbacnn.__file__).parent
DESIGN = PACKAGE.parent / "docs" / "DESIGN.md"


def _rows():
    """The first cells of the module tables ("Every module in a line"), as lists of paths."""
    text = DESIGN.read_text()
    section = text[text.index("## Every module in a line") : text.index("## Kernel contract")]
    rows = []
    for line in section.splitlines():
        cell = line.split("|")[1] if line.startswith("| `") else None
        if cell:
            names = re.findall(r"`([^`]+)`", cell)
            folder = names[0].rsplit("/", 1)[0] if "/" in names[0] else ""
            # "`layers/conv.py`, `linear.py`": the later names are in the first one's folder.
            rows.append([n if "/" in n or not folder else f"{folder}/{n}" for n in names])
    return rows


def _documented(module, rows):
    folder = module.rsplit("/", 1)[0] if "/" in module else ""
    return any(module in names or (folder and f"{folder}/*.py" in names) for names in rows)


def test_every_module_has_a_row():
    rows = _rows()
    modules = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))]
    missing = [m for m in modules if not _documented(m, rows) and not m.endswith("/__init__.py")]
    assert missing == []


def test_every_module_a_row_names_exists():
    named = [n for names in _rows() for n in names if n.endswith(".py") and "*" not in n]
    assert len(named) > 60
    assert [n for n in named if not (PACKAGE / n).is_file()] == []
