"""Sphinx extension: a cell's printed output reads as it last looked, not as every redraw.

A progress bar redraws itself by writing a carriage return and the new state over the old one. Jupyter
and Colab show only the last state. An executed notebook stores each redraw as its own stream output, and
myst-nb's ``nb_merge_streams`` joins them with a newline after each before it processes carriage returns,
so a static page showed every redraw as a line: a staircase of bars. This extension makes myst-nb join
consecutive stream outputs as a terminal would — concatenated, then each line reduced to the text after
its last carriage return — so a training shows one line: its steps, seconds, rate and final loss.
"""

from __future__ import annotations

import copy

import myst_nb.core.render as myst_nb_render


def collapse_carriage_returns(text: str) -> str:
    r"""Each line's last non-empty ``\r``-separated segment: ``"\ra\rb"`` -> ``"b"``."""
    lines = []
    for line in text.split("\n"):
        segments = [segment for segment in line.split("\r") if segment]
        lines.append(segments[-1] if segments else "")
    return "\n".join(lines)


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
            output["text"] = collapse_carriage_returns(output["text"])
    return joined


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
