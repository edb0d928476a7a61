"""nbgrader itself accepts the book's marks: a round trip through its own commands (issue 33, part 6).

A course folder in a temporary directory holds chapter 1's source as an assignment. ``nbgrader generate_assignment``
must release it with no solution and no hidden test; ``nbgrader autograde`` (smoke mode) must give a submission
of the released notebook, left blank, zero, and a submission of the reference answers full marks.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from notebooks import ROOT

nbgrader_api = pytest.importorskip("nbgrader.api")

CHAPTER = ROOT / "book" / "01_paths_that_never_cross.ipynb"


def _nbgrader(course: Path, *args: str) -> None:
    env = dict(os.environ, FLOWLIB_SMOKE="1", FLOWLIB_CACHE=str(course / "cache"))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stderr[-4000:]}"


def _graded(course: Path, student: str) -> dict[str, tuple[float, float]]:
    with nbgrader_api.Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission("ps1", student)
        return {grade.name: (grade.score, grade.max_score) for nb in submission.notebooks for grade in nb.grades}


def test_nbgrader_releases_no_solution_and_grades_blank_zero_and_reference_full(tmp_path):
    course = tmp_path / "course"
    (course / "source" / "ps1").mkdir(parents=True)
    shutil.copy(CHAPTER, course / "source" / "ps1" / CHAPTER.name)
    (course / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n")
    _nbgrader(course, "db", "assignment", "add", "ps1")
    _nbgrader(course, "generate_assignment", "ps1", "--force")
    released = course / "release" / "ps1" / CHAPTER.name
    source = json.loads(CHAPTER.read_text())
    hidden = ["".join(c["source"]) for c in source["cells"] if "BEGIN HIDDEN TESTS" in "".join(c["source"])]
    text = released.read_text()
    assert hidden and "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    hidden_lines = [line for cell in hidden for line in cell.splitlines() if line and not line.startswith("###")]
    assert hidden_lines and all(json.dumps(line)[1:-1] not in text for line in hidden_lines), "a hidden test leaked"
    for student, notebook in (("blank", released), ("reference", CHAPTER)):
        (course / "submitted" / student / "ps1").mkdir(parents=True)
        shutil.copy(notebook, course / "submitted" / student / "ps1" / CHAPTER.name)
    _nbgrader(course, "autograde", "ps1", "--create")
    blank, reference = _graded(course, "blank"), _graded(course, "reference")
    assert blank and set(blank) == set(reference)
    assert all(score == 0 for score, _ in blank.values()), blank
    assert all(score == possible > 0 for score, possible in reference.values()), reference
