"""The Colab editions (``colab/``) are generated from the sources, committed up to date, free of MyST markup,
and share the sources' code cells; the install cell installs flowlib's own version."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from notebooks import CHAPTERS, INSTALL_SOURCE, ROOT

from editions import colab, marks, myst

EDITIONS = [ROOT / "colab" / path.name for path in CHAPTERS]


def notebook(path):
    return json.loads(path.read_text(encoding="utf-8"))


def text(cell) -> str:
    return myst.source(cell)


def test_committed_editions_are_what_the_sources_generate():
    assert colab.stale() == [], "run: python -m editions"


@pytest.mark.parametrize("path", EDITIONS, ids=[p.stem for p in EDITIONS])
def test_edition_has_no_myst_markup(path):
    markdown = "\n".join(text(c) for c in notebook(path)["cells"] if c["cell_type"] == "markdown")
    leftovers = re.findall(r"\{[\w:-]+\}`[^`]*`|^[`:]{3,}\{[\w-]+\}.*$|^\([\w-]+\)=\s*$", markdown, re.M)
    assert leftovers == [], f"{path.name} still has MyST markup: {leftovers[:5]}"


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_exercise_is_headed_and_every_solution_folded(source):
    sources = "\n".join(text(c) for c in notebook(source)["cells"] if c["cell_type"] == "markdown")
    edition = notebook(ROOT / "colab" / source.name)
    markdown = "\n".join(text(c) for c in edition["cells"] if c["cell_type"] == "markdown")
    chapter = myst.chapter_number(source)
    count = sources.count("{exercise}")
    headings = re.findall(rf"^#### Exercise {chapter}\.(\d+): ", markdown, re.M)
    assert headings == [str(k) for k in range(1, count + 1)], f"{source.name}: exercise headings {headings}"
    folded = re.findall(r"<summary><b>Solution to exercise [\d.]+</b>", markdown)
    assert len(folded) == sources.count("{solution}"), f"{source.name}: {len(folded)} folded solutions"
    gated = markdown.count("Its code is in the hidden cells below")
    assert gated == sources.count("{solution-start}"), f"{source.name}: {gated} solutions in hidden cells"
    assert markdown.count("<details>") == markdown.count("</details>")
    hidden = [c for c in edition["cells"] if c["cell_type"] == "code" and c["metadata"].get("cellView") == "form"]
    assert all(text(c).startswith("#@title Solution to exercise") for c in hidden)


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_sections_are_numbered_and_citations_listed(source):
    edition = notebook(ROOT / "colab" / source.name)
    markdown = "\n".join(text(c) for c in edition["cells"] if c["cell_type"] == "markdown")
    chapter = myst.chapter_number(source)
    assert markdown.startswith(f"# {chapter}. ")
    sections = re.findall(rf"^## {chapter}\.(\d+) ", markdown, re.M)
    assert sections == [str(k) for k in range(1, len(sections) + 1)] and len(sections) >= 3
    references = markdown.split("References\n", 1)[1]
    cited = set(re.findall(r"\(([^()]*?, \d{4}(?:; [^()]*?, \d{4})*)\)", markdown.split("References\n", 1)[0]))
    assert cited, f"{source.name} cites nothing in its Colab edition"
    assert references.count("\n- ") + references.startswith("- ") >= 1


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_edition_code_cells_are_the_sources(source):
    """Same code (without grading markers), same ids, same order (outputs of an executed edition map back onto the
    source)."""
    code = [c for c in notebook(source)["cells"] if c["cell_type"] == "code"]
    edition = notebook(ROOT / "colab" / source.name)
    edition_code = [c for c in edition["cells"] if c["cell_type"] == "code" and c["id"] != "colab-setup-options"]
    assert [c["id"] for c in edition_code] == [c["id"] for c in code]
    for theirs, ours in zip(edition_code, code, strict=True):
        body = re.sub(r"\A#@title Solution to exercise [\d.]+ \([^)]*\)\n", "", text(theirs))
        assert body == marks.strip_markers(text(ours)), f"{source.name}: cell {ours['id']} differs in the Colab edition"


def test_colab_setup_cell_shows_smoke_mode_and_drive():
    options = next(c for c in notebook(EDITIONS[0])["cells"] if c["id"] == "colab-setup-options")
    lines = text(options).splitlines()
    assert "# %env FLOWLIB_SMOKE=1" in lines
    assert any("drive.mount" in line for line in lines) and "# %env FLOWLIB_CACHE=" in text(options)
    assert all(line.startswith("#") for line in lines), "the options cell runs as a no-op until uncommented"


def test_references_resolve_to_site_pages_with_their_numbers():
    targets = myst.targets()
    assert targets["ex-7-jumps"].name == "Exercise 7.4"
    assert targets["ex-7-jumps"].url == myst.site_url() + "book/07_self_distillation.html#ex-7-jumps"
    assert targets["evidence-psd-defaults"].url.endswith("book/appendix_evidence.html#evidence-psd-defaults")
    assert myst.citation("boffi2025how") == "Boffi et al., 2025"
    assert myst.citation("albergo2023building") == "Albergo and Vanden-Eijnden, 2023"
    assert myst.citation("dieleman2026learning") == "Dieleman, 2026"
    assert "https://sander.ai/2026/05/06/flow-maps.html" in myst.reference("dieleman2026learning")


def test_headings_inside_code_are_not_numbered():
    texts = ["# Title\n\n## First\n\n```python\n# a comment, not a heading\n```", "## Second\n\n### Detail"]
    assert colab.number_headings(texts, 3) == [
        "# 3. Title\n\n## 3.1 First\n\n```python\n# a comment, not a heading\n```",
        "## 3.2 Second\n\n### 3.2.1 Detail",
    ]


def test_unknown_markup_is_an_error_not_raw_text():
    with pytest.raises(ValueError, match="role"):
        colab.convert_roles("see {numref}`fig-1`", [])
    with pytest.raises(ValueError, match="no target"):
        colab.convert_roles("see {ref}`no-such-label`", [])
    with pytest.raises(ValueError, match="directive"):
        colab.convert_directives("```{figure} a.png\n```", [])
    with pytest.raises(KeyError, match="not in book/references.bib"):
        myst.citation("nobody2099nothing")


def test_roles_inside_code_blocks_are_left_alone():
    markdown = "Cited {footcite}`boffi2025how`.\n\n```python\nprint('{ref}`x`')\n```"
    cited: list[str] = []
    assert colab.convert_roles(markdown, cited) == "Cited (Boffi et al., 2025).\n\n```python\nprint('{ref}`x`')\n```"
    assert cited == ["boffi2025how"]


@pytest.mark.slow
def test_install_cell_installs_flowlib_of_this_version_from_a_checkout(tmp_path):
    """The install cell's pip command, pointed at this checkout, installs a flowlib whose version the cell pins."""
    cell = next(text(c) for c in notebook(CHAPTERS[0])["cells"] if "%pip install" in text(c))
    pinned = INSTALL_SOURCE.search(cell).group(0)
    requirement = re.search(r'%pip install -q "(flowlib @ [^"]+)"', cell).group(1).replace(pinned, ROOT.as_uri())
    target = tmp_path / "site-packages"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         requirement],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    version = subprocess.run(
        [sys.executable, "-c", "import flowlib; print(flowlib.__version__, flowlib.__file__)"],
        cwd=tmp_path, env={"PYTHONPATH": str(target)}, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert version[0] == pinned.rsplit("@v", 1)[1], f"the cell pins {pinned} but installs flowlib {version[0]}"
    assert version[1].startswith(str(target)), "imported the checkout instead of the installed copy"


# ------------------------------------------------------------------------------------------ teachers' page
def test_teaching_tables_and_readme_times_are_generated_from_one_measurement():
    from editions import teaching

    assert teaching.stale() == [], "run: python -m editions"
    record = teaching.times()
    assert set(record["seconds"]) == {p.stem for p in CHAPTERS}
    assert all(m["full"] > m["smoke"] > 0 for m in record["seconds"].values())
    page = (ROOT / "book" / "teaching.md").read_text()
    assert "{include} generated/teaching.md" in page
    assert "book/teaching" in (ROOT / "_toc.yml").read_text()


def test_exercise_kinds_follow_their_solutions():
    from editions import teaching

    kinds = {e.number: e for path in CHAPTERS for e in teaching.exercises(path)}
    assert len(kinds) == len(myst.exercises())
    assert kinds["1.2"].kind == "homework" and kinds["1.2"].checked  # Heun: code that runs in seconds, checked
    assert kinds["7.4"].kind == "lab" and not kinds["7.4"].checked  # trains PSD three times


def test_the_suggested_plan_names_exercises_that_exist():
    plan = (ROOT / "book" / "teaching.md").read_text().split("## A suggested plan", 1)[1].split("##", 1)[0]
    named = set(re.findall(r"\b(\d+\.\d+)\b", plan))
    numbers = {number for number, _ in myst.exercises().values()}
    assert named and named <= numbers, f"the plan names exercises that do not exist: {named - numbers}"


def test_references_in_the_colab_editions_read_as_text():
    """BibTeX accents become letters and no raw markup is left: "Nørsett", "Peyré", not "N\\orsett"."""
    from editions import myst

    assert myst.reference("hairer1993solving").startswith("Hairer, E., Nørsett, S. P. and Wanner, G. (1993)")
    assert "Peyré, G." in myst.reference("bonneel2015sliced")
    for key in myst.bibliography().entries:
        text = myst.reference(key)
        assert "\\" not in text and "{" not in text, f"{key}: {text}"


def test_a_student_edition_leads_to_student_pages_only():
    """Its badge opens the student edition in Colab, and its links to the site go to the student site (built
    without solutions), never to the Colab edition or the reader's pages, where the solutions are."""
    from editions import colab, myst

    url, branch = myst.repository()
    owner_repo = url.removeprefix("https://github.com/")
    for path in sorted(colab.STUDENT_OUT.glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        assert f"github/{owner_repo}/blob/{branch}/student/{path.name}" in text, f"{path.name}: the badge"
        assert f"/blob/{branch}/colab/" not in text, f"{path.name} links a Colab edition with solutions"
        reader_pages = re.findall(re.escape(myst.site_url()) + r"(?!student/)\S*", text)
        assert not reader_pages, f"{path.name} links the reader's site: {reader_pages[:3]}"
