"""What every chapter's set-up cell needs: seeds, device, figure style, smoke mode, cache.

Smoke mode shrinks every training run and sample count so the whole book executes
in a few minutes (the tests use it). It is switched by one environment variable,
``FLOWLIB_SMOKE``; any value other than ``""``, ``"0"``, ``"false"`` or ``"no"``
turns it on. Caches of trained models live in one folder, ``FLOWLIB_CACHE``
(default ``~/.cache/flowlib``), which :func:`clear_cache` empties.

Typical use, at the top of a chapter::

    from flowlib import chapter
    setup = chapter.setup(seed=0)
    n_samples = setup.pick(full=20_000, smoke=2_000)
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from flowlib import viz

SMOKE_ENV = "FLOWLIB_SMOKE"
CACHE_ENV = "FLOWLIB_CACHE"
DEVICE_ENV = "FLOWLIB_DEVICE"
#: Runs a chapter with another seed (the evidence runs: ``python tests/notebooks.py --readings``).
SEED_ENV = "FLOWLIB_SEED"
#: A file to which :meth:`ChapterSetup.expect` appends every reading it checks, one JSON object a line.
READINGS_ENV = "FLOWLIB_READINGS"
#: Set (with ``FLOWLIB_READINGS``) to record readings without stopping at one outside its bounds: a survey.
SURVEY_ENV = "FLOWLIB_SURVEY"

T = TypeVar("T")


def is_smoke() -> bool:
    """Whether smoke mode is on (the ``FLOWLIB_SMOKE`` environment variable)."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def pick(full: T, smoke: T) -> T:
    """Return ``smoke`` in smoke mode and ``full`` otherwise.

    Example:
        >>> steps = pick(full=4000, smoke=200)
        >>> steps in (4000, 200)
        True
    """
    return smoke if is_smoke() else full


def cache_dir() -> Path:
    """The folder that holds cached models (``FLOWLIB_CACHE``, default ``~/.cache/flowlib``)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "flowlib")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_cache() -> int:
    """Delete every cached model; return how many files were removed."""
    path = cache_dir()
    files = [p for p in path.rglob("*") if p.is_file()]
    shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return len(files)


def default_device() -> torch.device:
    """Where :func:`flowlib.fit` trains by default: ``FLOWLIB_DEVICE`` when set, else CUDA when present, else the CPU.

    Raises:
        ValueError: ``FLOWLIB_DEVICE`` names a device torch does not know, or CUDA that is not there.
    """
    requested = os.environ.get(DEVICE_ENV, "").strip()
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise ValueError(f"{DEVICE_ENV}={requested!r} is not a torch device (try 'cpu' or 'cuda')") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{DEVICE_ENV}={requested!r} asks for CUDA, but torch sees no GPU here")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random number generators."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass(frozen=True)
class ChapterSetup:
    """What :func:`setup` decided, for the chapter to print and use.

    Attributes:
        seed: the seed every generator was given.
        device: where :func:`flowlib.fit` trains models (:func:`default_device`); samples and metrics
            come back on the CPU tensors the chapter passes in.
        smoke: whether smoke mode is on.
        cache: the folder of cached models.
    """

    seed: int
    device: torch.device
    smoke: bool
    cache: Path

    def pick(self, full: T, smoke: T) -> T:
        """``smoke`` in smoke mode, else ``full`` (see :func:`pick`)."""
        return smoke if self.smoke else full

    def expect(
        self,
        reading: str,
        value: float,
        *,
        below: float | None = None,
        above: float | None = None,
        in_smoke: bool = False,
    ) -> None:
        """Check a number that the chapter's text reads: ``above < value < below``.

        A sentence that interprets a run is held by this check. In smoke mode the models are untrained, so the
        check is skipped unless ``in_smoke`` (a reading of exact quantities that any run reproduces). The bounds
        are set from several seeds (``python tests/notebooks.py --readings``; the evidence appendix shows their
        spread), so a run on another machine passes them too. When ``FLOWLIB_READINGS`` names a file, the
        reading, its value and its bounds are appended to it; with ``FLOWLIB_SURVEY=1`` as well, a value outside
        its bounds is recorded and the chapter goes on (the evidence runs measure every reading of every seed).

        Args:
            reading: what the number is, as the evidence table names it (unique within the chapter).
            value: the number (a float or a one-element tensor).
            below: the value must be smaller than this.
            above: the value must be larger than this.
            in_smoke: check in smoke mode too.

        Returns nothing, so that a cell ending with a check shows no output for it.

        Raises:
            ValueError: neither bound given, or a bound that is not a number.
            AssertionError: the value is outside its bounds: the text's reading does not hold for this run.
        """
        if below is None and above is None:
            raise ValueError(f"expect({reading!r}): give below=, above= or both")
        for name, bound in (("below", below), ("above", above)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
                raise ValueError(f"expect({reading!r}): {name} must be a number, got {bound!r}")
        number = float(value)
        checked = in_smoke or not self.smoke
        path = os.environ.get(READINGS_ENV, "").strip()
        if path:
            entry = dict(reading=reading, value=number, below=below, above=above, seed=self.seed, smoke=self.smoke)
            with open(path, "a", encoding="utf-8") as stream:
                stream.write(json.dumps(entry) + "\n")
        surveying = bool(path) and os.environ.get(SURVEY_ENV, "").strip() not in ("", "0")
        if (
            checked
            and not surveying
            and not (math.isfinite(number) and (below is None or number < below) and (above is None or number > above))
        ):
            bounds = " and ".join(
                f"{word} {bound:g}" for word, bound in (("above", above), ("below", below)) if bound is not None
            )
            raise AssertionError(
                f"the text reads {reading!r} as {bounds}, but this run gives {number:.4g} (seed {self.seed}). "
                "The reading does not hold for this run: see the evidence appendix for its spread over seeds."
            )

    def __str__(self) -> str:
        mode = "smoke (small sizes, for tests)" if self.smoke else "full"
        return f"flowlib set-up: seed {self.seed}, device {self.device}, mode {mode}, cache {self.cache}"


def setup(seed: int = 0, *, threads: int | None = None, style: bool = True) -> ChapterSetup:
    """Seed everything, pick the device, apply the book's figure style.

    The environment variable ``FLOWLIB_SEED`` replaces ``seed`` (the evidence runs use it to run a chapter
    under several seeds; chapters derive every other seed from ``setup.seed``).

    Args:
        seed: seed for Python, NumPy and torch.
        threads: torch CPU threads (default: leave torch's choice).
        style: apply :func:`flowlib.viz.use_style`.

    Returns:
        A :class:`ChapterSetup` describing the choices (print it in the chapter).

    Raises:
        ValueError: ``FLOWLIB_SEED`` is set but is not a whole number.
    """
    override = os.environ.get(SEED_ENV, "").strip()
    if override:
        try:
            seed = int(override)
        except ValueError:
            raise ValueError(f"{SEED_ENV}={override!r} is not a whole number") from None
    seed_everything(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    if style:
        viz.use_style()
    return ChapterSetup(seed=seed, device=default_device(), smoke=is_smoke(), cache=cache_dir())


@contextmanager
def seeded_weights(seed: int) -> Iterator[None]:
    """Draw initial weights from the global generator seeded with ``seed``, then put its state back.

    ``with seeded_weights(0): net = MLP(2)`` gives the same weights every time and leaves the caller's random
    stream where it was (CPU only: the book builds every network on the CPU and moves it afterwards).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
