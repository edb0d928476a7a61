"""Every chapter runs top to bottom in smoke mode (FLOWLIB_SMOKE=1) without an error.

The chapters are executed once per test session (the ``executed_book`` fixture in conftest.py), into a copy
of the book that the site test then builds without executing again.
"""

import json

import pytest
from notebooks import CHAPTERS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_in_smoke_mode(executed_book, path):
    _, runs = executed_book
    run = runs[path.stem]
    assert run.error is None, f"{path.name} failed in smoke mode:\n{run.error}"
    printed = "".join(
        "".join(output.get("text", ""))
        for cell in run.notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "mode smoke" in printed, "the set-up cell should report smoke mode"
    print(f"{path.name}: {run.seconds:.1f} s in smoke mode")


def test_every_asserted_reading_was_measured_over_seeds_and_holds_for_each(executed_book):
    """Each reading a chapter checks (``setup.expect``) has a row in the evidence table, with the same bounds,
    measured in full mode over at least five seeds, every one of which lies inside the bounds: the bounds were set
    outside the spread, not from one run (``python tests/notebooks.py --readings`` regenerates the table)."""
    from notebooks import READINGS, holds

    _, runs = executed_book
    record = json.loads(READINGS.read_text())
    for chapter in CHAPTERS:
        checked = {entry["reading"]: (entry["below"], entry["above"]) for entry in runs[chapter.stem].readings}
        measured = record["chapters"].get(chapter.stem, {})
        assert set(checked) == set(measured), (
            f"{chapter.name}: readings checked but not measured over seeds {sorted(set(checked) - set(measured))}, "
            f"measured but no longer checked {sorted(set(measured) - set(checked))}"
        )
        for name, bounds in checked.items():
            row = measured[name]
            assert (row["below"], row["above"]) == bounds, f"{chapter.name}: {name!r} bounds changed since measured"
            assert len(row["values"]) >= 5, f"{chapter.name}: {name!r} measured over {len(row['values'])} seeds"
            outside = {seed: v for seed, v in row["values"].items() if not holds(row, v)}
            assert not outside, f"{chapter.name}: {name!r} is outside {bounds} for seeds {outside}"


def test_the_evidence_table_is_generated_from_the_measurements():
    from notebooks import READINGS, readings_table

    table = (READINGS.parent / "readings.md").read_text()
    assert table == readings_table(json.loads(READINGS.read_text())), "run python tests/notebooks.py --render-readings"
