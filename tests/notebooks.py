"""Execute the book's chapters with nbclient (used by the tests and runnable by hand).

    python tests/notebooks.py book/01_paths_that_never_cross.ipynb [--smoke] [--save out.ipynb]

prints the wall time of the whole chapter and of its slowest cells.

The tests execute every chapter **once**: :func:`executed_book` copies the book's sources into a folder,
runs each chapter there in smoke mode (chapters in order, sharing one model cache, as in a build of the
site), and the site is then built from those executed notebooks without executing them again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def execute(
    path: Path, smoke: bool, timeout: int = 900
) -> tuple[nbformat.NotebookNode, float, list[tuple[float, int]]]:
    """Run every cell of ``path`` in a fresh kernel started in the notebook's folder.

    Returns the executed notebook, the total seconds and (seconds, cell index) of each code cell.
    Raises nbclient's ``CellExecutionError`` at the first failing cell.
    """
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("FLOWLIB_SMOKE")
    os.environ["FLOWLIB_SMOKE"] = "1" if smoke else "0"
    timings: list[tuple[float, int]] = []
    try:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        start = time.perf_counter()
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                cell_start = time.perf_counter()
                client.execute_cell(cell, index)
                timings.append((time.perf_counter() - cell_start, index))
        total = time.perf_counter() - start
    finally:
        if env_before is None:
            os.environ.pop("FLOWLIB_SMOKE", None)
        else:
            os.environ["FLOWLIB_SMOKE"] = env_before
    return nb, total, timings


@dataclass
class Run:
    """One chapter executed into the copy: its executed notebook, seconds, and the error if a cell failed."""

    notebook: nbformat.NotebookNode | None
    seconds: float
    error: str | None


def executed_book(folder: Path) -> dict[str, Run]:
    """Copy the book's sources into ``folder``, execute every chapter there in smoke mode, and configure the
    copy so that ``jupyter-book build`` renders the executed notebooks without running them again."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "book", folder / "book", ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    config = yaml.safe_load((folder / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (folder / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    cache_before = os.environ.get("FLOWLIB_CACHE")
    os.environ["FLOWLIB_CACHE"] = str(folder / "model-cache")
    runs: dict[str, Run] = {}
    try:
        for chapter in CHAPTERS:
            copy = folder / "book" / chapter.name
            start = time.perf_counter()
            try:
                nb, seconds, _ = execute(copy, smoke=True)
                nbformat.write(nb, copy)
                runs[chapter.stem] = Run(nb, seconds, None)
            except CellExecutionError as error:
                runs[chapter.stem] = Run(None, time.perf_counter() - start, str(error)[-4000:])
    finally:
        if cache_before is None:
            os.environ.pop("FLOWLIB_CACHE", None)
        else:
            os.environ["FLOWLIB_CACHE"] = cache_before
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="*", type=Path, default=CHAPTERS)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--save", type=Path, help="write the executed notebook here (one notebook only)")
    args = parser.parse_args()
    for path in args.notebooks:
        nb, total, timings = execute(path.resolve(), args.smoke)
        slow = ", ".join(f"cell {i}: {s:.1f}s" for s, i in sorted(timings, reverse=True)[:3])
        print(f"{path.name}: {total:.1f} s ({'smoke' if args.smoke else 'full'}); slowest {slow}")
        if args.save:
            nbformat.write(nb, args.save)
    sys.exit(0)


if __name__ == "__main__":
    main()
