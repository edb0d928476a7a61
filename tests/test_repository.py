"""The repository keeps its promises: one repository URL, clean notebooks, the chapter skeleton,
citations that resolve, a README whose test command is what CI runs, and no helper defined twice."""

import ast
import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml
from notebooks import CHAPTERS, ROOT

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_chapters_and_the_toc_lists_exactly_them():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(book/\S+)", toc))
    assert len(CHAPTERS) >= 4
    for path in CHAPTERS:
        assert f"book/{path.stem}" in listed, f"{path.name} is not in _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".ipynb", ".md")), f"{entry} does not exist"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_notebook_is_committed_without_outputs(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_badge_and_install_cell_use_the_configured_repository_and_version(path):
    """The badge opens the chapter's Colab edition; the install cell pins the tag of flowlib's version."""
    text = [source(c) for c in cells(path)]
    owner_repo = REPO_URL.removeprefix("https://github.com/")
    badge = f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/colab/{path.name}"
    assert badge in text[0], f"{path.name}: the first cell needs the Colab badge {badge}"
    install = [t for t in text if "%pip install" in t]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    pinned = f'"flowlib @ git+{REPO_URL}@v{version}"'
    assert len(install) == 1 and pinned in install[0], f"{path.name}: the install cell must install {pinned}"
    assert "raise RuntimeError(" in install[0], f"{path.name}: a failed install must say what to do"
    urls = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+)", "\n".join(text)))
    assert urls <= {owner_repo}, f"{path.name} names another repository: {urls}"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_follows_the_skeleton(path):
    all_cells = cells(path)
    markdown = "\n".join(source(c) for c in all_cells if c["cell_type"] == "markdown")
    code = [source(c) for c in all_cells if c["cell_type"] == "code"]
    assert source(all_cells[0]).startswith("# "), "a chapter starts with its title"
    for heading in ("**You will learn**", "**Prerequisites**", "## Exercises", "## Summary", "## References"):
        assert heading in markdown, f"{path.name} lacks {heading}"
    assert "chapter.setup(" in code[0], "the first code cell is the set-up cell"
    assert markdown.count("{exercise}") >= 3, "at least three exercises"
    assert markdown.count("{exercise}") == markdown.count("{solution}") + markdown.count("{solution-start}")
    assert "{footbibliography}" in markdown


def test_every_citation_resolves():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    texts = [source(c) for p in CHAPTERS for c in cells(p)] + [p.read_text() for p in (ROOT / "book").glob("*.md")]
    cited = {
        k.strip()
        for t in texts
        for group in re.findall(r"\{(?:foot)?cite(?::\w+)?\}`([^`]+)`", t)
        for k in group.split(",")
    }
    assert cited, "the book cites its sources"
    assert cited <= keys, f"unknown citation keys: {cited - keys}"


def test_no_function_is_defined_in_two_notebooks():
    """Define once: a helper needed by two chapters belongs in flowlib."""
    owners: dict[str, str] = {}
    for path in CHAPTERS:
        for cell in cells(path):
            if cell["cell_type"] != "code":
                continue
            code = "\n".join(line for line in source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.FunctionDef):
                    assert node.name not in owners or owners[node.name] == path.name, (
                        f"{node.name} is defined in {owners[node.name]} and {path.name}: move it into flowlib"
                    )
                    owners[node.name] = path.name


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) == 2
    build, tests = commands
    assert "jupyter-book build" in build and "-W" in build and "--all" in build
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci, ".ci/run must run the README's test command verbatim"
    assert build in ci and "FLOWLIB_CACHE=" in ci.split(build)[0], ".ci/run builds the site as a new reader does"
    assert "FLOWLIB_SITE=_build/html" in ci.split(build)[1], "and the site tests then read that full-mode build"


def test_a_cross_reference_to_an_exercise_is_not_preceded_by_the_word():
    """{ref} renders an exercise's label as "Exercise 12.1", so "exercise {ref}`...`" reads "exercise Exercise"."""
    texts = [(p.name, source(c)) for p in CHAPTERS for c in cells(p) if c["cell_type"] == "markdown"]
    texts += [(p.name, p.read_text()) for p in (ROOT / "book").glob("*.md")]
    doubled = [(name, m.group(0)) for name, text in texts for m in re.finditer(r"(?i)exercises? \{ref\}`ex-", text)]
    assert not doubled, doubled


def test_package_is_named_explicitly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["name"] == "flowlib"
    assert project["tool"]["setuptools"]["packages"] == ["flowlib", "flowlib.assets"]
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"jupyter-book>=1\.0\.4,<2", requirements)


def landscape_rows() -> dict[str, list[str]]:
    """The 'In this book' table of the landscape appendix, by method name."""
    text = (ROOT / "book" / "appendix_landscape.md").read_text()
    section = text.split("## In this book", 1)[1].split("##", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells] for cells in rows[1:]}


def landscape_method(cells: list[str]) -> str:
    """The method a row of the landscape table names: the first function of ``flowlib.losses`` in its last column
    that is also a method of ``fit`` (a method is named after its loss function)."""
    from flowlib.fitting import METHODS

    named = [f for f in re.findall(r"`losses\.(\w+)`", cells[6]) if f in METHODS]
    assert named, f"{cells[0]}: the row names no loss function of a method of fit"
    return named[0]


def test_landscape_lists_every_method_with_its_counted_cost_chapter_and_function():
    from flowlib import losses
    from flowlib.fitting import COST, METHODS

    rows = landscape_rows()
    assert sorted(landscape_method(cells) for cells in rows.values()) == sorted(METHODS), "one row per method"
    for name, cells in rows.items():
        method = landscape_method(cells)
        assert int(cells[4]) == COST[method], f"{name}: the table says cost {cells[4]}, COST says {COST[method]}"
        for link in re.findall(r"\]\(([^)]+)\)", cells[5]):
            assert (ROOT / "book" / link).exists(), f"{name}: chapter link {link} does not exist"
        for function in re.findall(r"`losses\.(\w+)`", cells[6]):
            assert callable(getattr(losses, function, None)), f"{name}: flowlib.losses.{function} does not exist"


def test_every_method_appears_in_a_chapter():
    from flowlib.fitting import METHODS

    code = "".join(source(c) for p in CHAPTERS for c in cells(p) if c["cell_type"] == "code")
    for method in METHODS:
        assert f'"{method}"' in code, f"no chapter trains {method!r} by name"


def test_benchmark_table_in_the_book_is_generated_from_its_results():
    from benchmarks import report, run

    generated = ROOT / "book" / "generated"
    result = json.loads((generated / "benchmark.json").read_text())
    assert (generated / "benchmark.md").read_text() == report.to_markdown(result), "regenerate: python -m benchmarks"
    assert result["config"]["budget"] == 90.0, "the book's benchmark is the full 90-second run, not --quick"
    for dataset in run.DATASETS:
        assert set(result["datasets"][dataset]["methods"]) == set(run.BenchConfig().methods)
    assert "{include} generated/benchmark.md" in (ROOT / "book" / "appendix_benchmark.md").read_text()


def test_benchmark_chart_is_drawn_from_the_results():
    """The appendix's chart carries the fingerprint of the results it was drawn from (python -m benchmarks --render)."""
    from benchmarks import report

    generated = ROOT / "book" / "generated"
    result = report.finish(json.loads((generated / "benchmark.json").read_text()))
    drawn = re.search(r"<dc:description>([0-9a-f]+)</dc:description>", (generated / "benchmark.svg").read_text())
    assert drawn and drawn.group(1) == report.fingerprint(result), "redraw: python -m benchmarks --render"
    assert "generated/benchmark.svg" in (ROOT / "book" / "appendix_benchmark.md").read_text()


#: Largest standard error of a benchmark ratio, relative to the ratio. Samplers that re-noise between steps
#: (consistency models) reach it by averaging re-noise draws within each repeat (BenchConfig.renoise_draws).
RATIO_SE_BOUND = 0.05


def test_benchmark_ratios_are_precise_enough_to_read():
    """Every sliced-W2 ratio, composed or re-noising, has a standard error under RATIO_SE_BOUND of the ratio."""
    from benchmarks import report, run

    result = json.loads((ROOT / "book" / "generated" / "benchmark.json").read_text())
    assert result["precision"] == report.precision(result)
    assert result["precision"]["count"] == 2 * len(run.BenchConfig().methods) * len(result["config"]["steps"]), (
        "a ratio is missing (a diverged method?)"
    )
    assert result["config"]["renoise_draws"] > 1, "consistency models need several re-noise draws per repeat"
    assert result["precision"]["max"] < RATIO_SE_BOUND, "rerun with more repeats or points (BenchConfig)"


def test_defaults_quoted_in_the_chapters_are_the_librarys():
    """Prose that quotes a default reads it from flowlib.fitting.defaults (one source of truth)."""
    from flowlib import fitting

    text = "".join(source(c) for p in CHAPTERS for c in cells(p))
    quoted = re.findall(r"`(\d+)` \(the default: `flowlib\.fitting\.defaults\(\"(\w+)\"\)`", text)
    assert quoted, "chapter 9 quotes the consistency-interval default"
    for value, method in quoted:
        assert int(value) == fitting.defaults(method)["consistency_intervals"], (method, value)


def test_every_figure_has_a_caption_a_name_and_alt_text():
    """A figure is a claim: each one says what it shows (myst-nb cell metadata), and alt text is not a file path."""
    names = []
    for path in CHAPTERS:
        for cell in cells(path):
            if cell["cell_type"] != "code" or "plt.show()" not in source(cell):
                continue
            options = cell["metadata"].get("mystnb", {})
            figure, image = options.get("figure", {}), options.get("image", {})
            where = f"{path.name} cell {cell.get('id')}"
            assert len(figure.get("caption", "")) > 40, f"{where}: no caption"
            assert len(image.get("alt", "")) > 20, f"{where}: no alt text"
            assert not re.search(r"\{\w+\}`", figure["caption"]), f"{where}: roles do not render in a caption"
            names.append(figure.get("name"))
    assert names and None not in names and len(set(names)) == len(names), "figure names must be unique"


def test_library_names_quoted_in_the_prose_exist():
    """`module.name` in a chapter's or appendix's prose names something flowlib has (renames leave no stale text)."""
    import importlib

    import flowlib

    modules = {name for name in dir(flowlib) if not name.startswith("_")} | {
        line.split("`flowlib.")[1].split("`")[0] for line in (flowlib.__doc__ or "").splitlines() if "`flowlib." in line
    }
    texts = [source(c) for p in CHAPTERS for c in cells(p) if c["cell_type"] == "markdown"]
    texts += [p.read_text() for p in (ROOT / "book").glob("*.md")]
    pattern = r"`(?:flowlib\.)?([a-z_]+)\.([A-Za-z_]\w*)(\*?)"  # `check_*` names a family: some name starts so
    quoted = {m.groups() for t in texts for m in re.finditer(pattern, t)}
    checked = 0
    for module, name, family in quoted:
        if module not in modules:
            continue
        checked += 1
        names = dir(importlib.import_module(f"flowlib.{module}"))
        found = any(n.startswith(name) for n in names) if family else name in names
        assert found, f"the prose quotes {module}.{name}{family}"
    assert checked > 20, "the prose quotes the library often; the pattern found too few names"
