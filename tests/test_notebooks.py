"""Every chapter runs top to bottom in smoke mode (FLOWLIB_SMOKE=1) without an error."""

import pytest
from notebooks import CHAPTERS, execute

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_in_smoke_mode(path, monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path / "cache"))
    nb, seconds, _ = execute(path, smoke=True)
    printed = "".join(
        "".join(output.get("text", "")) for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "mode smoke" in printed, "the set-up cell should report smoke mode"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    print(f"{path.name}: {seconds:.1f} s in smoke mode")
