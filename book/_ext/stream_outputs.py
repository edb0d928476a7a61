"""Sphinx extension: a cell's printed output reads as it last looked, not as every redraw.

A progress bar redraws itself by writing a carriage return and the new state over the old one. Jupyter
and Colab show only the last state. An executed notebook stores each redraw as its own stream output, and
myst-nb's ``nb_merge_streams`` joins them with a newline after each before it processes carriage returns,
so a static page showed every redraw as a line: a staircase of bars. This extension makes myst-nb join
consecutive stream outputs as a terminal would — concatenated, then each line reduced to the text after
its last carriage return — and then leaves the progress bars out: a bar is for the reader who waits in
Jupyter or Colab, not for the page, where the cell's other output (the trained model's record: steps,
seconds, final loss) says what the training did.
"""

from __future__ import annotations

import copy
import re

import myst_nb.core.render as myst_nb_render

#: a tqdm text bar: "training psd:  40%|████      | 400/1000 [00:04<00:06, 98.1it/s, loss=0.31]"
PROGRESS_BAR = re.compile(r"\d+%\|[^|\n]*\|\s*[\d.]+[kM]?/[\d.]+[kM]?\s*\[")


def collapse_carriage_returns(text: str) -> str:
    r"""Each line's last non-empty ``\r``-separated segment: ``"\ra\rb"`` -> ``"b"``."""
    lines = []
    for line in text.split("\n"):
        segments = [segment for segment in line.split("\r") if segment]
        lines.append(segments[-1] if segments else "")
    return "\n".join(lines)


def without_progress_bars(text: str) -> str:
    """``text`` without the lines that are progress bars."""
    return "\n".join(line for line in text.split("\n") if not PROGRESS_BAR.search(line))


def join_streams_like_a_terminal(outputs: list) -> list:
    """Consecutive stream outputs of the same name as one output, carriage returns applied (copies, in order)."""
    joined: list = []
    for output in outputs:
        previous = joined[-1] if joined else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] += output["text"]
        else:
            joined.append(copy.copy(output))
    for output in joined:
        if output.get("output_type") == "stream":
            output["text"] = without_progress_bars(collapse_carriage_returns(output["text"]))
    return [output for output in joined if output.get("output_type") != "stream" or output["text"].strip()]


def _patch_myst_nb() -> None:
    original = myst_nb_render.coalesce_streams
    if getattr(original, "joins_like_a_terminal", False):
        return

    def coalesce(outputs):
        return original(join_streams_like_a_terminal(outputs or []))

    coalesce.joins_like_a_terminal = True
    myst_nb_render.coalesce_streams = coalesce


def setup(app):  # noqa: ARG001 (Sphinx's signature)
    _patch_myst_nb()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
