r"""flowlib: the small shared library of the Flow Maps book.

Modules in the book's order (each imports only modules above it):

* :mod:`flowlib.progress` — the one text progress bar
* :mod:`flowlib.viz` — the book's figure style, plots and animations
* :mod:`flowlib.chapter` — a chapter's set-up: seeds, device, smoke mode, cache folder
* :mod:`flowlib.ode` — Euler, midpoint, Heun and RK4 steps with one signature (chapters 1, 3)
* :mod:`flowlib.interpolants` — :math:`I_t = \alpha_t x_0 + \beta_t x_1` (chapter 2)
* :mod:`flowlib.exact` — exact velocity, denoiser and flow map: the oracle (chapters 1, 2, 4)
* :mod:`flowlib.data` — toy samplers, Gaussian mixtures with known parameters, digits
* :mod:`flowlib.nets` — small networks that take x and one or two times
* :mod:`flowlib.flowmap` — a velocity model, and the flow map :math:`X_{s,t}(x) = x + (t - s) v_{s,t}(x)`
* :mod:`flowlib.sampling` — ``sample(model, x, steps)`` for every kind of model (chapters 3, 4, 9)
* :mod:`flowlib.residuals` — the three consistency rules as measurable residuals (chapter 5)
* :mod:`flowlib.times` — pairs of times for training, with their diagonal mask
* :mod:`flowlib.losses` — every objective, one function each (chapters 2, 5-9)
* :mod:`flowlib.train` — one training loop: progress bar, EMA, clipping, NaN guard, checkpoints, cache
* :mod:`flowlib.fitting` — :func:`flowlib.fit`: a table of the objectives over :mod:`flowlib.losses` (chapters 5-10)
* :mod:`flowlib.metrics` — sliced/exact W2, energy distance, map error, the data-vs-data floor
* :mod:`flowlib.pretrained` — the book's trained models, shipped with the package, with how they were made (chapter 11)
* :mod:`flowlib.profiling` — what a training step keeps in memory (chapter 10)
* :mod:`flowlib.explorer` — the self-contained HTML path explorers (chapters 4, 5) and the live mixture widget
* :mod:`flowlib.steer` — rewards, look-aheads and samplers toward a tilted target (chapters 12, 13)
* :mod:`flowlib._answers` — running a reader's answer with the library's own answer switched off (private)
* :mod:`flowlib.exercises` — the checks behind the chapters' exercises, one per code exercise
* :mod:`flowlib._grading` — the autograder's hidden tests, apart from the checks (private)

The benchmark that compares every method at one budget is not part of the library: it lives in
``benchmarks/`` at the root of the book's repository.
"""

__version__ = "0.9.1"

from flowlib.fitting import METHODS, build_model, draw_batch, fit  # noqa: E402  (what chapters and readers call)

__all__ = ["METHODS", "build_model", "draw_batch", "fit", "__version__"]
