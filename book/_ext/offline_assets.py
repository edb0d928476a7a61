"""Sphinx extension: the built site reads without a network.

The chapters' first cell shows the "Open in Colab" badge from Colab's own server, which is what a
notebook opened on GitHub or in Colab needs. On the site that image would be the one request that
leaves the machine, so pages use the local copy in ``book/_static/colab-badge.svg`` instead (the link
still goes to Colab). Math is rendered from a local MathJax (``sphinx-mathjax-offline``, set in
``_config.yml``).
"""

from __future__ import annotations

from docutils import nodes

REMOTE_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "colab-badge.svg"  # in html_static_path


def _local_badge(app, doctree, docname):  # noqa: ARG001 (Sphinx's signature)
    depth = docname.count("/")
    for image in doctree.findall(nodes.image):
        if image.get("uri") == REMOTE_BADGE:
            image["uri"] = "../" * depth + "_static/" + LOCAL_BADGE
            image["candidates"] = {"*": image["uri"]}


def _local_badge_html(app, pagename, templatename, context, doctree):  # noqa: ARG001 (Sphinx's signature)
    """Raw HTML images (Markdown rendered by MyST as <img>) carry the remote address in the page body."""
    body = context.get("body")
    if body and REMOTE_BADGE in body:
        context["body"] = body.replace(REMOTE_BADGE, "../" * pagename.count("/") + "_static/" + LOCAL_BADGE)


def setup(app):
    app.connect("doctree-resolved", _local_badge)
    app.connect("html-page-context", _local_badge_html, priority=950)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
