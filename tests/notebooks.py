"""Execute the book's chapters with nbclient (used by the tests and runnable by hand).

    python tests/notebooks.py book/01_paths_that_never_cross.ipynb [--smoke] [--save out.ipynb]

prints the wall time of the whole chapter and of its slowest cells, and

    python tests/notebooks.py --record

runs every chapter in order, in full mode and then in smoke mode, each from an empty model cache, and
writes the seconds to ``book/generated/chapter_times.json``: the one measurement the README's table and
the teachers' page are generated from (``python -m editions``), and

    python tests/notebooks.py --readings --seeds 0 1 2 3 4 [book/12_*.ipynb ...]

runs the chapters (default: all) in full mode under each seed (``FLOWLIB_SEED``), from one empty model cache,
and records every reading the chapters check with ``setup.expect`` into ``book/generated/readings.json`` and the
evidence appendix's table ``book/generated/readings.md`` (chapters not run keep their earlier rows).

The tests execute every chapter **once**: :func:`executed_book` copies the book and its Colab editions
into a folder, runs each chapter's Colab edition there in smoke mode (chapters in order, sharing one model
cache, as in a build of the site), with its install cell pointed at this checkout instead of GitHub. The
editions' code cells are the sources' (same ids and code; ``tests/test_editions.py`` checks it), so their
outputs are copied onto the source notebooks, and the site is built from those without executing again.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
#: where the install cells fetch flowlib from
INSTALL_SOURCE = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+@v[\w.]+")


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
    """One chapter executed into the copy: its executed notebook, seconds, the error if a cell failed, and the
    readings its ``setup.expect`` calls recorded (names and bounds; smoke mode checks only the exact ones)."""

    notebook: nbformat.NotebookNode | None
    seconds: float
    error: str | None
    readings: list[dict]


def point_install_at_checkout(notebook: nbformat.NotebookNode, checkout: Path = ROOT) -> int:
    """Make the notebook's install cell install flowlib from ``checkout`` instead of GitHub; return how many
    cells changed (the install cell runs pip only when flowlib cannot be imported)."""
    changed = 0
    for cell in notebook.cells:
        if cell.cell_type == "code" and INSTALL_SOURCE.search(cell.source):
            cell.source = INSTALL_SOURCE.sub(checkout.as_uri(), cell.source)
            changed += 1
    return changed


def copy_outputs(executed: nbformat.NotebookNode, target: Path) -> None:
    """Copy the outputs of ``executed`` onto the notebook at ``target``, code cell by code cell id.

    Raises:
        ValueError: a code cell of ``target`` has no executed twin (the edition is out of date).
    """
    by_id = {cell.get("id"): cell for cell in executed.cells if cell.cell_type == "code"}
    notebook = nbformat.read(target, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        twin = by_id.get(cell.get("id"))
        if twin is None:
            raise ValueError(f"{target.name}: code cell {cell.get('id')} is not in the executed edition")
        cell.outputs, cell.execution_count = twin.outputs, twin.execution_count
    nbformat.write(notebook, target)


def executed_book(folder: Path) -> dict[str, Run]:
    """Copy the book into ``folder``, execute every chapter's Colab edition there in smoke mode, copy the outputs
    onto the source notebooks, and configure the copy so that ``jupyter-book build`` renders them without
    running them again."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "book", folder / "book", ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    shutil.copytree(ROOT / "colab", folder / "colab", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    # the site's grading_marks extension reads the markers from editions/marks.py
    shutil.copytree(ROOT / "editions", folder / "editions", ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((folder / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (folder / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    cache_before, readings_before = os.environ.get("FLOWLIB_CACHE"), os.environ.get("FLOWLIB_READINGS")
    os.environ["FLOWLIB_CACHE"] = str(folder / "model-cache")
    (folder / "readings").mkdir()
    runs: dict[str, Run] = {}
    try:
        for chapter in CHAPTERS:
            lines = folder / "readings" / f"{chapter.stem}.jsonl"
            os.environ["FLOWLIB_READINGS"] = str(lines)
            edition = folder / "colab" / chapter.name
            notebook = nbformat.read(edition, as_version=4)
            if point_install_at_checkout(notebook) != 1:
                raise ValueError(f"colab/{chapter.name}: expected one install cell that installs from GitHub")
            nbformat.write(notebook, edition)
            start = time.perf_counter()
            try:
                nb, seconds, _ = execute(edition, smoke=True)
                nbformat.write(nb, edition)
                copy_outputs(nb, folder / "book" / chapter.name)
                runs[chapter.stem] = Run(nb, seconds, None, _read_lines(lines))
            except CellExecutionError as error:
                runs[chapter.stem] = Run(None, time.perf_counter() - start, str(error)[-4000:], _read_lines(lines))
    finally:
        for key, value in (("FLOWLIB_CACHE", cache_before), ("FLOWLIB_READINGS", readings_before)):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return runs


TIMES = ROOT / "book" / "generated" / "chapter_times.json"


def _gpu() -> str:
    import torch

    return f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU"


def record_times(out: Path = TIMES) -> dict:
    """Run every chapter in order in full mode, then in smoke mode (each pass from an empty model cache, later
    chapters reusing earlier models as in a build of the site), and write the seconds of each to ``out``.

    Raises:
        nbclient.exceptions.CellExecutionError: a chapter failed (nothing is written).
    """
    seconds: dict[str, dict[str, float]] = {path.stem: {} for path in CHAPTERS}
    cache_before = os.environ.get("FLOWLIB_CACHE")
    try:
        for mode in ("full", "smoke"):
            with tempfile.TemporaryDirectory() as cache:
                os.environ["FLOWLIB_CACHE"] = cache
                for path in CHAPTERS:
                    _, total, _ = execute(path, smoke=mode == "smoke")
                    seconds[path.stem][mode] = round(total, 1)
                    print(f"{path.name}: {total:.1f} s ({mode})", flush=True)
    finally:
        if cache_before is None:
            os.environ.pop("FLOWLIB_CACHE", None)
        else:
            os.environ["FLOWLIB_CACHE"] = cache_before
    record = {
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), {_gpu()}",
        "how": "python tests/notebooks.py --record (chapters in order; full, then smoke; empty cache each)",
        "seconds": seconds,
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


READINGS = ROOT / "book" / "generated" / "readings.json"


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def record_readings(chapters: list[Path], seeds: list[int], out: Path = READINGS) -> dict:
    """Run ``chapters`` in full mode under each seed and record the readings their ``setup.expect`` calls check.

    The chapters run from a copy of the book (edits made meanwhile do not reach a run in progress), in order,
    all seeds sharing one empty model cache (models are keyed by their seed). Readings are recorded in survey
    mode (``FLOWLIB_SURVEY``): a value outside its bounds is kept and reported, not raised. Values of other seeds
    already in ``out`` are kept, so seeds can be added run by run; readings a chapter no longer checks are dropped.
    ``out`` is rewritten after every chapter, so an interrupted run keeps what it measured.
    """
    record = json.loads(out.read_text()) if out.exists() else {"chapters": {}}
    saved = {
        key: os.environ.get(key) for key in ("FLOWLIB_CACHE", "FLOWLIB_SEED", "FLOWLIB_READINGS", "FLOWLIB_SURVEY")
    }
    with tempfile.TemporaryDirectory() as folder:
        book_copy = Path(folder) / "book"
        shutil.copytree(ROOT / "book", book_copy, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
        os.environ["FLOWLIB_CACHE"] = str(Path(folder) / "model-cache")
        os.environ["FLOWLIB_SURVEY"] = "1"
        # rows already measured for other seeds are kept (a run may add seeds); a reading whose bounds changed starts
        # afresh, since its earlier values were checked against other bounds
        fresh = {path.stem: copy.deepcopy(record["chapters"].get(path.stem, {})) for path in chapters}
        seen: dict[str, set[str]] = {path.stem: set() for path in chapters}
        try:
            for seed in seeds:
                for path in chapters:
                    lines = Path(folder) / f"{path.stem}-{seed}.jsonl"
                    os.environ["FLOWLIB_SEED"], os.environ["FLOWLIB_READINGS"] = str(seed), str(lines)
                    _, total, _ = execute(book_copy / path.name, smoke=False)
                    for entry in _read_lines(lines):
                        row = fresh[path.stem].setdefault(
                            entry["reading"], {"below": entry["below"], "above": entry["above"], "values": {}}
                        )
                        if (row["below"], row["above"]) != (entry["below"], entry["above"]):
                            row.update(below=entry["below"], above=entry["above"], values={})
                        row["values"][str(seed)] = entry["value"]
                        seen[path.stem].add(entry["reading"])
                    record["chapters"][path.stem] = {k: v for k, v in fresh[path.stem].items() if k in seen[path.stem]}
                    record.update(
                        measured=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                        machine=f"{os.cpu_count()} CPU cores ({platform.machine()}), {_gpu()}",
                    )
                    out.write_text(json.dumps(record, indent=1) + "\n")
                    outside = readings_outside(record["chapters"][path.stem], str(seed))
                    print(
                        f"{path.name}, seed {seed}: {total:.0f} s; outside their bounds: {outside or 'none'}",
                        flush=True,
                    )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    (out.parent / "readings.md").write_text(readings_table(record))
    return record


def holds(row: dict, value: float) -> bool:
    """Whether ``value`` lies inside the bounds of a reading's ``row``."""
    return (row["below"] is None or value < row["below"]) and (row["above"] is None or value > row["above"])


def readings_outside(rows: dict, seed: str) -> list[str]:
    """The readings whose value for ``seed`` lies outside their bounds."""
    return [name for name, row in rows.items() if seed in row["values"] and not holds(row, row["values"][seed])]


def readings_table(record: dict) -> str:
    """The evidence appendix's table: one row per reading with its bound and its spread over the seeds."""
    lines = [
        f"Measured {record.get('measured', '?')} on {record.get('machine', '?')} with "
        "`python tests/notebooks.py --readings --seeds ...` (full mode, one empty model cache).",
        "",
        "| chapter | reading | bound | seeds | min | mean | max | holds for every seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stem in sorted(record["chapters"]):
        for name, row in record["chapters"][stem].items():
            values = list(row["values"].values())
            bound = " and ".join(
                f"{sign} {value:g}"
                for sign, value in (("above", row["above"]), ("below", row["below"]))
                if value is not None
            )
            every = "yes" if all(holds(row, v) for v in values) else "**no**"
            chapter_name = stem.split("_", 1)[0].lstrip("0")
            text = name.replace("|", "\\|")
            lines.append(
                f"| {chapter_name} | {text} | {bound} | {len(values)} | {min(values):.4g} | "
                f"{sum(values) / len(values):.4g} | {max(values):.4g} | {every} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, default=CHAPTERS)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--save", type=Path, help="write the executed notebook here (one notebook only)")
    parser.add_argument("--record", action="store_true", help=f"time every chapter into {TIMES.relative_to(ROOT)}")
    parser.add_argument(
        "--readings", action="store_true", help=f"record every checked reading into {READINGS.relative_to(ROOT)}"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of --readings")
    parser.add_argument("--render-readings", action="store_true", help="rewrite readings.md from readings.json")
    args = parser.parse_args()
    if args.record:
        record_times()
        sys.exit(0)
    if args.render_readings:
        (READINGS.parent / "readings.md").write_text(readings_table(json.loads(READINGS.read_text())))
        sys.exit(0)
    if args.readings:
        record_readings([path.resolve() for path in args.notebooks], args.seeds)
        sys.exit(0)
    for path in args.notebooks:
        nb, total, timings = execute(path.resolve(), args.smoke)
        slow = ", ".join(f"cell {i}: {s:.1f}s" for s, i in sorted(timings, reverse=True)[:3])
        print(f"{path.name}: {total:.1f} s ({'smoke' if args.smoke else 'full'}); slowest {slow}")
        if args.save:
            nbformat.write(nb, args.save)
    sys.exit(0)


if __name__ == "__main__":
    main()
