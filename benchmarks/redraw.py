r"""How fast the book's explorers redraw in Chromium: milliseconds per slider move, and each page's payload.

Run it from the repository root (about a minute; needs Chromium at ``FLOWLIB_CHROMIUM`` or /usr/bin/chromium)::

    python -m benchmarks --redraw

Each explorer is built as its chapter builds it (a learned map is an untrained network of the chapter's size:
the page's work depends on the payload's shape, not on the weights), opened in headless Chromium, and each of
its sliders is moved ``moves`` times to values drawn uniformly on the slider's range. An explorer draws
synchronously on the slider's ``input`` event, so the time from dispatching the event to its return
(``performance.now()``) is the redraw's JavaScript and canvas commands; the compositor's paint that follows is
not counted. The target of issue 32 is a median of at most 16 ms (one frame at 60 Hz) on two CPU cores.
It writes ``book/generated/explorer_redraw.json`` and ``.md`` (the evidence appendix includes the table), with the
live explorer's kernel round trip in JupyterLab and Notebook 7 (:mod:`benchmarks.live`) below it.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import flowlib
from benchmarks import live
from flowlib import data, explorer, steer

CHROMIUM = Path(os.environ.get("FLOWLIB_CHROMIUM", "/usr/bin/chromium"))
TARGET_MS = 16.0

#: the script run in the page: move one slider `moves` times, timing each synchronous redraw
_MOVE_AND_TIME = """
(args) => {
  const root = document.querySelectorAll('.flowlib-explorer')[0];
  const input = root.querySelector('input.fx-' + args.slider);
  const lo = +input.min, hi = +input.max, step = +input.step || 1e-3;
  let seed = 12345;
  const times = [];
  for (let i = 0; i < args.moves; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    input.value = lo + Math.round((seed / 2147483648) * (hi - lo) / step) * step;
    const start = performance.now();
    input.dispatchEvent(new Event('input'));
    times.push(performance.now() - start);
  }
  return times;
}
"""


@dataclass
class ExplorerCase:
    """One explorer of the book: its name, where it is, the sliders to move and how to build its HTML."""

    name: str
    chapter: str
    sliders: tuple[str, ...]
    build: Callable[[], str]


def _chapter_4() -> str:
    mix = data.mixture("eight_gaussians")
    view = explorer.explore(mix.velocity, mix.flow_map, reference_flow_map=mix.flow_map, n_paths=100, highlight=5,
                            grid_size=21, title="Exact flow map of the eight Gaussians")  # fmt: skip
    return view.html


def _chapter_5() -> str:
    model = flowlib.build_model("psd", "eight_gaussians")  # chapter 5's PSD map, untrained
    view = explorer.explore_mixture(data.mixture("eight_gaussians"), model, grid_size=17, time_grid=9)
    return view.html


def _chapter_9() -> str:
    names = ("flow map (PSD)", "shortcut", "consistency distillation", "consistency training")
    models = {name: flowlib.build_model("psd", "eight_gaussians", width=192, depth=4) for name in names}
    view = explorer.explore_mixture(data.mixture("eight_gaussians"), models, grid_size=13, time_grid=7)
    return view.html


def _chapter_12() -> str:
    model = flowlib.build_model("psd", "eight_gaussians", width=192, depth=4)
    reward = steer.QuadraticReward(center=[1.6, 1.6], precision=0.5)
    view = explorer.explore_mixture(data.mixture("eight_gaussians"), {"PSD": model}, s=0.25, t=1.0, u=0.6,
                                    reward=reward, strength=2.0, grid_size=17, time_grid=9)  # fmt: skip
    return view.html


def _chapter_11() -> str:
    oracle = data.digits_mixture()  # the digits mixture's exact map stands in for the learned jumps: same payload
    start = torch.randn(40, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    view = explorer.explore(oracle.velocity, oracle.flow_map, start=start, reference_flow_map=oracle.flow_map,
                            image_shape=(1, 8, 8), highlight=4, grid_size=9)  # fmt: skip
    return view.html


CASES = (
    ExplorerCase("paths, tangent and jump on a grid of times (explore)", "4, 6, 7, 8", ("s", "t"), _chapter_4),
    ExplorerCase("the same on image paths, with thumbnails", "11", ("s", "t"), _chapter_11),
    ExplorerCase("any point and times, composition, learned field (explore_mixture)", "5", ("s", "t", "u"), _chapter_5),
    ExplorerCase("the same with four learned maps and a menu", "9", ("s", "t", "u"), _chapter_9),
    ExplorerCase(
        "the same with the look-ahead: reward, denoiser, 64 + 1024 posterior draws", "12", ("s", "t", "u"), _chapter_12
    ),  # fmt: skip
)


def _time_moves(page: object, html: str, sliders: tuple[str, ...], moves: int) -> dict[str, list[float]]:
    page.set_content(f"<!DOCTYPE html><html><body style='width:900px'>{html}</body></html>")
    page.wait_for_selector(".flowlib-explorer canvas")
    page.evaluate(_MOVE_AND_TIME, {"slider": sliders[0], "moves": 5})  # warm the JIT
    return {name: page.evaluate(_MOVE_AND_TIME, {"slider": name, "moves": moves}) for name in sliders}


def run_redraw(moves: int = 100, clicks: int = 30) -> dict:
    """Build every explorer, move each slider ``moves`` times in Chromium, return the times per move (ms); then click
    the live explorer ``clicks`` times in each front end and time the kernel's answers (:func:`live.round_trip`).
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"Chromium not found at {CHROMIUM}: apt-get install chromium, or set FLOWLIB_CHROMIUM")
    rows = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox",
                                                                              "--disable-gpu"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for case in CASES:
            html = case.build()
            per_slider = _time_moves(page, html, case.sliders, moves)
            every = [t for times in per_slider.values() for t in times]
            spread = live.summary(every)
            rows.append({
                "explorer": case.name, "chapters": case.chapter, "payload_bytes": len(html.encode("utf-8")),
                "moves": spread["count"], "median_ms": spread["median_ms"], "p95_ms": spread["p95_ms"],
                "max_ms": spread["max_ms"],
                "median_ms_per_slider": {name: statistics.median(times) for name, times in per_slider.items()},
            })  # fmt: skip
        round_trips = {name: live.summary(live.round_trip(browser, clicks, name)) for name in live.FRONT_ENDS}
        version = browser.version
        browser.close()
    return {
        "rows": rows,
        "round_trips": round_trips,
        "target_ms": TARGET_MS,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "chromium": version},
    }


def to_markdown(result: dict) -> str:
    """The redraw table, one row per explorer, with the target read off each row."""
    lines = [
        "| explorer | chapters | payload (KB) | slider moves | median (ms) | 95th percentile (ms) | slowest (ms) | "
        f"median ≤ {result['target_ms']:.0f} ms |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["rows"]:
        met = "yes" if row["median_ms"] <= result["target_ms"] else "no"
        lines.append(
            f"| {row['explorer']} | {row['chapters']} | {row['payload_bytes'] / 1000:.0f} | {row['moves']} | "
            f"{row['median_ms']:.1f} | {row['p95_ms']:.1f} | {row['max_ms']:.1f} | {met} |"
        )
    if result.get("round_trips"):
        heading = "| live explorer (chapter 5's PSD size, untrained) | clicks | median (ms) | 95th percentile (ms) |"
        lines += ["", heading + " slowest (ms) |", "|---|---:|---:|---:|---:|"]
        for name, row in result["round_trips"].items():
            lines.append(f"| {name}: click to the kernel's answer drawn | {row['count']} | {row['median_ms']:.0f} | "
                         f"{row['p95_ms']:.0f} | {row['max_ms']:.0f} |")  # fmt: skip
    machine = result["machine"]
    lines += ["", f"Headless Chromium {machine['chromium']} on {machine['cpus']} CPU cores ({machine['platform']})."]
    return "\n".join(lines) + "\n"
