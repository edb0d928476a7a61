"""Sphinx extension: drop repeated inline <script> blocks from every page.

sphinx-thebe 0.3.1 registers its configuration script after the HTML builder has started, and
with Sphinx 7 the block lands in each page twice. Because it declares ``const THEBE_JS_URL``,
the second copy throws "Identifier has already been declared" in the browser. The book does
not use thebe; this keeps the pages free of JavaScript errors until the upstream fix lands.
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree):  # noqa: ARG001 (Sphinx's signature)
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # the copies differ only in filename None versus "", so compare the file name and the attributes
        filename = getattr(script, "filename", None) or ""
        key = (filename, repr(sorted(getattr(script, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
