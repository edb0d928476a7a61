"""Sphinx extension: a cell's printed output reads as it last looked, not as every redraw.

A progress bar redraws itself by writing a carriage return and the new line over the old one. Jupyter
and Colab show only the last state; the stored output keeps every redraw, and a static page would show
them all as a staircase of lines. This keeps, on each line, the text after its last carriage return, as
a terminal would (so a training shows one line: its steps, seconds, rate and final loss).
"""

from __future__ import annotations

from docutils import nodes


def collapse_carriage_returns(text: str) -> str:
    r"""Each line's last non-empty ``\r``-separated segment: ``"a\rb\r"`` -> ``"b"``."""
    lines = []
    for line in text.split("\n"):
        segments = [segment for segment in line.split("\r") if segment]
        lines.append(segments[-1] if segments else "")
    return "\n".join(lines)


def _collapse(app, doctree):  # noqa: ARG001 (Sphinx's signature)
    for block in doctree.findall(nodes.literal_block):
        text = block.astext()
        if "\r" in text:
            collapsed = collapse_carriage_returns(text)
            block.children = [nodes.Text(collapsed)]
            block.rawsource = collapsed


def setup(app):
    app.connect("doctree-read", _collapse)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
