"""The Colab edition: each chapter as a notebook that reads well without Jupyter Book.

What changes from ``book/NN_name.ipynb`` to ``colab/NN_name.ipynb`` (code cells keep their source and
their ids, so that an executed Colab copy's outputs map back onto the source notebook):

* sections are numbered as on the site ("7.2 Training on the checkerboard");
* an exercise becomes a heading "Exercise 7.4: title" and its text; a solution is folded in a
  ``<details>`` block; a solution that spans code cells (``solution-start``/``solution-end``) keeps its
  code cells, hidden behind a Colab form title, and folds its prose;
* ``{footcite}`` / ``{cite}`` become "(Author, year)", and ``{footbibliography}`` the list of the works
  the chapter cites; ``{ref}`` becomes the target's name linked to its page on the site; ``(label)=``
  lines go;
* after the first cell, a note says which file the edition was generated from, and before the set-up cell
  a Colab note and an optional cell show how to switch on smoke mode and keep trained models on Drive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from editions import marks, myst, versions

OUT = myst.ROOT / "colab"
STUDENT_OUT = myst.ROOT / "student"
#: Where the student site lives under the site's address (``.github/workflows/site.yml`` publishes it there).
STUDENT_SITE = "student/"
ROLE = re.compile(r"\{(?P<name>[\w:-]+)\}`(?P<content>[^`]*)`")
ADMONITIONS = {"note", "tip", "important", "warning", "caution", "attention", "hint", "seealso", "admonition"}


def number_headings(texts: list[str], chapter: int) -> list[str]:
    """Number a chapter's headings as the site does: ``# 7. Title``, ``## 7.2 Title``, ``### 7.2.1 Title``.

    Args:
        texts: the chapter's Markdown cells in order (headings inside fenced code are left alone).
        chapter: the chapter's number.
    """
    counters = [0, 0, 0, 0, 0]
    numbered = []
    for text in texts:
        lines = text.split("\n")
        for index, line, in_code in myst.prose_lines(text):
            heading = myst.HEADING.match(line)
            if in_code or heading is None:
                continue
            level = len(heading.group("hashes"))
            if level == 1:
                lines[index] = f"# {chapter}. {heading.group('title')}"
                continue
            counters[level - 2] += 1
            counters[level - 1 :] = [0] * len(counters[level - 1 :])
            number = ".".join(str(n) for n in [chapter, *counters[: level - 1]])
            lines[index] = f"{heading.group('hashes')} {number} {heading.group('title')}"
        numbered.append("\n".join(lines))
    return numbered


def convert_roles(text: str, cited: list[str]) -> str:
    """Replace the roles of every prose line (not inside code) by plain Markdown; record citation keys in ``cited``.

    Raises:
        ValueError: a role the generator does not know (add it here rather than ship raw markup).
    """

    def replace(match: re.Match) -> str:
        name, content = match.group("name"), match.group("content")
        if name in ("footcite", "cite", "cite:p", "footcite:p"):
            keys = [key.strip() for key in content.split(",")]
            cited.extend(key for key in keys if key not in cited)
            return "(" + "; ".join(myst.citation(key) for key in keys) + ")"
        if name == "ref":
            explicit = re.fullmatch(r"(?P<text>.*?)\s*<(?P<label>[\w-]+)>", content)
            label = explicit.group("label") if explicit else content
            if label not in myst.targets():
                raise ValueError(f"{{ref}}`{content}`: no target {label!r} in the book")
            target = myst.targets()[label]
            return f"[{explicit.group('text') if explicit else target.name}]({target.url})"
        raise ValueError(f"the Colab edition does not know the role {{{name}}} (in {match.group(0)!r})")

    lines = text.split("\n")
    for index, line, in_code in myst.prose_lines(text):
        if not in_code:
            lines[index] = ROLE.sub(replace, line)
    return "\n".join(lines)


def _directive_blocks(text: str):
    """Yield ``(start, end, name, argument, options, body)`` per top-level directive (line indices, end inclusive)."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opened = myst.DIRECTIVE_OPEN.match(lines[index])
        if not opened:
            index += 1
            continue
        fence = opened.group("fence")
        end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == fence), None)
        if end is None:
            raise ValueError(f"the directive {lines[index]!r} is never closed by {fence}")
        body = lines[index + 1 : end]
        options = {}
        while body and (option := re.match(r"^:([\w-]+):\s*(.*)$", body[0])):
            options[option.group(1)] = option.group(2).strip()
            body = body[1:]
        yield index, end, opened.group("name"), opened.group("argument").strip(), options, "\n".join(body).strip("\n")
        index = end + 1


def _details(summary: str, body: str) -> str:
    return f"<details>\n<summary><b>{summary}</b> (open it after trying the exercise)</summary>\n\n{body}\n\n</details>"


def convert_directives(text: str, cited: list[str], student: bool = False) -> str:
    """Rewrite the directives of one Markdown cell (exercises, solutions, admonitions, the bibliography).

    In a student edition (``student``) solutions are left out.

    Raises:
        ValueError: an unknown directive, or a solution of an unknown exercise.
    """
    lines = text.split("\n")
    pieces: list[str] = []
    done = 0
    for start, end, name, argument, options, body in _directive_blocks(text):
        pieces.extend(lines[done:start])
        if name == "exercise":
            number, title = myst.exercises()[options["label"]]
            pieces.append(f"#### Exercise {number}: {title}\n\n{body}")
        elif name == "solution":
            if argument not in myst.exercises():
                raise ValueError(f"a solution to {argument!r}, which is not an exercise's label")
            if not student:
                pieces.append(_details(f"Solution to exercise {myst.exercises()[argument][0]}", body))
        elif name == "footbibliography":
            entries = [f"- {myst.reference(key)}" for key in cited]
            pieces.append("\n".join(entries) if entries else "*This chapter cites no sources.*")
        elif name in ADMONITIONS:
            heading = argument if name == "admonition" else name.capitalize()
            quoted = "\n".join("> " + line if line else ">" for line in body.split("\n"))
            pieces.append(f"> **{heading}.**\n>\n{quoted}")
        else:
            raise ValueError(f"the Colab edition does not know the directive {{{name}}}")
        done = end + 1
    pieces.extend(lines[done:])
    return "\n".join(pieces)


def _gated_solution_start(text: str) -> str | None:
    """The exercise label when the cell opens a solution that spans cells (``{solution-start}``)."""
    blocks = list(_directive_blocks(text))
    starts = [argument for _, _, name, argument, _, _ in blocks if name == "solution-start"]
    if starts and len(blocks) != 1:
        raise ValueError("a {solution-start} shares its cell with other directives; give it a cell of its own")
    return starts[0] if starts else None


def _strip_solution_end(text: str) -> str | None:
    """The cell's text before its ``{solution-end}`` directive, or None when the cell has none."""
    for start, _, name, _, _, _ in _directive_blocks(text):
        if name == "solution-end":
            return "\n".join(text.split("\n")[:start]).strip("\n")
    return None


def _markdown(cell_id: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text.splitlines(keepends=True)}


def setup_cells(source_path: Path) -> list[dict]:
    """The Colab note and the optional cell placed before a chapter's set-up cell."""
    note = (
        "**In Colab.** The set-up cell installs `flowlib` at the version this chapter was written for. "
        "Two switches, set *before* it runs (uncomment a line of the next cell):\n"
        "- **smoke mode**, `%env FLOWLIB_SMOKE=1`: every training takes seconds, so the whole chapter runs in "
        "about a minute; the numbers and pictures are then rough, and prose that describes a full run may not "
        "match them;\n"
        "- **keep trained models**: mount Google Drive and point `FLOWLIB_CACHE` at a folder on it, so that a "
        "new session loads the chapter's models instead of training them again.\n\n"
        "A GPU runtime (*Runtime → Change runtime type*) is used automatically; the chapters are sized to run "
        "on a CPU."
    )
    options = (
        "# Optional: uncomment, then run this cell before the set-up cell.\n"
        "# %env FLOWLIB_SMOKE=1\n"
        '# from google.colab import drive; drive.mount("/content/drive")\n'
        "# %env FLOWLIB_CACHE=/content/drive/MyDrive/flowlib-cache\n"
    )
    return [
        _markdown("colab-setup-note", note),
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "colab-setup-options",
            "metadata": {},
            "outputs": [],
            "source": options.splitlines(keepends=True),
        },
    ]


def _exercise_labels(text: str) -> list[str]:
    """The labels of the exercises stated in one Markdown cell."""
    return [options["label"] for _, _, name, _, options, _ in _directive_blocks(text) if name == "exercise"]


def answer_cell(label: str) -> dict:
    """The student edition's cell for a written answer to an exercise no machine grades (an nbgrader
    manually graded cell, 2 points).
    """
    number = myst.exercises()[label][0]
    cell = _markdown(f"{label}-written", f"**Your answer to exercise {number}.** YOUR ANSWER HERE")
    cell["metadata"] = {
        "nbgrader": {"grade": True, "grade_id": f"{label}-written", "locked": False, "points": 2,
                     "schema_version": 3, "solution": True, "task": False}
    }  # fmt: skip
    return cell


def _code_cell(cell: dict, gated: str | None, student: bool) -> dict | None:
    """A code cell as an edition shows it (None: left out).

    Reader editions strip the grading markers and hide a solution's cells behind a Colab form title; a student
    edition keeps the code outside solutions, the answer cells with their solution cleared and the public
    checks, and leaves out the rest of each solution and the hidden tests.
    """
    cell = {**cell, "outputs": [], "execution_count": None}
    found = marks.mark(cell)
    if found is not None and gated != found.label:
        raise ValueError(f"cell {cell.get('id')}: a graded cell of {found.label} outside that exercise's solution")
    if student:
        if gated is None:
            return cell
        if found is None or found.role == "hidden":
            return None
        if found.role == "answer":
            cell["source"] = marks.clear_solutions(myst.source(cell)).splitlines(keepends=True)
        return cell
    code = marks.strip_markers(myst.source(cell))
    if gated:
        number = myst.exercises()[gated][0]
        cell["metadata"] = {**cell["metadata"], "cellView": "form", "jupyter": {"source_hidden": True}}
        what = "the autograder's hidden test" if found and found.role == "hidden" else "double-click to show the code"
        code = f"#@title Solution to exercise {number} ({what})\n" + code
    cell["source"] = code.splitlines(keepends=True)
    return cell


def colab_edition(source_path: Path, student: bool = False) -> dict:
    """The Colab edition of one chapter, as notebook JSON; with ``student``, the student edition.

    A student edition leaves out every solution (its prose, its code, the hidden tests), keeps each graded
    exercise's answer cell with the solution replaced by ``raise NotImplementedError()`` and its public check,
    and adds a written-answer cell after every other exercise.

    Raises:
        ValueError: the source uses markup the edition cannot render (named in the message).
    """
    notebook = myst.read_notebook(source_path)
    chapter = myst.chapter_number(source_path)
    markdown = [i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "markdown"]
    numbered = number_headings([myst.source(notebook["cells"][i]) for i in markdown], chapter)
    texts = dict(zip(markdown, numbered, strict=True))
    graded = {found.label for c in notebook["cells"] if (found := marks.mark(c))}

    cited: list[str] = []
    for i in markdown:  # citations first, so that the reference list knows every key in order
        texts[i] = convert_roles(texts[i], cited)
    first_code = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code")

    cells: list[dict] = []
    gated: str | None = None
    for i, cell in enumerate(notebook["cells"]):
        if i == first_code:
            cells.extend(setup_cells(source_path))
        if cell["cell_type"] == "code":
            if (shown := _code_cell(cell, gated, student)) is not None:
                cells.append(shown)
            continue
        text = "\n".join(line for line in texts[i].split("\n") if not myst.TARGET.match(line))
        labels = _exercise_labels(text)
        if (label := _gated_solution_start(text)) is not None:
            gated = label
            number = myst.exercises()[label][0]
            text = (
                ""
                if student
                else (
                    f"**Solution to exercise {number}.** Its code is in the hidden cells below: try the exercise first."
                )
            )
        elif gated and (before_end := _strip_solution_end(text)) is not None:
            number = myst.exercises()[gated][0]
            text = _details(f"Solution to exercise {number}, explained", before_end) if before_end else ""
            text = "" if student else text
            gated = None
        elif gated and student:
            text = ""
        else:
            text = convert_directives(text, cited, student)
        if i == 0:
            text += _provenance(source_path, student)
        if text.strip():
            cells.append({**cell, "source": text.splitlines(keepends=True)})
        if student:
            cells.extend(answer_cell(label) for label in labels if label not in graded)
    if gated:
        raise ValueError(f"{source_path.name}: the solution to {gated} is never closed by {{solution-end}}")
    metadata = {**notebook["metadata"], "colab": {"provenance": [], "toc_visible": True}}
    if student:
        metadata["flowmaps"] = {"edition": "student", "chapter": source_path.stem, "version": versions.package()}
        cells = [_to_student_pages(cell) for cell in cells]
    return {**notebook, "cells": cells, "metadata": metadata}


def _to_student_pages(cell: dict) -> dict:
    """A student edition's Markdown cell with its links sent to student pages: the Colab badge opens the student
    edition (``student/``, not ``colab/`` with its solutions) and the site's pages are the student site's
    (``<baseurl>student/``, built without solutions and published there by ``.github/workflows/site.yml``).
    """
    if cell["cell_type"] != "markdown":
        return cell
    text = myst.source(cell)
    url, branch = myst.repository()
    owner_repo = url.removeprefix("https://github.com/")
    text = text.replace(f"github/{owner_repo}/blob/{branch}/colab/", f"github/{owner_repo}/blob/{branch}/student/")
    text = text.replace(myst.site_url(), f"{myst.site_url()}{STUDENT_SITE}")
    return {**cell, "source": text.splitlines(keepends=True)}


def _provenance(source_path: Path, student: bool) -> str:
    """The note under a chapter's first cell: which edition this is and where it came from."""
    source = source_path.relative_to(myst.ROOT).as_posix()
    if not student:
        return (
            f"\n\n*Colab edition, generated from `{source}`; the same chapter on the book's site: "
            f"{myst.page_url(source_path)}.*"
        )
    return (
        f"\n\n*Student edition, generated from `{source}`: the solutions are left out. Write code where a cell "
        "says `# YOUR CODE HERE` (delete the `raise NotImplementedError()` line), run the check below it, and write "
        "the other answers where a cell says YOUR ANSWER HERE. Your teacher grades the notebook with "
        "`python -m editions.grade`, which also runs hidden tests on other cases.*"
    )


def render(notebook: dict) -> str:
    """The notebook as the text committed to the repository (stable: same input, same bytes)."""
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def write(out: Path = OUT, student: bool = False) -> list[Path]:
    """Write the Colab (or student) edition of every chapter into ``out``; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in myst.CHAPTERS:
        target = out / path.name
        target.write_text(render(colab_edition(path, student)), encoding="utf-8")
        written.append(target)
    return written


def stale(out: Path = OUT, student: bool = False) -> list[str]:
    """The chapters whose committed Colab (or student) edition differs from what the sources generate now."""
    problems = []
    for path in myst.CHAPTERS:
        target = out / path.name
        if not target.exists() or target.read_text(encoding="utf-8") != render(colab_edition(path, student)):
            problems.append(path.name)
    extra = {p.name for p in out.glob("*.ipynb")} - {p.name for p in myst.CHAPTERS}
    return problems + sorted(f"{name} (no source)" for name in extra)
