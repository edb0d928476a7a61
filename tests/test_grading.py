"""Student editions and autograding: the marks in the sources, the student editions generated from them, the
reference solutions passing every public and hidden test, and the grader scoring empty, right and wrong
submissions."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import nbformat
import pytest
from notebooks import CHAPTERS, ROOT

from editions import classroom, colab, grade, marks, myst, versions

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
        assert hidden.startswith(marks.BEGIN_HIDDEN) and re.search(r"^_grading\.grade_\w+\(", hidden, re.M)
        assert "from flowlib import _grading" in hidden, "a hidden test imports the private module it calls"
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
    for leftover in ("<details>", "Solution to exercise", "### BEGIN", "grade_", "_grading", "{solution"):
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
    stamp = {"edition": "student", "chapter": source.stem, "version": versions.package()}
    assert edition["metadata"]["flowmaps"] == stamp


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


def rows_of(csv_path):
    with csv_path.open(newline="", encoding="utf-8") as handle:
        return {(row["student"], row["exercise"]): row for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_the_grader_scores_right_and_wrong_submissions_of_a_class(tmp_path, capsys):
    """A class exported from Moodle (a folder per student): a right answer written differently from the reference
    gets every point; one that calls the library passes the public check but not the hidden test; a first-order step
    fails both; a deleted check is restored. One CSV row per student and exercise, a feedback page per student, a
    template for the answers graded by hand, and a teacher's private test in place of the library's hidden one."""
    students = {
        "Ada Lovelace_1001_assignsubmission_file_": "def my_heun_step(velocity, x, t, h):\n    slope = velocity(x, t)\n"
        "    return x + h / 2 * (slope + velocity(x + h * slope, t + h))\n",
        "Alan Turing_1002_assignsubmission_file_": "from flowlib import ode\n\nmy_heun_step = ode.heun_step\n",
        "Emmy Noether_1003_assignsubmission_file_": "def my_heun_step(velocity, x, t, h):\n    slope = velocity(x, t)\n"
        "    return x + h / 2 * (slope + velocity(x + h * slope, t))\n",
    }
    paths = []
    for folder, answer in students.items():
        (tmp_path / folder).mkdir()
        paths.append(filled(tmp_path / folder, "Copy of 01_paths_that_never_cross.ipynb", answer))
    tampered = nbformat.read(paths[0], as_version=4)
    tampered.cells = [c for c in tampered.cells if c.get("id") != "ex-1-heun-check"]
    (tmp_path / "Grace Hopper_1004_assignsubmission_file_").mkdir()
    paths.append(tmp_path / "Grace Hopper_1004_assignsubmission_file_" / "01_paths_that_never_cross (1).ipynb")
    nbformat.write(tampered, paths[-1])
    private = tmp_path / "private"
    private.mkdir()
    (private / "01_paths_that_never_cross.py").write_text(
        "# %% ex-1-heun-private points=1\nimport torch\n\nx = torch.tensor([[1.0]])\n"
        "assert torch.allclose(my_heun_step(lambda x, t: -t * x, x, 0.0, 0.1), x * (1 - 0.005)), 'wrong on b = -tx'\n"
    )
    options = ["--csv", str(tmp_path / "grades.csv"), "--tests", str(private), "--feedback", str(tmp_path / "feedback")]
    assert grade.main([*map(str, paths), *options, "--manual-template", str(tmp_path / "hand.csv")]) == 0
    rows = rows_of(tmp_path / "grades.csv")
    earned = {student.split(" (")[0]: float(rows[student, "1.2"]["points"]) for student, _ in rows if _ == "1.2"}
    assert earned == {"Ada Lovelace": 4, "Alan Turing": 2, "Emmy Noether": 0, "Grace Hopper": 4}, earned
    assert rows["Ada Lovelace (1001)", "1.2"]["possible"] == "4.0"
    assert rows["Ada Lovelace (1001)", "1.3"]["status"] == "waits for grading by hand"
    assert "ex-1-heun-check: passed" in rows["Grace Hopper (1004)", "1.2"]["details"], "the deleted check is restored"
    report = capsys.readouterr().out
    assert "Alan Turing (1002) — " in report and "your answer is flowlib.ode.heun_step itself" in report
    assert "expected 2" in report and f"graded with the book's version {versions.package()}" in report
    page = (tmp_path / "feedback" / "Emmy_Noether_1003-01_paths_that_never_cross.md").read_text()
    assert page.startswith("# Feedback for Emmy Noether (1003)") and "## Exercise 1.2: 0 / 4" in page
    assert "written answer" in page and "grade by hand" in page
    with (tmp_path / "hand.csv").open(newline="") as handle:
        template = list(csv.DictReader(handle))
    assert {row["student"] for row in template} == {f"{n.split('_')[0]} ({n.split('_')[1]})" for n in students} | {
        "Grace Hopper (1004)"
    }


def test_every_written_exercise_has_a_rubric():
    """An exercise no check grades is graded by hand against a rubric in its solution (the grader lists it)."""
    graded = {found.label for path in CHAPTERS for found, _ in marked(path)}
    missing = [
        number
        for label, (number, _) in myst.exercises().items()
        if label not in graded and not grade.rubric(label).startswith("A complete")
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


@pytest.mark.parametrize(
    ("path", "metadata", "per_student", "expected"),
    [
        ("x/Ada Lovelace_1001_assignsubmission_file_/01_paths_that_never_cross.ipynb", {}, True, "Ada Lovelace (1001)"),
        ("x/lovelaceada_1001_5551_01_paths_that_never_cross.ipynb", {}, False, "lovelaceada (1001)"),
        ("x/lovelaceada_LATE_1001_5551_01_paths_that_never_cross.ipynb", {}, False, "lovelaceada (1001)"),
        ("x/ada/Copy of 01_paths_that_never_cross.ipynb", {}, True, "ada"),
        ("x/ada.ipynb", {}, False, "ada"),
        ("x/whatever.ipynb", {"flowmaps": {"student": "s-42"}}, False, "s-42"),
    ],
)
def test_a_student_is_recognised_in_an_lms_export(path, metadata, per_student, expected):
    assert classroom.student_of(Path(path), metadata, per_student) == expected


def test_a_chapter_is_found_in_the_names_students_give_their_copies():
    for name in ("Copy of 01_paths_that_never_cross.ipynb", "01_paths_that_never_cross (1).ipynb",
                 "lovelaceada_1001_5551_01_paths_that_never_cross.ipynb"):  # fmt: skip
        assert grade.chapter_of(nbformat.v4.new_notebook(), Path(name)) == CHAPTERS[0]
    with pytest.raises(ValueError, match="not a student edition"):
        grade.chapter_of(nbformat.v4.new_notebook(), Path("homework.ipynb"))


def test_private_tests_replace_the_librarys_hidden_test_and_add_new_ones(tmp_path):
    (tmp_path / "01_paths_that_never_cross.py").write_text(
        "# %% ex-1-heun-hidden points=5\nassert my_heun_step is not None\n\n"
        "# %% ex-1-heun-extra points=1\nassert True\n"
    )
    prepared = grade.prepare(nbformat.read(STUDENT[0], as_version=4), CHAPTERS[0], tmp_path)
    ids = [grade._grade_id(c) for c in prepared.cells]
    hidden = prepared.cells[ids.index("ex-1-heun-hidden")]
    assert hidden.source == grade.RELOAD + "assert my_heun_step is not None" and hidden.metadata.nbgrader.points == 5
    assert "grade_stepper" not in "".join(c.source for c in prepared.cells), "the library's hidden test is replaced"
    assert ids.index("ex-1-heun-extra") == ids.index("ex-1-heun-hidden") + 1
    assert grade._score(nbformat.from_dict({**prepared.cells[ids.index("ex-1-heun-extra")], "execution_count": 1}))
    (tmp_path / "01_paths_that_never_cross.py").write_text("# %% ex-1-heun-new\nassert True\n")
    with pytest.raises(ValueError, match="points=N"):
        grade.prepare(nbformat.read(STUDENT[0], as_version=4), CHAPTERS[0], tmp_path)
    (tmp_path / "01_paths_that_never_cross.py").write_text("assert True\n")
    with pytest.raises(ValueError, match="must start with a line"):
        grade.prepare(nbformat.read(STUDENT[0], as_version=4), CHAPTERS[0], tmp_path)


def test_scores_given_by_hand_are_merged_and_checked(tmp_path):
    items = [grade.Item("1.3", "ex-1-area-written", 0.0, 2.0, "grade by hand: a rubric")]
    (tmp_path / "hand.csv").write_text("student,cell,points,comment\nada,ex-1-area-written,1.5,half the argument\n")
    merged = classroom.merge_manual("ada", items, classroom.read_manual(tmp_path / "hand.csv"))
    assert merged[0].points == 1.5 and merged[0].message == "graded by hand: half the argument"
    assert classroom.merge_manual("alan", items, classroom.read_manual(tmp_path / "hand.csv")) == items
    (tmp_path / "hand.csv").write_text("student,cell,points\nada,ex-1-area-written,3\n")
    with pytest.raises(ValueError, match="outside 0-2"):
        classroom.merge_manual("ada", items, classroom.read_manual(tmp_path / "hand.csv"))
    (tmp_path / "hand.csv").write_text("student,cell,points\nada,ex-1-area-written,lots\n")
    with pytest.raises(ValueError, match="line 2: points must be a number"):
        classroom.read_manual(tmp_path / "hand.csv")


def test_student_editions_carry_the_books_version_and_the_grader_reads_it():
    edition = nbformat.read(STUDENT[0], as_version=4)
    assert edition.metadata.flowmaps.version == versions.package()
    assert "Made from and graded with" in grade.version_note(edition)
    edition.metadata.flowmaps.version = "0.1.0"
    assert "Made from the book's version 0.1.0; graded with" in grade.version_note(edition)
    del edition.metadata.flowmaps["version"]
    assert "no version stamp" in grade.version_note(edition)
