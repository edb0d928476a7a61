"""Editions of the book's chapters generated from the sources in ``book/``.

The sources are MyST notebooks written for Jupyter Book: exercises and solutions are directives,
citations and cross references are roles that only Sphinx resolves. Opened directly in Colab they show
raw markup. This package writes copies for other readers:

* :mod:`editions.myst` — what the sources say: exercise numbers, reference targets, citations, the
  bibliography (the same numbers and names the built site shows);
* :mod:`editions.colab` — the Colab edition in ``colab/``: exercises as headed Markdown, solutions folded
  in ``<details>``, citations as "(Author, year)" with a reference list, cross references as names linked
  to the site, numbered sections, and a Colab set-up note (smoke mode, a model cache on Drive).

Run ``python -m editions`` from the repository root to rewrite the copies, ``python -m editions --check``
to fail when a committed copy is out of date (the tests do).
"""
