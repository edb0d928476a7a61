"""Grade students' notebooks: ``python -m editions.grade SUBMISSION.ipynb [...]``.

A submission is a student edition (``student/NN_name.ipynb``) that a student filled in. For each one the grader

1. restores every check cell from the chapter's source (a student may have edited or deleted one) and puts the
   hidden tests back after their public checks: the cells ``editions.marks`` describes, read from ``book/``;
2. runs the whole notebook in a fresh kernel, in smoke mode unless ``--full`` (models train in seconds; the
   checks do not depend on the mode), continuing after errors;
3. gives each check and hidden test its points when its cell ran without an error, and otherwise records the
   error's last line (the check's hint); written answers are listed for grading by hand, with the exercise's
   rubric where its solution has one.

``--csv grades.csv`` writes one row per student and exercise; ``--tests``, ``--manual``, ``--manual-template`` and
``--feedback`` add a teacher's private tests, scores entered by hand and a feedback page per student
(:mod:`editions.classroom` says how each is laid out, and how a student is recognised in an LMS export). A
submission made from another version of the book than the grader's is graded and flagged. The report is also
returned by :func:`grade` for scripts and tests.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from editions import classroom, marks, myst, versions


@dataclass(frozen=True)
class Item:
    """One graded cell of one submission."""

    exercise: str  # "1.2"
    cell: str  # grade_id, e.g. "ex-1-heun-hidden"
    points: float  # earned (0 for a written answer, which a person grades)
    possible: float
    message: str  # "passed", the check's last error line, or "grade by hand: <rubric>"


def chapter_of(submission: nbformat.NotebookNode, path: Path) -> Path:
    """The source chapter a submission was generated from (its metadata, else its file name).

    Raises:
        ValueError: neither names a chapter of the book.
    """
    stem = submission.metadata.get("flowmaps", {}).get("chapter")
    for chapter in myst.CHAPTERS:
        if chapter.stem == stem:
            return chapter
    found = classroom.chapter_in_name(path.name)  # "Copy of 01_…" (Colab), "01_… (1)" (a second download)
    if found is not None:
        return found
    names = ", ".join(chapter.name for chapter in myst.CHAPTERS)
    raise ValueError(
        f"{path.name}: not a student edition of a chapter (its metadata names none, and its file name is not one "
        f"of {names})"
    )


#: put before every restored check and hidden test: the library's checks and hidden tests as shipped, whatever
#: the notebook did to them (the machinery first, then the checks, then the hidden tests that import both)
RELOAD = (
    "import importlib\n\n"
    'for _module in ("flowlib._answers", "flowlib.exercises", "flowlib._grading"):\n'
    "    importlib.reload(importlib.import_module(_module))\n"
    'exercises = importlib.import_module("flowlib.exercises")\n'
)


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _grading_cells(source: Path, private: Path | None = None) -> tuple[dict[str, dict], dict[str, str | None]]:
    """The source's check and hidden-test cells by grade_id (markers stripped, the checks reloaded first), with a
    teacher's private tests (``private/<chapter>.py``, :func:`editions.classroom.private_tests`) in place of the
    hidden tests they name, or added after the exercise's last graded cell.

    Also returns, for each, the grade_id of the marked cell before it (where the grader puts it back if missing).

    Raises:
        ValueError: a private test that names no exercise of the chapter, or a new one without points.
    """
    cells, anchors, previous = {}, {}, None
    for cell in myst.read_notebook(source)["cells"]:
        found = marks.mark(cell)
        if found is None:
            continue
        grade_id = cell["metadata"]["nbgrader"]["grade_id"]
        if found.role in ("check", "hidden"):
            code = RELOAD + marks.strip_markers(myst.source(cell))
            cells[grade_id] = nbformat.from_dict({**cell, "source": code, "outputs": [], "execution_count": None})
            anchors[grade_id] = previous
        previous = grade_id
    for test in classroom.private_tests(private, source):
        label = classroom.exercise_label(test.grade_id)
        same_exercise = [g for g in [*anchors, *cells] if classroom.exercise_label(g) == label]
        if test.grade_id in cells:
            cell = cells[test.grade_id]
            meta = {**cell.metadata["nbgrader"], **({"points": test.points} if test.points is not None else {})}
            cells[test.grade_id] = nbformat.from_dict({**cell, "source": RELOAD + test.code,
                                                       "metadata": {**cell.metadata, "nbgrader": meta}})  # fmt: skip
        elif not same_exercise or test.points is None:
            raise ValueError(
                f"private test {test.grade_id!r}: a new test needs an exercise of {source.stem} in its id and points=N"
            )
        else:
            meta = {"grade": True, "solution": False, "locked": True, "grade_id": test.grade_id, "points": test.points,
                    "schema_version": 3}  # fmt: skip
            cells[test.grade_id] = nbformat.v4.new_code_cell(RELOAD + test.code, metadata={"nbgrader": meta})
            cells[test.grade_id].id = test.grade_id
            anchors[test.grade_id] = same_exercise[-1]
    return cells, anchors


def prepare(submission: nbformat.NotebookNode, source: Path, private: Path | None = None) -> nbformat.NotebookNode:
    """The notebook the grader runs: the submission with the source's checks restored and hidden tests added.

    A cell carrying a check's grade_id is replaced by the source's check, whatever its type (so a check turned
    into a raw or Markdown cell runs again); a second cell with the same grade_id (a copy made in Jupyter) loses
    its grading metadata and counts for nothing; a missing check or hidden test goes back after the marked cell
    that precedes it in the source.
    """
    cells, anchors = _grading_cells(source, private)
    graded = nbformat.from_dict(submission)
    kept, seen = [], set()
    for cell in graded.cells:
        grade_id = _grade_id(cell)
        if grade_id is not None and grade_id in seen:
            cell = nbformat.from_dict({**cell, "metadata": {k: v for k, v in cell.metadata.items() if k != "nbgrader"}})
        elif grade_id in cells:
            cell = cells[grade_id]
        seen.add(grade_id)
        kept.append(cell)
    for grade_id, cell in cells.items():
        if grade_id in seen:
            continue
        ids = [_grade_id(c) for c in kept]
        anchor = anchors.get(grade_id)
        kept.insert(ids.index(anchor) + 1 if anchor is not None and anchor in ids else len(kept), cell)
        seen.add(grade_id)
    graded.cells = kept
    return graded


def _error(cell: nbformat.NotebookNode) -> str | None:
    """The last line of the error a cell raised, or None when it ran cleanly."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}".strip().splitlines()[-1][:300]
    return None


def rubric(label: str) -> str:
    """The rubric in an exercise's solution (a paragraph that starts with **Rubric.**), or a pointer to it."""
    for chapter in myst.CHAPTERS:
        text = myst.solutions(chapter).get(label)
        if text is None:
            continue
        for paragraph in text.split("\n\n"):
            if paragraph.strip().startswith("**Rubric.**"):
                return paragraph.strip().removeprefix("**Rubric.**").strip()
    return "compare with the solution on the book's site"


def run(
    path: Path, full: bool = False, timeout: int = 900, private: Path | None = None
) -> tuple[list[Item], nbformat.NotebookNode]:
    """Run one submission with the hidden tests and score it.

    Args:
        path: the submitted notebook.
        full: run in full mode instead of smoke mode.
        timeout: seconds allowed to each cell.
        private: a teacher's folder of private tests (:mod:`editions.classroom`), or ``None``.

    Returns:
        One :class:`Item` per graded cell, in the notebook's order, and the executed notebook.
    """
    submission = nbformat.read(path, as_version=4)
    source = chapter_of(submission, path)
    notebook = prepare(submission, source, private)
    before = os.environ.get("FLOWLIB_SMOKE")
    os.environ["FLOWLIB_SMOKE"] = "0" if full else "1"
    try:
        with tempfile.TemporaryDirectory() as folder:
            client = NotebookClient(
                notebook, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
                resources={"metadata": {"path": folder}},
            )  # fmt: skip
            try:
                client.execute()
            except Exception as error:  # noqa: BLE001 (a dead kernel: score what ran, say why the rest did not)
                print(f"{path.name}: the notebook stopped: {type(error).__name__}: {error}"[:500], file=sys.stderr)
    finally:
        if before is None:
            os.environ.pop("FLOWLIB_SMOKE", None)
        else:
            os.environ["FLOWLIB_SMOKE"] = before
    items = [item for cell in notebook.cells if (item := _score(cell)) is not None]
    return items + _missing_written_answers(notebook, source), notebook


def _score(cell: nbformat.NotebookNode) -> Item | None:
    """The grade of one executed cell (None for a cell that is not graded)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if not meta.get("grade"):
        return None
    grade_id = meta.get("grade_id", "")
    label = classroom.exercise_label(grade_id)
    if label not in myst.exercises():
        return Item("?", grade_id, 0.0, 0.0, "not a graded cell of this book (pasted from elsewhere?): ignored")
    number = myst.exercises()[label][0]
    possible = float(meta.get("points", 0))
    if cell.cell_type == "markdown":
        return Item(number, grade_id, 0.0, possible, f"grade by hand: {rubric(label)}")
    if cell.get("execution_count") is None:
        return Item(number, grade_id, 0.0, possible, "did not run (the notebook stopped before it)")
    error = _error(cell)
    return Item(number, grade_id, 0.0 if error else possible, possible, error or "passed")


def _missing_written_answers(notebook: nbformat.NotebookNode, source: Path) -> list[Item]:
    """An item for each exercise whose written-answer cell is gone from the submission."""
    present = {_grade_id(c) for c in notebook.cells}
    graded = {found.label for c in myst.read_notebook(source)["cells"] if (found := marks.mark(c))}
    chapter = str(myst.chapter_number(source))
    return [
        Item(number, f"{label}-written", 0.0, 2.0, "missing: the written-answer cell was deleted")
        for label, (number, _) in myst.exercises().items()
        if number.split(".")[0] == chapter and label not in graded and f"{label}-written" not in present
    ]


def grade(path: Path, full: bool = False, timeout: int = 900, private: Path | None = None) -> list[Item]:
    """The grades of one submission (see :func:`run`)."""
    return run(path, full, timeout, private)[0]


def version_note(submission: nbformat.NotebookNode) -> str:
    """Whether a submission was made from this version of the book (its student edition's stamp)."""
    made_with = submission.metadata.get("flowmaps", {}).get("version")
    if made_with is None:
        return "The notebook carries no version stamp (an edition older than 0.6.0, or edited metadata)."
    if made_with != versions.package():
        return f"Made from the book's version {made_with}; graded with {versions.package()}: check the exercises agree."
    return f"Made from and graded with the book's version {made_with}."


def report(path: Path, items: list[Item]) -> str:
    """A plain-text table of one submission's grades."""
    automatic = [i for i in items if not i.message.startswith("grade by hand")]
    earned, possible = sum(i.points for i in automatic), sum(i.possible for i in automatic)
    lines = [f"{path.name}: {earned:g} / {possible:g} points graded automatically"]
    for item in items:
        lines.append(f"  {item.exercise:>5s}  {item.cell:28s} {item.points:g}/{item.possible:g}  {item.message}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Grade the submissions named on the command line; return the process's exit status."""
    parser = argparse.ArgumentParser(prog="python -m editions.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", nargs="+", type=Path, help="filled-in student editions")
    parser.add_argument("--full", action="store_true", help="run in full mode (default: smoke mode)")
    parser.add_argument(
        "--csv", type=Path, help="also write the grades to this CSV file (a row per student and exercise)"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed to each cell")
    parser.add_argument("--tests", type=Path, help="a folder of private tests, <chapter>.py each (see classroom)")
    parser.add_argument("--manual", type=Path, help="a CSV of scores given by hand (from --manual-template)")
    parser.add_argument("--manual-template", type=Path, help="write a CSV of the answers to grade by hand")
    parser.add_argument("--feedback", type=Path, help="write a feedback page per student into this folder")
    args = parser.parse_args(argv)
    manual = classroom.read_manual(args.manual) if args.manual else {}
    per_student = classroom.folders_per_student(args.submissions)
    rows, graded = [], []
    for path in args.submissions:
        try:
            submission = nbformat.read(path, as_version=4)
            student, chapter = (
                classroom.student_of(path, submission.metadata, per_student),
                chapter_of(submission, path),
            )
            items = classroom.merge_manual(student, grade(path, args.full, args.timeout, args.tests), manual)
            note = version_note(submission)
        except (OSError, ValueError) as error:  # unreadable, or not a student edition of a chapter
            student, chapter, note = path.stem, None, ""
            items = [Item("-", "-", 0.0, 0.0, f"could not be graded: {error}")]
        print(f"{student} — " + report(path, items) + (f"\n  {note}" if note else ""))
        name = chapter.stem if chapter is not None else "-"
        rows += classroom.exercise_rows(student, name, items)
        graded.append((student, items))
        if args.feedback:
            args.feedback.mkdir(parents=True, exist_ok=True)
            page = args.feedback / f"{classroom.file_name(student)}-{name}.md"
            page.write_text(classroom.feedback_page(student, name, note, items), encoding="utf-8")
    if args.csv:
        with args.csv.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["student", "chapter", "exercise", "points", "possible", "status", "details"])
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    if args.manual_template:
        classroom.write_manual_template(args.manual_template, graded)
        print(f"wrote {args.manual_template}: fill in 'points' (and 'comment'), then pass it with --manual")
    if args.feedback:
        print(f"wrote a feedback page per student to {args.feedback}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
