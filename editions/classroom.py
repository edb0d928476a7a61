"""What grading a real class needs around :mod:`editions.grade`: who a submission belongs to, a teacher's private
tests, scores entered by hand, and a feedback page per student.

**Who.** A learning platform's export names submissions in its own way; :func:`student_of` reads, in order, the
notebook's metadata (``flowmaps.student``, which a teacher's own tooling may set), a folder per student (Moodle:
``Ada Lovelace_123456_assignsubmission_file_/…``; any export that puts each student in a folder), Canvas's file
names (``lovelaceada_123456_7891011_01_paths_that_never_cross.ipynb``, with ``_LATE`` after the name when late),
and else the file name itself. :func:`chapter_in_name` finds the chapter in names such as ``Copy of 01_…`` (Colab)
or ``01_… (1).ipynb`` (a second download).

**Private tests.** ``--tests FOLDER`` holds one file per chapter, ``FOLDER/<chapter>.py`` (e.g.
``01_paths_that_never_cross.py``), in cells that start with a marker line::

    # %% ex-1-heun-hidden
    ...replaces the library's hidden test of that cell...

    # %% ex-1-heun-private points=3
    ...a further test, graded after the exercise's other cells...

The folder stays with the teacher: students never see it, unlike the library's hidden tests, which ship with
``flowlib`` so that the book works out of the box and remain the default.

**By hand.** ``--manual-template FILE`` writes a CSV with a row per student and written answer; the teacher fills in
``points`` (and ``comment``) and passes it back with ``--manual FILE``.

**Feedback.** ``--feedback FOLDER`` writes ``FOLDER/<student>.md``: each exercise with what each check and hidden
test said, the rubric of each written answer, and the teacher's comments.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path

from editions import myst

#: Moodle puts each submission in ``<full name>_<id>_assignsubmission_file_``.
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_\w*$")
#: Canvas names each file ``<name>[_LATE]_<user id>_<submission id>_<original name>``.
_CANVAS = re.compile(r"^(?P<name>[a-z]+)(?:_LATE)?_(?P<id>\d+)_\d+_(?P<rest>.+)$", re.IGNORECASE)
#: A cell of a private-tests file: ``# %% <grade_id> [points=N]``.
_PRIVATE_CELL = re.compile(r"^# %% (?P<id>[\w.-]+)(?:\s+points=(?P<points>[0-9.]+))?\s*$", re.M)


def chapter_in_name(name: str) -> Path | None:
    """The chapter whose file stem a submission's name contains (``Copy of 01_…``, ``01_… (1)``), or ``None``."""
    for chapter in myst.CHAPTERS:
        if chapter.stem in name:
            return chapter
    return None


def student_of(path: Path, metadata: dict, folders_per_student: bool) -> str:
    """A submission's student id (see the module's description)."""
    named = metadata.get("flowmaps", {}).get("student")
    if named:
        return str(named)
    if folders_per_student:
        folder = path.parent.name
        moodle = _MOODLE.match(folder)
        return f"{moodle['name']} ({moodle['id']})" if moodle else folder
    canvas = _CANVAS.match(path.stem)
    if canvas and chapter_in_name(canvas["rest"]) is not None:
        return f"{canvas['name']} ({canvas['id']})"
    return path.stem


def folders_per_student(paths: list[Path]) -> bool:
    """Whether the submissions sit in a folder per student (more than one folder, one chapter file in each)."""
    folders = {path.resolve().parent for path in paths}
    return len(folders) > 1 or any(_MOODLE.match(folder.name) for folder in folders)


@dataclass(frozen=True)
class PrivateTest:
    """One cell of a teacher's private tests."""

    grade_id: str
    code: str
    points: float | None  # None: keep the replaced cell's points (a new cell needs them)


def private_tests(folder: Path | None, chapter: Path) -> list[PrivateTest]:
    """The teacher's private tests for ``chapter`` (``folder/<chapter stem>.py``), in file order.

    Raises:
        ValueError: the file has code before its first marker, or a new test without ``points=``.
    """
    if folder is None or not (folder / f"{chapter.stem}.py").exists():
        return []
    path = folder / f"{chapter.stem}.py"
    text = path.read_text(encoding="utf-8")
    markers = list(_PRIVATE_CELL.finditer(text))
    if not markers or text[: markers[0].start()].strip():
        raise ValueError(f"{path}: every test must start with a line '# %% <grade_id> [points=N]'")
    tests = []
    for marker, following in zip(markers, [*markers[1:], None], strict=True):
        code = text[marker.end() : following.start() if following else len(text)].strip("\n")
        points = float(marker["points"]) if marker["points"] else None
        tests.append(PrivateTest(marker["id"], code, points))
    return tests


def exercise_label(grade_id: str) -> str:
    """``ex-1-heun`` from ``ex-1-heun-hidden``, ``ex-1-heun-check`` or a private ``ex-1-heun-private``."""
    for label in sorted(myst.exercises(), key=len, reverse=True):
        if grade_id.startswith(label + "-"):
            return label
    return grade_id.rsplit("-", 1)[0]


def read_manual(path: Path) -> dict[tuple[str, str], tuple[float, str]]:
    """The teacher's scores by (student, grade_id): ``{(student, cell): (points, comment)}``; empty points skipped.

    Raises:
        ValueError: a missing column, or points that are not a number.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"student", "cell", "points"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"{path}: the columns must include {sorted(needed)}; found {sorted(rows[0])}")
    scores = {}
    for number, row in enumerate(rows, start=2):
        if not row["points"].strip():
            continue
        try:
            scores[row["student"], row["cell"]] = (float(row["points"]), row.get("comment", "").strip())
        except ValueError:
            raise ValueError(f"{path}, line {number}: points must be a number, got {row['points']!r}") from None
    return scores


def merge_manual(student: str, items: list, manual: dict) -> list:
    """The items with the teacher's scores put in place of "grade by hand" (and their comments appended)."""
    merged = []
    for item in items:
        entered = manual.get((student, item.cell))
        if entered is not None:
            points, comment = entered
            if not 0 <= points <= item.possible:
                raise ValueError(f"{student}, {item.cell}: {points} points is outside 0-{item.possible:g}")
            item = replace(item, points=points, message=f"graded by hand: {comment}" if comment else "graded by hand")
        merged.append(item)
    return merged


def write_manual_template(path: Path, graded: list[tuple[str, list]]) -> None:
    """A CSV with a row per student and written answer, for the teacher to fill in."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "exercise", "cell", "possible", "points", "comment", "rubric"])
        for student, items in graded:
            for item in items:
                if item.message.startswith(("grade by hand", "missing")):
                    writer.writerow([student, item.exercise, item.cell, item.possible, "", "", item.message])


def exercise_rows(student: str, chapter: str, items: list) -> list[list]:
    """One CSV row per exercise: points, possible, and whether part of it still waits for a person."""
    by_exercise: dict[str, list] = {}
    for item in items:
        by_exercise.setdefault(item.exercise, []).append(item)
    rows = []
    for exercise, parts in by_exercise.items():
        waiting = any(part.message.startswith(("grade by hand", "missing")) for part in parts)
        rows.append([
            student, chapter, exercise, sum(p.points for p in parts), sum(p.possible for p in parts),
            "waits for grading by hand" if waiting else "complete", "; ".join(f"{p.cell}: {p.message}" for p in parts),
        ])  # fmt: skip
    return rows


def feedback_page(student: str, chapter: str, version_note: str, items: list) -> str:
    """A Markdown page for one student: points per exercise and what each graded cell said."""
    earned, possible = sum(i.points for i in items), sum(i.possible for i in items)
    lines = [f"# Feedback for {student}: {chapter}", "", f"**{earned:g} / {possible:g} points.** {version_note}", ""]
    for exercise in dict.fromkeys(i.exercise for i in items):
        parts = [i for i in items if i.exercise == exercise]
        lines += [f"## Exercise {exercise}: {sum(p.points for p in parts):g} / {sum(p.possible for p in parts):g}", ""]
        for part in parts:
            what = "written answer" if part.cell.endswith("-written") else part.cell.rsplit("-", 1)[-1]
            lines.append(f"- *{what}* ({part.points:g}/{part.possible:g}): {part.message}")
        lines.append("")
    return "\n".join(lines)


def file_name(student: str) -> str:
    """A file name for a student id (letters, digits, dashes and underscores)."""
    return re.sub(r"[^\w-]+", "_", student).strip("_") or "student"
