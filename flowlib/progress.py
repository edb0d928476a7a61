"""The book's progress bar: one text bar that renders in terminals, notebooks, Colab and the built site.

Text mode is used on purpose: a widget bar needs JavaScript from a CDN on the static site. The bar
redraws at most about twenty times, so an executed notebook stores a short record.

Example:
    >>> from flowlib.progress import progress_bar
    >>> total = sum(progress_bar(range(100), desc="adding", disable=True))
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator


def progress_bar(iterable: Iterable, total: int | None = None, desc: str = "", disable: bool = False) -> Iterator:
    """Wrap ``iterable`` in a tqdm text bar (``disable=True``: no output at all).

    Args:
        iterable: what to iterate over.
        total: its length when ``len()`` cannot tell.
        desc: the label before the bar.
        disable: show nothing.

    Returns:
        An iterator over ``iterable`` that draws the bar (``set_postfix`` and ``close`` work on it).
    """
    from tqdm import tqdm

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    every = max(1, (total or 0) // 20)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        disable=disable,
        file=sys.stdout,
        mininterval=0.5,
        miniters=every,
        ncols=90,
        leave=True,
    )
