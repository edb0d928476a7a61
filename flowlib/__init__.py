r"""flowlib: the small shared library of the Flow Maps book.

Modules (one idea each):

* :mod:`flowlib.chapter` — seeds, device, smoke mode, cache folder
* :mod:`flowlib.data` — toy samplers, Gaussian mixtures with known parameters, digits
* :mod:`flowlib.interpolants` — :math:`I_t = \alpha_t x_0 + \beta_t x_1`
* :mod:`flowlib.exact` — exact velocity, denoiser and flow map (the oracle)
* :mod:`flowlib.ode` — Euler, midpoint, Heun, RK4 with one signature
* :mod:`flowlib.nets` — small networks that take x and time(s)
* :mod:`flowlib.flowmap` — the flow-map model :math:`X_{s,t}(x) = x + (t - s) v_{s,t}(x)` and its JVPs
* :mod:`flowlib.times` — sampling times and pairs of times for training
* :mod:`flowlib.losses` — training objectives, one function each
* :mod:`flowlib.train` — one training loop with progress bar, EMA, checkpoints and a cache
* :mod:`flowlib.fitting` — :func:`flowlib.fit`, one call to train a flow map with any objective
* :mod:`flowlib.metrics` — sliced/exact W2, energy distance, reports against the data floor
* :mod:`flowlib.viz` — the book's figure style, plots and animations
* :mod:`flowlib.explorer` — the self-contained HTML path explorer
* :mod:`flowlib.checks` — the checks behind the chapters' exercises
"""

__version__ = "0.1.0"

from flowlib.fitting import METHODS, fit  # noqa: E402  (the one call chapters and readers use)

__all__ = ["METHODS", "fit", "__version__"]
