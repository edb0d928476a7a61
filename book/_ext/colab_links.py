"""Sphinx extension: the site's Colab launch button opens the chapter's Colab edition.

sphinx-book-theme builds the button from the page's source path (``book/NN_name.ipynb``), whose MyST
markup Colab shows raw. The Colab editions (``colab/NN_name.ipynb``, written by ``python -m editions``)
render there, so the button is pointed at them; the chapters' own badges already are.
"""

from __future__ import annotations

COLAB = "https://colab.research.google.com/"
SOURCE_FOLDER = "/book/"
EDITION_FOLDER = "/colab/"


def _colab_edition(app, pagename, templatename, context, doctree):  # noqa: ARG001 (Sphinx's signature)
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            url = button.get("url", "")
            if url.startswith(COLAB):
                button["url"] = url.replace(SOURCE_FOLDER, EDITION_FOLDER, 1)


def setup(app):
    # after sphinx-book-theme adds its launch buttons (priority 501)
    app.connect("html-page-context", _colab_edition, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
