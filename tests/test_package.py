"""The package reads in the book's order: each module imports only the modules listed above it in
flowlib/__init__.py, and the list names every module of the package."""

import ast
import re
from pathlib import Path

import flowlib

PACKAGE = Path(flowlib.__file__).parent


def listed_order() -> list[str]:
    return re.findall(r"^\* :mod:`flowlib\.(\w+)`", flowlib.__doc__, re.M)


def flowlib_imports(module: str) -> set[str]:
    """The flowlib modules that ``module`` imports, at the top or inside functions."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowlib"):
            if node.module == "flowlib":
                found |= {alias.name for alias in node.names}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("flowlib.")}
    return found - {"_validate", module}


def test_the_module_list_names_every_module():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "_validate"}
    assert set(listed_order()) == modules


def test_each_module_imports_only_modules_above_it():
    order = listed_order()
    for position, module in enumerate(order):
        later = flowlib_imports(module) - set(order[:position])
        assert not later, f"flowlib.{module} imports {sorted(later)}, listed after it in flowlib/__init__.py"


def test_version_is_the_packages():
    """``flowlib.__version__`` is what pip installs (pyproject.toml): the install cells pin it."""
    import tomllib
    from notebooks import ROOT

    import flowlib

    assert flowlib.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_no_library_function_is_longer_than_80_lines_of_code():
    """Small functions: at most 80 lines each, its docstring not counted (Google-style docstrings are long)."""
    too_long = []
    for path in sorted(Path(flowlib.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if (
                    isinstance(first, ast.Expr)
                    and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)
                ):
                    lines -= first.end_lineno - first.lineno + 1
                if lines > 80:
                    too_long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not too_long, too_long
