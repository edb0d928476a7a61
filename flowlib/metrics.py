r"""How close are two point clouds? Sample-quality metrics, always read against a floor.

* :func:`sliced_w2` — :math:`\sqrt{E_\theta W_2^2(\theta^\top a, \theta^\top b)}` over random unit
  directions θ; each 1D distance is exact (sort and match quantiles).
* :func:`energy_distance` — :math:`2E\|X-Y\| - E\|X-X'\| - E\|Y-Y'\|` (V-statistic, ≥ 0).
* :func:`w2` — the exact 2-Wasserstein distance between two equal-size sets (optimal matching).
* :func:`map_error` — mean distance between a map's outputs and the oracle's.
* :func:`against_floor` — a metric's value next to its *floor*, the same metric between two
  independent draws of the data itself: finite samples never reach zero, so the floor is
  what "perfect" looks like at that sample size.

Every metric takes ``a`` of shape ``(n, d)`` and ``b`` of shape ``(m, d)`` (images are
flattened) and returns a Python float, deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from flowlib import chapter, data, sampling, viz
from flowlib._validate import as_points, check_choice, check_positive_int
from flowlib.chapter import seeded_weights
from flowlib.nets import detached

Metric = Callable[[torch.Tensor, torch.Tensor], float]


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    as_points(a, "a")
    as_points(b, "b")
    a2 = a.detach().reshape(a.shape[0], -1).to(torch.float64).cpu()
    b2 = b.detach().reshape(b.shape[0], -1).to(torch.float64).cpu()
    if a2.shape[1] != b2.shape[1]:
        raise ValueError(f"a and b must have the same number of features; got {a2.shape[1]} and {b2.shape[1]}")
    return a2, b2


def _quantiles(sorted_values: torch.Tensor, m: int) -> torch.Tensor:
    """Empirical quantile functions at the ``m`` midpoints ``(i + 0.5)/m``: ``(k, n)`` sorted rows → ``(k, m)``."""
    n = sorted_values.shape[-1]
    if n == m:
        return sorted_values
    index = ((torch.arange(m, dtype=torch.float64) + 0.5) * n / m).floor().long().clamp(max=n - 1)
    return sorted_values[:, index]


def sliced_w2(a: torch.Tensor, b: torch.Tensor, n_projections: int = 512, seed: int = 0) -> float:
    r"""Sliced 2-Wasserstein distance :math:`\sqrt{E_\theta W_2^2(\theta^\top a, \theta^\top b)}`.

    Args:
        a: ``(n, d)`` points.
        b: ``(m, d)`` points (when n ≠ m, both quantile functions are compared on a common grid).
        n_projections: number of random unit directions θ.
        seed: seed of the directions.

    Returns:
        The distance (same units as the points).
    """
    a2, b2 = _pair(a, b)
    check_positive_int(n_projections, "n_projections")
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(a2.shape[1], n_projections, dtype=torch.float64, generator=generator)
    theta = theta / theta.norm(dim=0, keepdim=True)
    # one row per direction, sorted along the row: a contiguous sort is several times faster than a column sort
    pa = (theta.T @ a2.T).sort(dim=1).values
    pb = (theta.T @ b2.T).sort(dim=1).values
    m = max(pa.shape[1], pb.shape[1])
    squared = (_quantiles(pa, m) - _quantiles(pb, m)).pow(2).mean()
    return math.sqrt(float(squared))


def _mean_pairwise_distance(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> float:
    total = 0.0
    for start in range(0, a.shape[0], chunk):
        total += float(torch.cdist(a[start : start + chunk], b).sum())
    return total / (a.shape[0] * b.shape[0])


def energy_distance(a: torch.Tensor, b: torch.Tensor, max_points: int = 10_000, seed: int = 0) -> float:
    r"""Energy distance :math:`2E\|X-Y\| - E\|X-X'\| - E\|Y-Y'\|` (V-statistic, so never negative).

    Zero only when the two distributions agree; for two finite samples of the same
    distribution it is of order :math:`1/n` (see :func:`against_floor`).

    Args:
        a: ``(n, d)`` points.
        b: ``(m, d)`` points.
        max_points: larger sets are subsampled (with ``seed``) to bound the O(n²) cost.
        seed: seed of that subsampling.

    Returns:
        The energy distance (units of distance).
    """
    a2, b2 = _pair(a, b)
    check_positive_int(max_points, "max_points", minimum=2)
    generator = torch.Generator().manual_seed(seed)
    if a2.shape[0] > max_points:
        a2 = a2[torch.randperm(a2.shape[0], generator=generator)[:max_points]]
    if b2.shape[0] > max_points:
        b2 = b2[torch.randperm(b2.shape[0], generator=generator)[:max_points]]
    cross = _mean_pairwise_distance(a2, b2)
    within_a = _mean_pairwise_distance(a2, a2)
    within_b = _mean_pairwise_distance(b2, b2)
    return max(0.0, 2 * cross - within_a - within_b)


def w2(a: torch.Tensor, b: torch.Tensor, max_points: int = 4000) -> float:
    r"""Exact 2-Wasserstein distance between two sets of the same size.

    Solves the optimal matching :math:`\min_\pi \frac1n\sum_i \|a_i - b_{\pi(i)}\|^2` with
    SciPy's Hungarian algorithm (O(n³): keep n in the low thousands) and returns its square root.

    Args:
        a: ``(n, d)`` points.
        b: ``(n, d)`` points.
        max_points: refuse larger sets rather than run for minutes.

    Returns:
        The distance.
    """
    from scipy.optimize import linear_sum_assignment

    a2, b2 = _pair(a, b)
    if a2.shape[0] != b2.shape[0]:
        raise ValueError(f"w2 needs sets of the same size; got {a2.shape[0]} and {b2.shape[0]}")
    if a2.shape[0] > max_points:
        raise ValueError(f"w2 is O(n^3); got n = {a2.shape[0]} > max_points = {max_points} (use sliced_w2)")
    cost = torch.cdist(a2, b2).pow(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    return math.sqrt(float(cost[rows, cols].mean()))


def map_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    r"""Mean Euclidean distance :math:`\frac1n\sum_i \|\hat X(x_i) - X(x_i)\|` between paired outputs.

    Args:
        estimate: ``(n, ...)`` outputs of a learned or approximate map.
        reference: ``(n, ...)`` outputs of the exact map on the same inputs.
    """
    a2, b2 = _pair(estimate, reference)
    if a2.shape != b2.shape:
        raise ValueError(f"estimate and reference must be paired (same shape); got {a2.shape} and {b2.shape}")
    return float((a2 - b2).norm(dim=1).mean())


@dataclass(frozen=True)
class FloorReport:
    """A metric next to its data-vs-data floor, each averaged over repeats.

    Attributes:
        metric: the metric's name.
        value, value_se: mean and standard error of metric(samples, fresh data).
        floor, floor_se: mean and standard error of metric(data, independent data).
        n: points per set.
        repeats: how many independent repeats.
    """

    metric: str
    value: float
    value_se: float
    floor: float
    floor_se: float
    n: int
    repeats: int

    @property
    def ratio(self) -> float:
        """Value / floor: 1 means "as good as a fresh sample of the data"."""
        return self.value / self.floor if self.floor > 0 else math.inf

    @property
    def ratio_se(self) -> float:
        """Standard error of the ratio (delta method, independent estimates)."""
        if self.floor <= 0 or self.value <= 0:
            return math.inf
        relative = math.hypot(self.value_se / self.value, self.floor_se / self.floor)
        return self.ratio * relative

    def __str__(self) -> str:
        """Two short lines (they fit a page's code column): the value, then the floor and the ratio."""
        return (
            f"{self.metric}: {self.value:.4f} ± {self.value_se:.4f} (n = {self.n}, {self.repeats} repeats)\n"
            f"    floor {self.floor:.4f} ± {self.floor_se:.4f}, ratio {self.ratio:.2f} ± {self.ratio_se:.2f}"
        )


def mean_se(values: list[float]) -> tuple[float, float]:
    """The mean of ``values`` and its standard error (sample standard deviation over √n; NaN for one value)."""
    if not values:
        raise ValueError("mean_se needs at least one value")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def against_floor(
    metric: Metric,
    samples: torch.Tensor | Callable[[int, int], torch.Tensor],
    data: Callable[[int, int], torch.Tensor],
    n: int = 4000,
    repeats: int = 5,
    seed: int = 0,
    name: str | None = None,
) -> FloorReport:
    """Report ``metric(samples, data)`` next to ``metric(data, data')``.

    Args:
        metric: ``metric(a, b) -> float``, e.g. :func:`sliced_w2`.
        samples: a tensor of at least ``n · repeats`` model samples (split into
            ``repeats`` disjoint sets), or ``samples(n, seed) -> (n, d)``.
        data: ``data(n, seed) -> (n, d)``, fresh draws of the true distribution, e.g. a
            mixture's ``sample`` method (choose ``seed`` away from the seeds of the training data).
        n: points per set.
        repeats: independent repeats (≥ 2 for a standard error).
        seed: base seed; repeat r draws data with seeds ``seed + 1000 r``, ``+ 1`` and ``+ 2``.
        name: the metric's name for printing (default: the function's name).

    Returns:
        A :class:`FloorReport`.
    """
    check_positive_int(n, "n", minimum=2)
    check_positive_int(repeats, "repeats")
    if isinstance(samples, torch.Tensor):
        as_points(samples, "samples")
        if samples.shape[0] < n * repeats:
            raise ValueError(f"samples needs at least n * repeats = {n * repeats} points; got {samples.shape[0]}")
    elif not callable(samples):
        raise TypeError("samples must be a tensor or a callable samples(n, seed)")
    values, floors = [], []
    for r in range(repeats):
        reference = data(n, seed + 1000 * r)
        model = samples[r * n : (r + 1) * n] if isinstance(samples, torch.Tensor) else samples(n, seed + 1000 * r + 2)
        values.append(metric(model, reference))
        floors += data_floor(metric, data, reference, repeats=1, seed=seed + 1000 * r + 1)
    value, value_se = mean_se(values)
    floor, floor_se = mean_se(floors)
    label = name or getattr(metric, "__name__", None) or getattr(getattr(metric, "func", None), "__name__", "metric")
    return FloorReport(label, value, value_se, floor, floor_se, n, repeats)


def map_error_grid(
    flow_map: Callable[..., torch.Tensor] | dict[str, Callable[..., torch.Tensor]],
    mixture: object,
    times: torch.Tensor | list[float],
    n: int = 1000,
    seed: int = 0,
    forward_only: bool = True,
    image_shape: tuple[int, ...] | None = None,
    steps_per_unit: int | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    r"""Map error :math:`\mathbb E_{x \sim p_s}\|\hat X_{s,t}(x) - X_{s,t}(x)\|` over a grid of pairs (s, t).

    The reference is the mixture's exact flow map (:meth:`flowlib.exact.GaussianMixture.flow_map`);
    the points are draws of the marginal :math:`p_s` (``mixture.sample_marginal``), the same for
    every map compared with the same ``seed``. Pass several maps as a dictionary to compute the
    (expensive) exact map once for all of them.

    Args:
        flow_map: the map to score, ``flow_map(x, s, t)`` — a trained
            :class:`~flowlib.flowmap.FlowMap` works directly — or a ``{name: map}`` dictionary.
        mixture: a :class:`~flowlib.exact.GaussianMixture`.
        times: grid ``(G,)`` in [0, 1].
        n: points per start time.
        seed: seed of the points (start time ``i`` uses ``seed + i``).
        forward_only: score only pairs with ``s < t`` (the others are NaN).
        image_shape: e.g. ``(1, 8, 8)``: the maps take images, so the mixture's flat points ``(n, C*H*W)``
            are passed to them reshaped (the distance is still over all pixels).
        steps_per_unit: RK4 steps per unit of time of the exact map (default: the mixture's own, 256); fewer
            are faster and less accurate (chapter 11 measures 32 in 64 dimensions).

    Returns:
        ``(G, G)`` float64 tensor (a dictionary of them for a dictionary of maps); entry ``[i, j]``
        is the mean error from ``times[i]`` to ``times[j]``.
    """
    check_positive_int(n, "n")
    if image_shape is not None and math.prod(image_shape) != mixture.dim:
        raise ValueError(
            f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} values; the mixture has {mixture.dim}"
        )
    maps = flow_map if isinstance(flow_map, dict) else {"": flow_map}
    for name, candidate in maps.items():
        if not callable(candidate):
            raise TypeError(f"flow_map{f' {name!r}' if name else ''} must be callable as flow_map(x, s, t)")
    maps = {name: detached(m) if isinstance(m, torch.nn.Module) else m for name, m in maps.items()}
    grid = torch.as_tensor(times, dtype=torch.float64).flatten().tolist()
    out = {name: torch.full((len(grid), len(grid)), math.nan, dtype=torch.float64) for name in maps}
    for i, s in enumerate(grid):
        ends = [j for j, t in enumerate(grid) if not (forward_only and t <= s)]
        if not ends:
            continue
        x = mixture.sample_marginal(n, s, seed=seed + i)
        # every end time at once: one batched call per start time (the oracle's cost is per call)
        xs = x.repeat(len(ends), 1)
        t = torch.tensor([grid[j] for j in ends], dtype=x.dtype).repeat_interleave(n)
        start = torch.full_like(t, s)
        accuracy = {} if steps_per_unit is None else {"steps_per_unit": steps_per_unit}
        reference = mixture.flow_map(xs, start, t, **accuracy)
        for name, candidate in maps.items():
            with torch.no_grad():
                inputs = xs if image_shape is None else xs.reshape(-1, *image_shape)
                distance = (candidate(inputs, start, t).reshape(xs.shape).to(xs.dtype) - reference).norm(dim=1)
            for position, value in enumerate(distance.reshape(len(ends), n).mean(1).tolist()):
                out[name][i, ends[position]] = value
    return out if isinstance(flow_map, dict) else out[""]


def quality_by_steps(
    model: object,
    noise: torch.Tensor,
    reference: torch.Tensor,
    steps: tuple[int, ...] = (1, 2, 4, 8, 16),
    n_projections: int = 256,
    seed: int = 0,
) -> dict[int, float]:
    r"""Sliced W2 to ``reference`` of ``sampling.sample(model, noise, k)`` for each step count k (lower is better).

    Args:
        model: anything :func:`flowlib.sampling.sample` samples (a velocity is integrated with Heun steps).
        noise: ``(n, d)`` starting points, the same for every k (and every model compared).
        reference: ``(m, d)`` fresh data.
        steps: the step counts.
        n_projections: directions of the sliced W2.
        seed: a consistency model's re-noising at k steps draws from a generator seeded ``seed + k``.

    Returns:
        ``{k: sliced W2}``; ``inf`` where the samples are not finite.
    """
    kind = sampling.kind_of(model)
    out = {}
    for k in steps:
        check_positive_int(k, "steps")
        extra = {"generator": torch.Generator(noise.device).manual_seed(seed + k)} if kind == "consistency" else {}
        points = sampling.sample(model, noise, k, **extra)
        finite = bool(torch.isfinite(points).all())
        out[k] = sliced_w2(points.float(), reference.float(), n_projections) if finite else math.inf
    return out


def data_floor(
    metric: Metric,
    draw: Callable[[int, int], torch.Tensor],
    reference: torch.Tensor,
    repeats: int = 5,
    seed: int = 900_000,
) -> list[float]:
    r"""The data-vs-data floor: ``metric(draw(n, seed + r), reference)`` for ``r < repeats``.

    What a perfect sampler scores against ``reference``: a fresh draw of the data itself, of the same
    size. A single value is noisy (for the eight Gaussians with 10 000 points the sliced W2 ranged
    from 0.03 to 0.06 between draws, because the points per mode fluctuate), so read a model's score
    against the mean of several.

    Args:
        metric: ``metric(a, b) -> float``, e.g. :func:`sliced_w2`.
        draw: ``draw(n, seed) -> (n, d)`` fresh data, e.g. a mixture's ``sample`` or
            ``lambda n, seed: data.sample("checkerboard", n, seed=seed)``.
        reference: ``(n, d)`` the fresh data the models are scored against.
        repeats: independent draws.
        seed: seed of the first draw (draw r uses ``seed + r``).

    Returns:
        One value per draw (:func:`mean_se` gives their mean and standard error).
    """
    if not callable(draw):
        raise TypeError("draw must be callable as draw(n, seed)")
    check_positive_int(repeats, "repeats")
    n = reference.shape[0]
    return [metric(draw(n, seed + r).float(), reference.float()) for r in range(repeats)]


def sliced_w2_floor(
    draw: Callable[[int, int], torch.Tensor], reference: torch.Tensor, repeats: int = 5, seed: int = 900_000
) -> float:
    """The mean of :func:`data_floor` for the sliced W2 (256 directions, as :func:`quality_by_steps` scores)."""
    return mean_se(data_floor(lambda a, b: sliced_w2(a, b, 256), draw, reference, repeats, seed))[0]


# ---------------------------------------------------------------------------------------------- images (digits)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""Fréchet distance between Gaussians fitted to two sets of features (the FID's formula):

    .. math:: \|\mu_a - \mu_b\|^2 + \operatorname{tr}\Sigma_a + \operatorname{tr}\Sigma_b
              - 2\operatorname{tr}\big(\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2}\big)^{1/2}

    Args:
        a: ``(n, f)`` features (at least 2 rows).
        b: ``(m, f)`` features.

    Returns:
        The distance (≥ 0), computed in float64 with symmetric eigendecompositions.
    """
    a, b = _pair(a, b)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("frechet_distance needs at least 2 feature vectors in each set")
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _psd_sqrt(cov_a)
    cross = _psd_sqrt(root_a @ cov_b @ root_a)
    value = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross.trace()
    return max(float(value), 0.0)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def memorisation_ratio(samples: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor) -> float:
    r"""How close samples sit to the training set, relative to unseen real data:

    .. math:: \frac{\operatorname{mean}_{x \in \text{samples}} \min_{y \in \text{train}} \|x - y\|}
                   {\operatorname{mean}_{x \in \text{held-out}} \min_{y \in \text{train}} \|x - y\|}

    About 1 for a model that generalises like the data; far below 1 for one that copies its training
    images; above 1 for samples off the data.

    Args:
        samples: ``(n, d)`` or images ``(n, C, H, W)``.
        train: the training data, same trailing shape.
        heldout: real data the model never saw, same trailing shape.
    """
    samples, train = _pair(samples, train)
    heldout, _ = _pair(heldout, train)

    def nearest(points: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cdist(chunk, train).min(1).values for chunk in points.double().split(1024)])

    train = train.double()
    return float(nearest(samples).mean() / nearest(heldout).mean())


#: bump when the classifier's architecture or training changes (its cache file is named after it)
DIGITS_CLASSIFIER_FORMAT = 1

#: training epochs of the classifier behind each image dataset's Fréchet distance (MNIST has 40x more images)
CLASSIFIER_EPOCHS = {"digits": 60, "digits28": 60, "mnist": 3}


class DigitsClassifier(torch.nn.Module):
    """A small classifier of digit images whose hidden features define the book's Fréchet distance on digits.

    An MLP ``n_pixels`` → 256 → 64 → 10 with SiLU activations; :meth:`features` are the 64 activations before
    the last layer. Train it with :func:`image_classifier`, which also records its held-out accuracy in
    ``accuracy``.

    Args:
        n_pixels: pixels per image (64 for the 8x8 digits, 784 for 28x28 MNIST).
    """

    def __init__(self, n_pixels: int = 64) -> None:
        super().__init__()
        check_positive_int(n_pixels, "n_pixels")
        self.n_pixels = n_pixels
        self.body = torch.nn.Sequential(
            torch.nn.Linear(n_pixels, 256), torch.nn.SiLU(), torch.nn.Linear(256, 64), torch.nn.SiLU()
        )
        self.head = torch.nn.Linear(64, 10)
        self.accuracy = float("nan")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(n, C, H, W)`` or ``(n, n_pixels)`` images in [-1, 1] → ``(n, 64)`` features."""
        as_points(images, "images", dim=self.n_pixels)
        return self.body(images.reshape(images.shape[0], self.n_pixels).to(self.head.weight))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(n, 10)``."""
        return self.head(self.features(images))


def _train_classifier(dataset: str) -> DigitsClassifier:
    """Seeded training on ``dataset``'s training images: Adam, batches of 128, light weight decay."""
    generator = torch.Generator().manual_seed(0)
    train = data.images(dataset, "train")
    with seeded_weights(0):
        model = DigitsClassifier(int(train.images[0].numel()))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    with torch.enable_grad():  # the first call may come from inside a caller's torch.no_grad()
        for _ in range(CLASSIFIER_EPOCHS[dataset]):
            for batch in torch.randperm(len(train.labels), generator=generator).split(128):
                loss = torch.nn.functional.cross_entropy(model(train.images[batch]), train.labels[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return model.eval()


def image_classifier(dataset: str = "digits") -> DigitsClassifier:
    """The classifier behind ``dataset``'s Fréchet distance: trained once (seeded, on the CPU), then cached.

    Its held-out accuracy (on ``data.images(dataset, "heldout")``) is in ``.accuracy`` (97% on the digits). The
    weights are cached in the model cache (:func:`flowlib.chapter.cache_dir`) as
    ``<dataset>-classifier-v<format>.pt`` and read back with ``weights_only=True``.

    Args:
        dataset: a name in :data:`flowlib.data.IMAGE_DATASETS`.
    """
    check_choice(dataset, "dataset", data.IMAGE_DATASETS)
    path = chapter.cache_dir() / f"{dataset}-classifier-v{DIGITS_CLASSIFIER_FORMAT}.pt"
    heldout = data.images(dataset, "heldout")
    if path.exists():
        with seeded_weights(0):  # the weights are replaced; the caller's random stream is left alone
            model = DigitsClassifier(int(heldout.images[0].numel()))
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
    else:
        model = _train_classifier(dataset)
        torch.save(model.state_dict(), path)
    with torch.no_grad():
        model.accuracy = float((model(heldout.images).argmax(1) == heldout.labels).double().mean())
    return model


def digits_classifier() -> DigitsClassifier:
    """The 8x8 digits' classifier, :func:`image_classifier` of ``"digits"``."""
    return image_classifier("digits")


class DigitsJudge:
    """An independent judge of digit classes: a support-vector classifier on raw pixels (scikit-learn).

    A reward built on :func:`digits_classifier` cannot score the samples steered toward it: samples that fool
    that network score well by construction. This judge shares nothing with it — another model family, fitted on
    the same training digits — so agreement between the two is evidence, not an echo. Build it with
    :func:`digits_judge`.

    Attributes:
        accuracy: the share of held-out digits it classifies right.
    """

    def __init__(self, model: object, accuracy: float) -> None:
        self.model, self.accuracy = model, accuracy

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """``(n, 1, 8, 8)`` or ``(n, 64)`` images in [-1, 1] → ``(n,)`` int64 classes."""
        as_points(images, "images", dim=64)
        pixels = images.detach().reshape(images.shape[0], 64).double().cpu().numpy()
        return torch.as_tensor(self.model.predict(pixels), dtype=torch.int64)


def digits_judge() -> DigitsJudge:
    """The independent judge of the 8x8 digits' classes (:class:`DigitsJudge`).

    An RBF support-vector classifier fitted on the training digits' pixels in about a second (deterministic;
    99% of the held-out digits right).
    """
    from sklearn.svm import SVC

    train, heldout = data.images("digits", "train"), data.images("digits", "heldout")
    model = SVC(kernel="rbf", C=10.0, gamma="scale").fit(train.images.reshape(-1, 64).double().numpy(), train.labels)
    judge = DigitsJudge(model, float("nan"))
    judge.accuracy = float((judge.predict(heldout.images) == heldout.labels).double().mean())
    return judge


@dataclass(frozen=True)
class DigitsReport:
    """Quality of digit samples, each number next to what real data scores.

    Attributes:
        fd: Fréchet distance between the classifier's features of the samples and of the held-out digits.
        fd_floor: the same for as many real training digits (what a perfect model scores at this size).
        class_counts: how many samples the classifier assigns to each digit 0-9.
        confidence: mean probability of the classifier's chosen class (real held-out digits: ``real_confidence``).
        real_confidence: the same for the held-out digits.
        memorisation: :func:`memorisation_ratio` against the training and held-out digits.
        n: samples scored.
    """

    fd: float
    fd_floor: float
    class_counts: tuple[int, ...]
    confidence: float
    real_confidence: float
    memorisation: float
    n: int

    @property
    def ratio(self) -> float:
        """FD / floor: 1 means "as close to the held-out digits as real training digits are"."""
        return self.fd / self.fd_floor if self.fd_floor > 0 else math.inf

    def __str__(self) -> str:
        return (
            f"FD {self.fd:.2f} (floor {self.fd_floor:.2f}, {self.ratio:.2f}x) on {self.n} samples; "
            f"classes {list(self.class_counts)}; confidence {self.confidence:.2f} (real {self.real_confidence:.2f}); "
            f"memorisation ratio {self.memorisation:.2f}"
        )


def report_table(
    reports: dict[str, DigitsReport], reference: float | None = None, reference_name: str = "reference"
) -> viz.Table:
    """A table of :class:`DigitsReport` rows: FD, FD / floor, memorisation, confidence and class counts.

    Args:
        reports: ``{row name: report}``.
        reference: an FD to divide every FD by (e.g. the teacher's), shown as a column ``FD / <reference_name>``.
        reference_name: the name of that column's reference.

    Returns:
        A :class:`flowlib.viz.Table` (display it; ``print`` gives aligned text).
    """
    if not isinstance(reports, dict) or not all(isinstance(r, DigitsReport) for r in reports.values()):
        raise TypeError("reports must be a dictionary {name: DigitsReport}")
    rows = {}
    for name, report in reports.items():
        row = {"FD": report.fd, "FD / floor": report.ratio}
        if reference is not None:
            row[f"FD / {reference_name}"] = report.fd / reference
        row.update(
            memorisation=report.memorisation,
            confidence=report.confidence,
            classes=f"{min(report.class_counts)}–{max(report.class_counts)}",
        )
        rows[name] = row
    first = next(iter(reports.values()), None)
    note = (
        f"Floor (real vs real, {first.n} images): FD {first.fd_floor:.2f}. Real digits' confidence "
        f"{first.real_confidence:.2f}. Classes: the fewest and the most samples given to one digit."
        if first is not None
        else ""
    )
    formats = {column: ".2f" for column in ("FD", "FD / floor", f"FD / {reference_name}", "memorisation", "confidence")}
    return viz.table(rows, formats, note=note)


def digits_report(samples: torch.Tensor, n: int | None = None, seed: int = 0) -> DigitsReport:
    """:func:`image_report` for the 8x8 digits."""
    return image_report(samples, "digits", n, seed)


def image_report(samples: torch.Tensor, dataset: str = "digits", n: int | None = None, seed: int = 0) -> DigitsReport:
    """Score digit samples against a dataset's held-out images with its classifier (:func:`image_classifier`).

    Args:
        samples: ``(N, C, H, W)`` or flattened ``(N, C*H*W)`` images in [-1, 1], the dataset's size.
        dataset: a name in :data:`flowlib.data.IMAGE_DATASETS`.
        n: how many samples to score (default: ``min(N, 360)``, the digits' held-out set's size); the floor
            uses as many training images, drawn with ``seed``.
        seed: seed of the training images the floor draws.

    Returns:
        A :class:`DigitsReport`.
    """
    classifier = image_classifier(dataset)
    as_points(samples, "samples", dim=classifier.n_pixels)
    n = min(samples.shape[0], 360) if n is None else n
    check_positive_int(n, "n", minimum=2)
    if n > samples.shape[0]:
        raise ValueError(f"n = {n} is more than the {samples.shape[0]} samples given")
    train, heldout = data.images(dataset, "train"), data.images(dataset, "heldout")
    scored = samples[:n].detach().float().cpu().reshape(n, *train.images.shape[1:])
    real = train.images[torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))[:n]]
    with torch.no_grad():
        heldout_features = classifier.features(heldout.images)
        probabilities = classifier(scored).softmax(1)
        real_confidence = float(classifier.head(heldout_features).softmax(1).max(1).values.mean())
        return DigitsReport(
            fd=frechet_distance(classifier.features(scored), heldout_features),
            fd_floor=frechet_distance(classifier.features(real), heldout_features),
            class_counts=tuple(torch.bincount(probabilities.argmax(1), minlength=10).tolist()),
            confidence=float(probabilities.max(1).values.mean()),
            real_confidence=real_confidence,
            memorisation=memorisation_ratio(scored, train.images, heldout.images),
            n=n,
        )
