"""Sphinx extension: the site shows code without grading markers, and a student build shows no solutions.

The source notebooks mark each graded exercise in nbgrader's format (``editions/marks.py``): the reference
solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines. Readers of the site need not see
those lines, so they are dropped from the displayed code (the hidden tests' cells are tagged ``remove-cell``).

With ``FLOWMAPS_EDITION=student`` in the environment, the build leaves out every solution: a transform that
runs after sphinx-exercise has merged each ``{solution-start}`` … ``{solution-end}`` block into one solution
drops every solution, with the code cells inside (sphinx-exercise's own ``hide_solutions`` cannot be used: it
drops a ``{solution-start}`` but leaves its cells and its ``{solution-end}``, which then fails the build)::

    FLOWMAPS_EDITION=student jupyter-book build . --path-output _build/student

A student build also leads to no solution by another door: no download buttons (they serve the chapter's source,
solutions and hidden tests included), no repository, source or issue buttons, no copied page sources
(``_sources/``), and the Colab button opens the chapter's student edition (``student/``) instead of the Colab
edition with solutions.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from editions.marks import MARKERS, strip_markers  # noqa: E402

EDITION_VARIABLE = "FLOWMAPS_EDITION"


def student_build() -> bool:
    """Whether this build is the student edition of the site (``FLOWMAPS_EDITION=student``).

    Raises:
        ValueError: the variable has another value.
    """
    value = os.environ.get(EDITION_VARIABLE, "").strip().lower()
    if value not in ("", "reader", "student"):
        raise ValueError(f"{EDITION_VARIABLE} must be 'student' or 'reader' (or unset), got {value!r}")
    return value == "student"


class StripGradingMarkers(SphinxTransform):
    """Drop the marker lines from every code block that has them."""

    default_priority = 500

    def apply(self, **kwargs) -> None:  # noqa: ARG002 (docutils' signature)
        for block in list(self.document.findall(nodes.literal_block)):
            text = block.astext()
            if any(marker in text for marker in MARKERS):
                stripped = strip_markers(text)
                block.rawsource = stripped
                block.children = [nodes.Text(stripped)]


class DropSolutions(SphinxTransform):
    """In a student build, remove every solution, once sphinx-exercise has merged the gated ones."""

    default_priority = 20  # after sphinx-exercise's MergeGatedSolutions (10)

    def apply(self, **kwargs) -> None:  # noqa: ARG002
        if not student_build():
            return
        from sphinx_exercise.nodes import solution_node

        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


COLAB_GITHUB = "https://colab.research.google.com/github/"


def _student_edition_url(url: str) -> str:
    """A Colab link to a chapter's reader or Colab edition, pointed at its student edition."""
    if not url.startswith(COLAB_GITHUB):
        return url
    return url.replace("/colab/", "/student/", 1).replace("/book/", "/student/", 1)


class StudentColabBadges(SphinxTransform):
    """In a student build, the chapters' "Open in Colab" badges open the student editions."""

    default_priority = 21

    def apply(self, **kwargs) -> None:  # noqa: ARG002
        if not student_build():
            return
        for reference in self.document.findall(nodes.reference):
            if "refuri" in reference:
                reference["refuri"] = _student_edition_url(reference["refuri"])


#: the header buttons a student site leaves out: each serves or links to the sources, solutions included
STUDENT_HIDDEN_BUTTONS = ("download-buttons", "source-buttons")


def _student_config(app, config):  # noqa: ARG001 (Sphinx's signature)
    if student_build():
        config.html_copy_source = False  # _sources/ would hold every chapter with its solutions
        config.html_show_sourcelink = False


def _student_buttons(app, pagename, templatename, context, doctree):  # noqa: ARG001 (Sphinx's signature)
    if not student_build():
        return
    groups = [group for group in context.get("header_buttons", []) if group.get("label") not in STUDENT_HIDDEN_BUTTONS]
    for group in groups:
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = _student_edition_url(button["url"])
    context["header_buttons"] = groups


def setup(app):
    app.add_transform(StripGradingMarkers)
    app.add_transform(DropSolutions)
    app.add_transform(StudentColabBadges)
    app.connect("config-inited", _student_config)
    # after sphinx-book-theme adds its buttons (501) and colab_links points Colab at the Colab editions (900)
    app.connect("html-page-context", _student_buttons, priority=950)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
