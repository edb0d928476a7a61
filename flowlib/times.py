r"""Sampling times and pairs of times for training (chapters 5-10).

A flow map is trained on pairs :math:`(s, t)`. How the pairs are drawn is a design choice
with a large effect (chapter 10): the distribution of each time (uniform or logit-normal),
the fraction of pairs on the diagonal :math:`s = t` (where the objective reduces to flow
matching), the largest gap :math:`t - s`, and whether jumps also run backwards.

Every function draws from a ``torch.Generator`` so that training runs are reproducible, and
:func:`sample_pairs` puts **exactly** ``round(diagonal_fraction · n)`` pairs on the diagonal
(a well-known bug elsewhere made that fraction silently almost zero; a test checks ours).
"""

from __future__ import annotations

import math

import torch

from flowlib._checks import check_choice, check_positive_int

DISTRIBUTIONS = ("uniform", "logit_normal")


def sample_times(
    n: int,
    generator: torch.Generator | None = None,
    distribution: str = "uniform",
    mean: float = 0.0,
    std: float = 1.0,
) -> torch.Tensor:
    r"""``n`` times in [0, 1].

    Args:
        n: how many.
        generator: the random source.
        distribution: ``"uniform"`` or ``"logit_normal"`` (:math:`\sigma(z)` with
            :math:`z \sim N(\text{mean}, \text{std}^2)`, which favours the middle of the interval).
        mean: location of the logit-normal.
        std: scale of the logit-normal.

    Returns:
        A float32 tensor ``(n,)``.
    """
    check_positive_int(n, "n")
    check_choice(distribution, "distribution", DISTRIBUTIONS)
    if distribution == "uniform":
        return torch.rand(n, generator=generator)
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def sample_pairs(
    n: int,
    generator: torch.Generator | None = None,
    distribution: str = "uniform",
    diagonal_fraction: float = 0.25,
    max_gap: float | None = None,
    backward_fraction: float = 0.0,
    mean: float = 0.0,
    std: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` pairs :math:`(s, t)` in [0, 1]², with a controlled share on the diagonal.

    Two times are drawn from ``distribution`` and ordered so that :math:`s \le t`; then the gap is
    capped at ``max_gap``; the first ``round(diagonal_fraction · n)`` pairs get :math:`s = t`, a single
    draw from ``distribution``; and
    a share ``backward_fraction`` of the other pairs is swapped to jump backwards (:math:`t < s`).

    Args:
        n: number of pairs.
        generator: the random source.
        distribution: ``"uniform"`` or ``"logit_normal"`` for each time.
        diagonal_fraction: exact share of pairs with :math:`s = t`, in [0, 1].
        max_gap: largest :math:`|t - s|` (``None``: no limit).
        backward_fraction: share of off-diagonal pairs with :math:`t < s`.
        mean: location of the logit-normal.
        std: scale of the logit-normal.

    Returns:
        ``(s, t)``, two float32 tensors ``(n,)``.
    """
    check_positive_int(n, "n")
    for name, value in (("diagonal_fraction", diagonal_fraction), ("backward_fraction", backward_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if max_gap is not None and not 0.0 < max_gap <= 1.0:
        raise ValueError(f"max_gap must be in (0, 1] or None, got {max_gap}")
    a = sample_times(n, generator, distribution, mean, std)
    b = sample_times(n, generator, distribution, mean, std)
    s, t = torch.minimum(a, b), torch.maximum(a, b)
    if max_gap is not None:
        t = torch.minimum(t, s + max_gap)
    n_diagonal = int(round(diagonal_fraction * n))
    # a diagonal pair takes one draw, so its time follows `distribution` itself (the smaller of two
    # draws would lean towards t = 0 and starve the data end of the velocity's training)
    s[:n_diagonal] = a[:n_diagonal]
    t[:n_diagonal] = a[:n_diagonal]
    if backward_fraction > 0:
        swap = torch.rand(n, generator=generator) < backward_fraction
        swap[:n_diagonal] = False
        s, t = torch.where(swap, t, s), torch.where(swap, s, t)
    return s, t


def sample_dyadic(
    n: int, generator: torch.Generator | None = None, levels: int = 7
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Shortcut-model pairs: a step :math:`h = 2^{-k}` and a start :math:`s` on the grid of multiples of :math:`2h`.

    Args:
        n: number of pairs.
        generator: the random source.
        levels: :math:`k` is uniform in ``1 … levels`` (smallest step :math:`2^{-\text{levels}}`).

    Returns:
        ``(s, h)``, float32 tensors ``(n,)`` with :math:`s + 2h \le 1`.
    """
    check_positive_int(n, "n")
    check_positive_int(levels, "levels")
    k = torch.randint(1, levels + 1, (n,), generator=generator)
    h = 2.0 ** (-k.float())
    slots = (1.0 / (2 * h)).long()  # number of jumps of size 2h in [0, 1]
    index = torch.floor(torch.rand(n, generator=generator) * slots).clamp(max=slots - 1)
    return index * 2 * h, h


def sample_grid_pairs(
    n: int, generator: torch.Generator | None = None, levels: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pairs that a K-step sampler uses: :math:`s = k/K`, :math:`t = (k+1)/K` with :math:`K = 2^j`.

    Args:
        n: number of pairs.
        generator: the random source.
        levels: :math:`j` is uniform in ``0 … levels - 1`` (K = 1, 2, 4, …, :math:`2^{\text{levels}-1}`).

    Returns:
        ``(s, t)``, float32 tensors ``(n,)``.
    """
    check_positive_int(n, "n")
    check_positive_int(levels, "levels")
    steps = 2.0 ** torch.randint(0, levels, (n,), generator=generator).float()
    k = torch.floor(torch.rand(n, generator=generator) * steps).clamp(max=steps - 1)
    return k / steps, (k + 1) / steps


def consistency_step(n_intervals: int) -> float:
    """The discretisation step Δ = 1 / n_intervals used by consistency distillation and training."""
    check_positive_int(n_intervals, "n_intervals")
    return 1.0 / n_intervals


def logit_normal_density(t: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Density of the logit-normal on (0, 1), for plots."""
    logit = torch.log(t) - torch.log1p(-t)
    return torch.exp(-0.5 * ((logit - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi) * t * (1 - t))
