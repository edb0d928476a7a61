"""The version of ``flowlib`` wherever it is pinned: ``pyproject.toml``, ``flowlib.__version__``, every chapter's
install cell and the generated editions' (``git+…@v<version>``).

The release workflow (``.github/workflows/release.yml``) tags ``v<version>`` only when :func:`pinned` finds one
version everywhere (``python editions/versions.py`` prints it, standard library only); ``python -m editions --bump
X.Y.Z`` rewrites the sources and the editions to a new one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = ROOT / "flowlib" / "__init__.py"
#: ``version = "0.6.0"`` in pyproject.toml, ``__version__ = "0.6.0"`` in the package.
_PYPROJECT_VERSION = re.compile(r'^version = "([^"]+)"', re.M)
_PACKAGE_VERSION = re.compile(r'^__version__ = "([^"]+)"', re.M)
#: The tag an install cell installs (``…/flow-maps@v0.6.0``), in source and in JSON-escaped form alike.
_INSTALL_TAG = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+@v([0-9][\w.+-]*)")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([ab]|rc)?[0-9]*$")


def _notebooks() -> list[Path]:
    return [path for folder in ("book", "colab", "student") for path in sorted((ROOT / folder).glob("[0-9]*.ipynb"))]


def pinned() -> dict[str, set[str]]:
    """Each file that names the version → the versions it names (one, when all is well)."""
    found = {
        "pyproject.toml": set(_PYPROJECT_VERSION.findall(PYPROJECT.read_text())),
        "flowlib/__init__.py": set(_PACKAGE_VERSION.findall(PACKAGE.read_text())),
    }
    for path in _notebooks():
        found[str(path.relative_to(ROOT))] = set(_INSTALL_TAG.findall(path.read_text(encoding="utf-8")))
    return found


def disagreements() -> list[str]:
    """Messages for every file whose version is missing or differs from pyproject.toml's (empty: all agree)."""
    found = pinned()
    versions = found["pyproject.toml"]
    if len(versions) != 1:
        return [f"pyproject.toml names {len(versions)} versions: {sorted(versions)}"]
    return [
        f"{name} pins {sorted(names) or 'no version'}, pyproject.toml says {next(iter(versions))}"
        for name, names in found.items()
        if names != versions
    ]


def package() -> str:
    """The version in ``pyproject.toml``: the one an edition is stamped with and a grader compares against."""
    return _PYPROJECT_VERSION.findall(PYPROJECT.read_text())[0]


def current() -> str:
    """The one version every file agrees on.

    Raises:
        ValueError: the files disagree (the message lists each one that does).
    """
    problems = disagreements()
    if problems:
        raise ValueError("the version is not the same everywhere:\n  " + "\n  ".join(problems))
    return next(iter(pinned()["pyproject.toml"]))


def bump(new: str) -> list[Path]:
    """Write ``new`` into pyproject.toml, ``flowlib.__version__`` and every chapter's install cell (the sources;
    regenerate the editions afterwards). Returns the files written.

    Raises:
        ValueError: ``new`` is not a version like ``0.7.0``, or the files disagree before the bump.
    """
    if not isinstance(new, str) or not _VERSION.match(new):
        raise ValueError(f"new version must look like 0.7.0 (or 0.7.0rc1); got {new!r}")
    old = current()
    written = []
    for path, pattern, replacement in (
        (PYPROJECT, _PYPROJECT_VERSION, f'version = "{new}"'),
        (PACKAGE, _PACKAGE_VERSION, f'__version__ = "{new}"'),
    ):
        path.write_text(pattern.sub(replacement, path.read_text(), count=1))
        written.append(path)
    for path in sorted((ROOT / "book").glob("[0-9]*.ipynb")):
        text = path.read_text(encoding="utf-8")
        updated = _INSTALL_TAG.sub(lambda m: m.group(0).replace(f"@v{old}", f"@v{new}"), text)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    try:
        print(current())
    except ValueError as error:
        sys.exit(str(error))
