"""The grading marks in the source notebooks, in nbgrader's format.

A code exercise that a machine can grade has three code cells in its solution (``solution-start`` …
``solution-end``), each with ``nbgrader`` cell metadata (schema 3) as ``nbgrader generate_assignment`` reads it:

* the **answer** cell (``"solution": true``): the reference solution between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``; a student edition replaces that region by ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()`` at the same indentation;
* the **public check** (``"grade": true, "locked": true``, 1 point): a call of ``flowlib.exercises.check_*``
  that the chapter asks the reader to run;
* the **hidden test** (``"grade": true, "locked": true``, 2 points, tagged ``remove-cell`` so the site does
  not show it): a call of ``flowlib._grading.grade_*`` between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``, which a student edition leaves out and the grader puts back.

The ``grade_id`` of each cell is the exercise's label followed by ``-answer``, ``-check`` or ``-hidden``. Student
editions add a ``-written`` cell (an nbgrader manually graded answer, 2 points) after every other exercise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from editions import myst

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
ROLES = ("answer", "check", "hidden", "written")


@dataclass(frozen=True)
class Mark:
    """One marked cell: the exercise's label, its role ("answer", "check", "hidden", "written") and its points."""

    label: str
    role: str
    points: float


def mark(cell: dict) -> Mark | None:
    """The grading mark of a cell, or None for a cell nbgrader does not grade or clear.

    Raises:
        ValueError: nbgrader metadata whose ``grade_id`` is not ``<exercise label>-<role>``, or a role whose
            flags disagree with it (an answer must be a solution cell, a check or hidden test a locked grade cell).
    """
    meta = cell.get("metadata", {}).get("nbgrader")
    if not meta:
        return None
    found = re.fullmatch(rf"(?P<label>[\w-]+)-(?P<role>{'|'.join(ROLES)})", meta.get("grade_id", ""))
    if not found or found.group("label") not in myst.exercises():
        raise ValueError(f"nbgrader grade_id {meta.get('grade_id')!r} is not '<exercise label>-answer|check|hidden'")
    role = found.group("role")
    expected = {"answer": (True, False, False), "written": (True, True, False)}.get(role, (False, True, True))
    if (meta.get("solution"), meta.get("grade"), meta.get("locked")) != expected:
        raise ValueError(f"{meta['grade_id']}: solution/grade/locked should be {expected} for a cell of role {role}")
    return Mark(found.group("label"), role, float(meta.get("points", 0)))


def strip_markers(code: str) -> str:
    """The code without the marker lines (what a reader sees: the reference solution, the hidden test's call)."""
    return "\n".join(line for line in code.split("\n") if line.strip() not in MARKERS)


def _regions(code: str, begin: str, end: str) -> list[tuple[int, int]]:
    """``(begin line, end line)`` of each marked region.

    Raises:
        ValueError: a region opened and not closed, closed and not opened, or nested.
    """
    lines, regions, opened = code.split("\n"), [], None
    for index, line in enumerate(lines):
        if line.strip() == begin:
            if opened is not None:
                raise ValueError(f"{begin!r} inside another region (line {index + 1})")
            opened = index
        elif line.strip() == end:
            if opened is None:
                raise ValueError(f"{end!r} without {begin!r} (line {index + 1})")
            regions.append((opened, index))
            opened = None
    if opened is not None:
        raise ValueError(f"{begin!r} on line {opened + 1} is never closed by {end!r}")
    return regions


def clear_solutions(code: str) -> str:
    """Replace each solution region by ``# YOUR CODE HERE`` and ``raise NotImplementedError()``, indented as its
    marker (what ``nbgrader generate_assignment`` does).
    """
    lines = code.split("\n")
    for begin, end in reversed(_regions(code, BEGIN_SOLUTION, END_SOLUTION)):
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        lines[begin : end + 1] = [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
    return "\n".join(lines)


def remove_hidden_tests(code: str) -> str:
    """The code without its hidden-test regions (markers included)."""
    lines = code.split("\n")
    for begin, end in reversed(_regions(code, BEGIN_HIDDEN, END_HIDDEN)):
        del lines[begin : end + 1]
    return "\n".join(lines).strip("\n")
