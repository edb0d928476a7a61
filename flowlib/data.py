"""Datasets: 2D toy samplers, Gaussian mixtures with known parameters, 8x8 digits and a mixture fitted to them.

Every sampler returns a float32 tensor of shape ``(n, 2)``; a ``seed`` makes the
draw reproducible without touching torch's global random state. The Gaussian
mixtures come with their exact velocity and flow map (:mod:`flowlib.exact`), and so does the
checkerboard (:func:`exact_checkerboard`), so they are the book's test beds with a known answer.

Example:
    >>> from flowlib import data
    >>> data.sample("checkerboard", 1000, seed=0).shape
    torch.Size([1000, 2])
    >>> mix = data.mixture("eight_gaussians")            # an exact.GaussianMixture
    >>> images, labels = data.digits()
    >>> images.shape, float(images.min()), float(images.max())
    (torch.Size([1797, 1, 8, 8]), -1.0, 1.0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from flowlib._validate import check_choice, check_positive_int
from flowlib.chapter import cache_dir
from flowlib.exact import GaussianMixture, UniformSquares


def _generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _checkerboard_cells() -> torch.Tensor:
    """Lower-left corners (before the shift by -2) of the 8 dark squares of the 4x4 board, ``(8, 2)``."""
    return torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=torch.float32)


def _checkerboard(n: int, gen: torch.Generator | None) -> torch.Tensor:
    """Uniform on the 8 dark squares of a 4x4 board covering [-2, 2]^2."""
    cells = _checkerboard_cells()
    pick = torch.randint(len(cells), (n,), generator=gen)
    offset = torch.rand(n, 2, generator=gen)
    return cells[pick] + offset - 2.0


def _moons(n: int, gen: torch.Generator | None) -> torch.Tensor:
    """Two interleaved half circles, centred and scaled to a spread of about 1, noise sd 0.05·1.5."""
    upper = torch.rand(n, generator=gen) < 0.5
    angle = torch.rand(n, generator=gen) * math.pi
    x = torch.where(upper, torch.cos(angle), 1.0 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.5
    return points + 0.075 * torch.randn(n, 2, generator=gen)


def _rings(n: int, gen: torch.Generator | None) -> torch.Tensor:
    """Four concentric circles of radii 0.5, 1, 1.5, 2 (points in proportion to length), noise sd 0.04."""
    radii = torch.tensor([0.5, 1.0, 1.5, 2.0])
    ring = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=gen)
    angle = torch.rand(n, generator=gen) * 2 * math.pi
    points = radii[ring, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return points + 0.04 * torch.randn(n, 2, generator=gen)


def _eight_gaussians_mixture() -> GaussianMixture:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(torch.full((8,), 1 / 8), means, torch.full((8,), 0.2**2))


def _eight_sharp_gaussians_mixture() -> GaussianMixture:
    """The eight Gaussians with a quarter of the spread (sd 0.05): paths turn sharply near t = 1."""
    base = _eight_gaussians_mixture()
    return GaussianMixture(base.weights, base.means, torch.full((8,), 0.05**2))


def _three_ellipses_mixture() -> GaussianMixture:
    """Three unequal components with full, rotated covariances (tests the general case)."""

    def rotated(angle: float, sd_major: float, sd_minor: float) -> torch.Tensor:
        c, s = math.cos(angle), math.sin(angle)
        rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        return rot @ torch.diag(torch.tensor([sd_major**2, sd_minor**2], dtype=torch.float64)) @ rot.T

    means = torch.tensor([[-1.5, -0.8], [1.4, -0.6], [0.0, 1.6]], dtype=torch.float64)
    covs = torch.stack([rotated(0.6, 0.6, 0.12), rotated(-0.9, 0.5, 0.15), rotated(0.0, 0.7, 0.1)])
    return GaussianMixture(torch.tensor([0.3, 0.3, 0.4]), means, covs)


def _two_modes_1d_mixture() -> GaussianMixture:
    """A 1D mixture, 0.4·N(-1.5, 0.3²) + 0.6·N(1.5, 0.3²), for pictures in the (t, x) plane."""
    return GaussianMixture(torch.tensor([0.4, 0.6]), torch.tensor([[-1.5], [1.5]]), torch.tensor([0.09, 0.09]))


MIXTURES: dict[str, Callable[[], GaussianMixture]] = {
    "eight_gaussians": _eight_gaussians_mixture,
    "eight_gaussians_sharp": _eight_sharp_gaussians_mixture,
    "three_ellipses": _three_ellipses_mixture,
    "two_modes_1d": _two_modes_1d_mixture,
}

SAMPLERS: dict[str, Callable[[int, torch.Generator | None], torch.Tensor]] = {
    "checkerboard": _checkerboard,
    "moons": _moons,
    "rings": _rings,
    "eight_gaussians": lambda n, gen: _eight_gaussians_mixture().sample(n, generator=gen).float(),
    "three_ellipses": lambda n, gen: _three_ellipses_mixture().sample(n, generator=gen).float(),
}


def names() -> list[str]:
    """The names :func:`sample` accepts."""
    return sorted(SAMPLERS)


def sample(name: str, n: int, seed: int | None = None) -> torch.Tensor:
    """Draw ``n`` points from a 2D toy distribution.

    Args:
        name: one of ``"checkerboard"``, ``"moons"``, ``"eight_gaussians"``,
            ``"rings"``, ``"three_ellipses"``.
        n: number of points.
        seed: seed for a private generator (``None`` uses torch's global one).

    Returns:
        A float32 tensor of shape ``(n, 2)``.

    Raises:
        ValueError: an unknown ``name`` (the message lists the valid ones) or ``n < 1``.
    """
    check_choice(name, "dataset name", SAMPLERS)
    check_positive_int(n, "n")
    return SAMPLERS[name](n, _generator(seed))


def _sobol(n: int, dim: int, seed: int) -> torch.Tensor:
    """``(n, dim)`` scrambled Sobol points in the open unit cube (float64)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed)
    return engine.draw(n, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)


def quasi_normal(n: int, dim: int = 2, seed: int = 0) -> torch.Tensor:
    r"""Standard normal points from a scrambled Sobol sequence (randomised quasi-Monte Carlo).

    Each point is :math:`\Phi^{-1}(u)` for a Sobol point :math:`u` in :math:`(0, 1)^d`. Every draw is
    marginally :math:`\mathcal N(0, I)`, but the set covers space far more evenly than independent
    draws: the share of points in any region fluctuates much less. The benchmark uses it as the
    noise it pushes through every model, so that a score reflects the model rather than how many
    noise points happened to land near one mode.

    Args:
        n: number of points.
        dim: dimension ``d``.
        seed: scrambling seed (different seeds give independent randomisations).

    Returns:
        A float32 tensor ``(n, dim)``.
    """
    check_positive_int(n, "n")
    check_positive_int(dim, "dim")
    return torch.special.ndtri(_sobol(n, dim, seed)).float()


def sample_quasi_random(name: str, n: int, seed: int = 0) -> torch.Tensor:
    r"""Draw ``n`` points of a 2D distribution from a scrambled Sobol sequence (randomised QMC).

    The first Sobol coordinate picks the component (a square of the checkerboard, a Gaussian of a
    mixture) by inverting the cumulative weights, so every component receives its share of the
    points up to rounding; the other coordinates place the point inside it (uniform in the square,
    or :math:`\mu_k + \Sigma_k^{1/2}\Phi^{-1}(u)` in the Gaussian). The set is a sample of the
    same distribution as :func:`sample` with much smaller fluctuations of the mass per component,
    which otherwise dominate the sliced W2 between two samples of a mixture: with 20 000 points
    its data-vs-data floor on the eight Gaussians drops from about 0.035 to about 0.002.

    Args:
        name: ``"checkerboard"`` or a mixture of :data:`MIXTURES`.
        n: number of points.
        seed: scrambling seed.

    Returns:
        A float32 tensor ``(n, d)``.

    Raises:
        ValueError: a distribution without a quasi-random sampler (the message lists those with one).
    """
    check_choice(name, "dataset name", ["checkerboard", *MIXTURES])
    check_positive_int(n, "n")
    if name == "checkerboard":
        u = _sobol(n, 3, seed)
        cells = _checkerboard_cells().double()
        pick = (u[:, 0] * len(cells)).long().clamp(max=len(cells) - 1)
        return (cells[pick] + u[:, 1:] - 2.0).float()
    mix = MIXTURES[name]()
    u = _sobol(n, 1 + mix.dim, seed)
    cumulative = mix.weights.to(torch.float64).cumsum(0)
    pick = torch.searchsorted(cumulative, u[:, :1].contiguous()).squeeze(1).clamp(max=len(cumulative) - 1)
    return mix.place(pick, torch.special.ndtri(u[:, 1:])).float()


def mixture(name: str) -> GaussianMixture:
    """A Gaussian mixture with known parameters, with its exact velocity and flow map.

    Args:
        name: ``"eight_gaussians"`` (2D, 8 components of sd 0.2 on a circle of radius 2),
            ``"eight_gaussians_sharp"`` (the same with sd 0.05),
            ``"three_ellipses"`` (2D, full rotated covariances), ``"two_modes_1d"`` (1D).

    Returns:
        A :class:`flowlib.exact.GaussianMixture` with the linear interpolant.
    """
    check_choice(name, "mixture name", MIXTURES)
    return MIXTURES[name]()


def exact_checkerboard() -> UniformSquares:
    """The checkerboard of :func:`sample` with its exact velocity and flow map (chapter 7).

    Returns:
        A :class:`flowlib.exact.UniformSquares` on the 8 dark unit squares of the 4x4 board covering
        :math:`[-2, 2]^2`, with the linear interpolant: the same distribution as ``sample("checkerboard", n)``.
    """
    return UniformSquares(_checkerboard_cells().to(torch.float64) - 2.0, side=1.0)


class Digits(NamedTuple):
    """scikit-learn's handwritten digits.

    Attributes:
        images: float32 tensor ``(N, 1, 8, 8)`` with values in [-1, 1] (-1 is background).
        labels: int64 tensor ``(N,)`` with the digit 0-9.
    """

    images: torch.Tensor
    labels: torch.Tensor


#: the held-out share of the digits (stratified by class, fixed once for the whole book)
DIGITS_HELDOUT = 0.2
DIGITS_SPLITS = ("train", "heldout", "all")


@functools.cache
def _digits_split() -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and held-out digits: a stratified 80/20 split with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    train, heldout = train_test_split(range(len(labels)), test_size=DIGITS_HELDOUT, stratify=labels, random_state=0)
    return torch.tensor(sorted(train)), torch.tensor(sorted(heldout))


def digits(split: str = "all") -> Digits:
    """scikit-learn's 1,797 8x8 digit images, scaled from {0..16} to [-1, 1].

    The data ships inside scikit-learn, so nothing is downloaded. The split is fixed for the whole book:
    1,437 training images and 360 held-out ones, stratified by class (scikit-learn's ``train_test_split``
    with ``random_state=0``). Models train on ``"train"``; Fréchet distances and memorisation are measured
    against ``"heldout"``.

    Args:
        split: ``"train"``, ``"heldout"`` or ``"all"``.

    Returns:
        ``Digits(images, labels)`` with ``images`` float32 ``(N, 1, 8, 8)`` and ``labels`` int64 ``(N,)``.
    """
    from sklearn.datasets import load_digits

    check_choice(split, "split", DIGITS_SPLITS)
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 8.0 - 1.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    if split != "all":
        index = _digits_split()[0 if split == "train" else 1]
        images, labels = images[index], labels[index]
    return Digits(images=images, labels=labels)


#: components per digit class and the covariance regularisation of :func:`digits_mixture`
DIGITS_MIXTURE_COMPONENTS = 4
DIGITS_MIXTURE_REGULARISATION = 0.02


@functools.cache
def digits_mixture(
    components_per_class: int = DIGITS_MIXTURE_COMPONENTS, regularisation: float = DIGITS_MIXTURE_REGULARISATION
) -> GaussianMixture:
    r"""A Gaussian mixture in 64 dimensions fitted to the training digits: an exact oracle for images.

    For each class, scikit-learn's ``GaussianMixture`` (full covariances, ``reg_covar=regularisation`` added to
    each diagonal, ``random_state=0``) is fitted to that class's training images; the components are pooled
    with weights (class share × component weight). With the defaults (40 components) its samples look like
    digits, and its velocity, denoiser and flow map are exact (:class:`flowlib.exact.GaussianMixture`), so a
    learned image flow map can be scored against the truth as in 2D. Fitted once per process (about 3 s).

    Args:
        components_per_class: components fitted to each of the ten classes.
        regularisation: variance added to the diagonal of every covariance (keeps them well conditioned).

    Returns:
        A :class:`flowlib.exact.GaussianMixture` with ``dim == 64``; it takes points ``(batch, 64)`` or
        images ``(batch, 1, 8, 8)``.
    """
    from sklearn.mixture import GaussianMixture as FittedMixture

    check_positive_int(components_per_class, "components_per_class")
    if not regularisation > 0:
        raise ValueError(f"regularisation must be > 0, got {regularisation}")
    train = digits("train")
    flat = train.images.reshape(-1, 64).double().numpy()
    labels = train.labels.numpy()
    weights, means, covariances = [], [], []
    for digit in range(10):
        fitted = FittedMixture(
            components_per_class, covariance_type="full", reg_covar=regularisation, random_state=0
        ).fit(flat[labels == digit])
        weights.append(torch.tensor(fitted.weights_) * float((labels == digit).mean()))
        means.append(torch.tensor(fitted.means_))
        covariances.append(torch.tensor(fitted.covariances_))
    return GaussianMixture(torch.cat(weights), torch.cat(means), torch.cat(covariances))


#: image datasets by name: the embedded 8x8 digits, the same digits upsampled to MNIST's 28x28 (to try the
#: 28x28 code path with no download), and MNIST itself (torchvision and a network connection)
IMAGE_DATASETS = ("digits", "digits28", "mnist")


class DatasetUnavailableError(RuntimeError):
    """An image dataset that cannot be loaded here (a missing package or no network); the message says why."""


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resizing of images ``(N, C, H, W)`` to ``(N, C, size, size)``, values kept in [-1, 1]."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    check_positive_int(size, "size", minimum=2)
    resized = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return resized.clamp(-1.0, 1.0)


def mnist(split: str = "train", root: str | None = None) -> Digits:
    """MNIST's 28x28 digits through torchvision, scaled to [-1, 1]; for readers with a network (e.g. Colab).

    The 60,000 training images are ``"train"``, the 10,000 test images ``"heldout"``. The files are fetched once
    into ``root`` (default: ``mnist/`` in the model cache, :func:`flowlib.chapter.cache_dir`).

    Args:
        split: ``"train"``, ``"heldout"`` or ``"all"``.
        root: where torchvision keeps the files.

    Returns:
        ``Digits(images, labels)`` with ``images`` float32 ``(N, 1, 28, 28)`` and ``labels`` int64 ``(N,)``.

    Raises:
        DatasetUnavailableError: torchvision is not installed, or the files are not there and cannot be fetched.
    """
    check_choice(split, "split", DIGITS_SPLITS)
    try:
        from torchvision.datasets import MNIST
    except ImportError:
        raise DatasetUnavailableError(
            "MNIST needs torchvision (pip install torchvision; Colab has it) and a network connection the first "
            "time. The 8x8 digits need nothing: data.images('digits') or data.digits()."
        ) from None
    folder = str(root) if root is not None else str(cache_dir() / "mnist")
    parts = []
    for train in (True,) if split == "train" else (False,) if split == "heldout" else (True, False):
        try:
            dataset = MNIST(folder, train=train, download=True)
        except Exception as error:  # noqa: BLE001 (torchvision raises several kinds on a failed download)
            raise DatasetUnavailableError(
                f"MNIST could not be loaded into {folder} ({type(error).__name__}: {error}). It is fetched from the "
                "internet once; without a connection use the 8x8 digits, data.images('digits'), which need nothing."
            ) from error
        parts.append((dataset.data.to(torch.float32).unsqueeze(1) / 127.5 - 1.0, dataset.targets.to(torch.int64)))
    return Digits(images=torch.cat([p[0] for p in parts]), labels=torch.cat([p[1] for p in parts]))


def images(name: str = "digits", split: str = "train") -> Digits:
    """An image dataset by name, as ``Digits(images (N, 1, H, W) in [-1, 1], labels (N,))``.

    Args:
        name: ``"digits"`` (8x8, embedded in scikit-learn), ``"digits28"`` (the same digits upsampled to
            28x28 with :func:`upsample`: MNIST's size with no download) or ``"mnist"`` (:func:`mnist`).
        split: ``"train"``, ``"heldout"`` or ``"all"``; the same fixed split for ``"digits"`` and ``"digits28"``.

    Raises:
        ValueError: an unknown name or split.
        DatasetUnavailableError: MNIST cannot be loaded here.
    """
    check_choice(name, "image dataset name", IMAGE_DATASETS)
    check_choice(split, "split", DIGITS_SPLITS)
    if name == "mnist":
        return mnist(split)
    eight = digits(split)
    return eight if name == "digits" else Digits(upsample(eight.images, 28), eight.labels)
