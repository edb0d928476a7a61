"""Student editions and autograding: the marks in the sources, the student editions generated from them, the
reference solutions passing every public and hidden test, and the grader scoring empty, right and wrong
submissions."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from notebooks import CHAPTERS, ROOT

from editions import colab, grade, marks, myst

STUDENT = [ROOT / "student" / path.name for path in CHAPTERS]


def notebook(path):
    return json.loads(path.read_text(encoding="utf-8"))


def marked(path) -> list[tuple[marks.Mark, dict]]:
    return [(found, cell) for cell in notebook(path)["cells"] if (found := marks.mark(cell))]


def test_solution_regions_are_cleared_as_nbgrader_clears_them():
    code = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n"
    assert (
        marks.clear_solutions(code)
        == "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )
    assert marks.strip_markers(code) == "def f(x):\n    '''doc'''\n    y = x + 1\n    return y\n"
    hidden = "check(f)\n### BEGIN HIDDEN TESTS\ngrade(f)\n### END HIDDEN TESTS"
    assert marks.remove_hidden_tests(hidden) == "check(f)"
    with pytest.raises(ValueError, match="never closed"):
        marks.clear_solutions("### BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without"):
        marks.clear_solutions("x = 1\n### END SOLUTION")


def test_a_mark_must_name_an_exercise_and_a_role():
    cell = {"metadata": {"nbgrader": {"grade_id": "ex-1-heun-answer", "solution": True, "grade": False,
                                      "locked": False}}}  # fmt: skip
    assert marks.mark(cell) == marks.Mark("ex-1-heun", "answer", 0)
    with pytest.raises(ValueError, match="not '<exercise label>"):
        marks.mark({"metadata": {"nbgrader": {"grade_id": "ex-9-nothing-answer"}}})
    with pytest.raises(ValueError, match="should be"):
        marks.mark({"metadata": {"nbgrader": {"grade_id": "ex-1-heun-check", "solution": True, "grade": True,
                                              "locked": True}}})  # fmt: skip


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_each_graded_exercise_has_an_answer_a_public_check_and_a_hidden_test(source):
    by_label: dict[str, dict[str, dict]] = {}
    for found, cell in marked(source):
        by_label.setdefault(found.label, {})[found.role] = cell
    for label, cells in by_label.items():
        assert set(cells) == {"answer", "check", "hidden"}, f"{label}: {sorted(cells)}"
        assert marks.BEGIN_SOLUTION in myst.source(cells["answer"])
        assert re.search(r"^exercises\.check_\w+\(", myst.source(cells["check"]), re.M)
        hidden = myst.source(cells["hidden"])
        assert hidden.startswith(marks.BEGIN_HIDDEN) and re.search(r"^exercises\.grade_\w+\(", hidden, re.M)
        assert "remove-cell" in cells["hidden"]["metadata"].get("tags", []), "the site must not show hidden tests"


def test_the_code_exercises_have_checks():
    labels = {found.label for path in CHAPTERS for found, _ in marked(path)}
    assert {"ex-1-heun", "ex-2-point", "ex-2-mixture", "ex-3-grid", "ex-4-average", "ex-5-euler",
            "ex-7-stopgrad"} <= labels  # fmt: skip


def test_committed_student_editions_are_what_the_sources_generate():
    assert colab.stale(colab.STUDENT_OUT, student=True) == [], "run: python -m editions"


@pytest.mark.parametrize("path", STUDENT, ids=[p.stem for p in STUDENT])
def test_a_student_edition_has_no_solutions(path):
    edition = notebook(path)
    text = "\n".join(myst.source(c) for c in edition["cells"])
    for leftover in ("<details>", "Solution to exercise", "### BEGIN", "exercises.grade_", "{solution"):
        assert leftover not in text, f"{path.name} shows {leftover!r}"
    source = ROOT / "book" / path.name
    answers = [c for c in edition["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    graded = {found.label for found, _ in marked(source)}
    code_answers = [c for c in answers if c["cell_type"] == "code"]
    assert len(code_answers) == len(graded)
    assert all("raise NotImplementedError()" in myst.source(c) for c in code_answers)
    written = {c["id"].removesuffix("-written") for c in answers if c["cell_type"] == "markdown"}
    chapter = str(myst.chapter_number(source))
    every = {label for label, (number, _) in myst.exercises().items() if number.split(".")[0] == chapter}
    assert written == every - graded, "every exercise without a check gets a written-answer cell"
    assert edition["metadata"]["flowmaps"] == {"edition": "student", "chapter": source.stem}


@pytest.mark.slow
@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_reference_solutions_pass_their_public_checks_and_hidden_tests(executed_book, source):
    """The Colab edition runs the hidden tests (as folded cells); in the executed book each printed its ✓."""
    _, runs = executed_book
    run = runs[source.stem]
    assert run.error is None
    graded = {cell["id"] for found, cell in marked(source) if found.role != "answer"}
    code = [cell for cell in run.notebook.cells if cell.cell_type == "code"]
    ran = {cell.id: "".join(o.get("text", "") for o in cell.outputs) for cell in code}
    for cell_id in graded:
        assert ran[cell_id].startswith("\u2713"), f"{source.name}: {cell_id} printed {ran[cell_id]!r}"


@pytest.fixture
def book_cache(executed_book, monkeypatch):
    """Grade with the executed book's model cache, so that the student editions load its smoke-mode models."""
    folder, _ = executed_book
    monkeypatch.setenv("FLOWLIB_CACHE", str(folder / "model-cache"))


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDENT, ids=[p.stem for p in STUDENT])
def test_an_empty_student_edition_runs_top_to_bottom_and_scores_zero(book_cache, path):
    items, executed = grade.run(path)
    failed = {c.id for c in executed.cells if c.cell_type == "code" and grade._error(c)}
    graded = {c.id for c in executed.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    assert failed <= graded, f"{path.name}: cells outside the exercises failed: {sorted(failed - graded)}"
    automatic = [i for i in items if not i.message.startswith("grade by hand")]
    assert all(i.points == 0 and "is not written yet" in i.message for i in automatic), automatic
    assert len(automatic) == 2 * len({found.label for found, _ in marked(ROOT / "book" / path.name)})
    by_hand = [i for i in items if i.message.startswith("grade by hand")]
    assert all(i.possible == 2 for i in by_hand)


def filled(tmp_path, name: str, answer: str):
    """Chapter 1's student edition with ``answer`` in the answer cell of exercise 1.2."""
    edition = nbformat.read(STUDENT[0], as_version=4)
    cell = next(
        c for c in edition.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "ex-1-heun-answer"
    )
    cell.source = answer
    target = tmp_path / name
    nbformat.write(edition, target)
    return target


@pytest.mark.slow
def test_the_grader_scores_right_and_wrong_submissions(tmp_path, capsys):
    """A right answer written differently from the reference gets every point; one that calls the library passes
    the public check but not the hidden test; a first-order step fails both; a deleted check is restored."""
    right = filled(tmp_path, "right.ipynb", (
        "def my_heun_step(velocity, x, t, h):\n    slope = velocity(x, t)\n"
        "    return x + h / 2 * (slope + velocity(x + h * slope, t + h))\n"
    ))  # fmt: skip
    library = filled(tmp_path, "library.ipynb", "from flowlib import ode\n\nmy_heun_step = ode.heun_step\n")
    stale = filled(tmp_path, "stale.ipynb", (
        "def my_heun_step(velocity, x, t, h):\n    slope = velocity(x, t)\n"
        "    return x + h / 2 * (slope + velocity(x + h * slope, t))\n"
    ))  # fmt: skip
    tampered = nbformat.read(right, as_version=4)
    tampered.cells = [c for c in tampered.cells if c.get("id") != "ex-1-heun-check"]
    nbformat.write(tampered, tmp_path / "tampered.ipynb")
    assert grade.main([str(right), str(library), str(stale), str(tmp_path / "tampered.ipynb"), "--csv",
                       str(tmp_path / "grades.csv")]) == 0  # fmt: skip
    rows = (tmp_path / "grades.csv").read_text().splitlines()
    points = {}
    for row in rows[1:]:
        submission, _, cell, earned, *_ = row.split(",")
        points[submission, cell] = float(earned)
    assert points["right.ipynb", "ex-1-heun-check"] == 1 and points["right.ipynb", "ex-1-heun-hidden"] == 2
    assert points["library.ipynb", "ex-1-heun-check"] == 1 and points["library.ipynb", "ex-1-heun-hidden"] == 0
    assert points["stale.ipynb", "ex-1-heun-check"] == 0 and points["stale.ipynb", "ex-1-heun-hidden"] == 0
    assert points["tampered.ipynb", "ex-1-heun-check"] == 1, "the deleted check is put back and graded"
    report = capsys.readouterr().out
    assert "right.ipynb: 3 / 3 points" in report and "library.ipynb: 1 / 3 points" in report
    assert "your answer is flowlib.ode.heun_step itself" in report
    assert "stale.ipynb: 0 / 3 points" in report and "expected 2" in report


def test_open_ended_exercises_of_chapters_5_to_10_have_rubrics():
    """An exercise no check grades is graded by hand against a rubric in its solution (the grader lists it)."""
    graded = {found.label for path in CHAPTERS for found, _ in marked(path)}
    missing = [
        number
        for label, (number, _) in myst.exercises().items()
        if int(number.split(".")[0]) >= 5 and label not in graded and not grade.rubric(label).startswith("A complete")
    ]
    assert missing == []


def test_the_grader_restores_checks_and_puts_hidden_tests_after_them():
    edition = nbformat.read(STUDENT[0], as_version=4)
    check = next(c for c in edition.cells if c.get("id") == "ex-1-heun-check")
    check.source = "pass  # a student who silenced the check"
    prepared = grade.prepare(edition, CHAPTERS[0])
    ids = [c.get("id") for c in prepared.cells]
    assert ids.index("ex-1-heun-check") == ids.index("cell-024") + 1
    assert ids.index("ex-1-heun-hidden") == ids.index("ex-1-heun-check") + 1
    restored = prepared.cells[ids.index("ex-1-heun-check")]
    assert restored.source == grade.RELOAD + "exercises.check_stepper(my_heun_step, expected_order=2)"
    assert "grade_stepper" in prepared.cells[ids.index("ex-1-heun-hidden")].source
    edition.cells = [c for c in edition.cells if c.get("id") != "ex-1-heun-check"]
    ids = [c.get("id") for c in grade.prepare(edition, CHAPTERS[0]).cells]
    assert ids.index("ex-1-heun-check") == ids.index("cell-024") + 1, "a deleted check comes back in its place"


def test_the_grader_ignores_copies_and_restores_checks_turned_into_text():
    edition = nbformat.read(STUDENT[0], as_version=4)
    ids = [c.get("id") for c in edition.cells]
    check = edition.cells[ids.index("ex-1-heun-check")]
    copy = nbformat.from_dict({**check, "id": "a-copy"})
    edition.cells.insert(ids.index("ex-1-heun-check") + 1, copy)
    check.cell_type = "raw"
    prepared = grade.prepare(edition, CHAPTERS[0])
    graded = [grade._grade_id(c) for c in prepared.cells if grade._grade_id(c) == "ex-1-heun-check"]
    assert graded == ["ex-1-heun-check"], "the copy counts for nothing"
    restored = next(c for c in prepared.cells if grade._grade_id(c) == "ex-1-heun-check")
    assert restored.cell_type == "code" and restored.source.startswith(grade.RELOAD)
    assert grade._score(nbformat.from_dict({**restored, "outputs": [], "execution_count": None})).message.startswith(
        "did not run"
    )


def test_a_deleted_written_answer_is_reported_missing():
    edition = nbformat.read(STUDENT[0], as_version=4)
    edition.cells = [c for c in edition.cells if c.get("id") != "ex-1-area-written"]
    missing = grade._missing_written_answers(edition, CHAPTERS[0])
    assert [(i.exercise, i.message.split(":")[0]) for i in missing] == [("1.3", "missing")]


def test_an_unreadable_submission_is_a_row_not_a_crash(tmp_path, capsys):
    stray = tmp_path / "homework.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), stray)
    assert grade.main([str(stray), "--csv", str(tmp_path / "g.csv")]) == 0
    assert "could not be graded" in capsys.readouterr().out
    assert "could not be graded" in (tmp_path / "g.csv").read_text()
