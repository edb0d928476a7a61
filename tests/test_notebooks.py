"""Every chapter runs top to bottom in smoke mode (FLOWLIB_SMOKE=1) without an error.

The chapters are executed once per test session (the ``executed_book`` fixture in conftest.py), into a copy
of the book that the site test then builds without executing again.
"""

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
