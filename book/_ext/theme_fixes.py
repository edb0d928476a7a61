"""Sphinx extension: one search box and a working sidebar button with pydata-sphinx-theme >= 0.17.1.

sphinx-book-theme switches pydata-sphinx-theme's navbar off in its ``theme.conf``, but pydata 0.17.1
re-inserts its default ``navbar_persistent`` into ``html_theme_options`` when the builder starts, which
outranks ``theme.conf``. The navbar then renders: two extra search boxes, and a hidden second set of
sidebar buttons that pydata's script binds instead of the visible one, so "Toggle primary sidebar"
does nothing (sphinx-book-theme issue 988). Setting the option explicitly, before the builder starts,
keeps the navbar off.
"""

from __future__ import annotations


def _no_navbar_search(app, config):  # noqa: ARG001 (Sphinx's signature)
    options = dict(config.html_theme_options or {})
    options.setdefault("navbar_persistent", [])
    config.html_theme_options = options


def setup(app):
    app.connect("config-inited", _no_navbar_search)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
