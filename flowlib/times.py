r"""Sampling times and pairs of times for training (chapters 5-10).

A flow map is trained on pairs :math:`(s, t)`. How the pairs are drawn is a design choice
with a large effect (chapter 10): the distribution of each time (uniform or logit-normal),
the share of pairs on the diagonal :math:`s = t` (where the objective reduces to flow
matching), the share on the grids that few-step samplers use, and whether jumps also run backwards.

Every function draws from a ``torch.Generator`` (on the device where the times are wanted), so that
training runs are reproducible, and returns the pairs with their **diagonal mask**: callers never
have to guess which pairs have :math:`s = t`. :func:`sample_pairs` puts exactly
``round(diagonal_fraction · n)`` pairs on the diagonal; a test checks it.

Example:
    >>> import torch
    >>> s, t, on_diagonal = sample_pairs(8, torch.Generator().manual_seed(0), diagonal_fraction=0.25)
    >>> int(on_diagonal.sum()), bool((s[on_diagonal] == t[on_diagonal]).all())
    (2, True)
"""

from __future__ import annotations

import torch

from flowlib._validate import check_choice, check_positive_int

DISTRIBUTIONS = ("uniform", "logit_normal")
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _share(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _uniform(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=_device(generator))


def sample_times(n: int, generator: torch.Generator | None = None, distribution: str = "uniform") -> torch.Tensor:
    r"""``n`` times in [0, 1], float32 ``(n,)``.

    Args:
        n: how many.
        generator: the random source (its device is the result's device).
        distribution: ``"uniform"`` or ``"logit_normal"`` (:math:`\sigma(z)` with :math:`z \sim N(0, 1)`,
            which favours the middle of the interval; Esser et al., 2024).
    """
    check_positive_int(n, "n")
    check_choice(distribution, "distribution", DISTRIBUTIONS)
    if distribution == "uniform":
        return _uniform(n, generator)
    return torch.sigmoid(torch.randn(n, generator=generator, device=_device(generator)))


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
    steps = 2.0 ** torch.randint(0, levels, (n,), generator=generator, device=_device(generator)).float()
    k = torch.floor(_uniform(n, generator) * steps).clamp(max=steps - 1)
    return k / steps, (k + 1) / steps


def sample_pairs(
    n: int,
    generator: torch.Generator | None = None,
    distribution: str = "uniform",
    diagonal_fraction: float = 0.25,
    grid_share: float = 0.0,
    grid_levels: int = 5,
    backward_fraction: float = 0.0,
) -> Pairs:
    r"""``n`` pairs :math:`(s, t)` in [0, 1]², with exact shares on the diagonal and on sampler grids.

    A random ``round(diagonal_fraction · n)`` of the pairs get :math:`s = t`, one draw from
    ``distribution`` (the smaller of two draws would lean towards t = 0 and starve the data end of
    the velocity's training). Each other pair takes, with probability ``grid_share``, a jump of a
    :math:`2^j`-step sampler (:func:`sample_grid_pairs`), else two draws from ``distribution`` in
    order; then a share ``backward_fraction`` of them is swapped to jump backwards (:math:`t < s`).

    Args:
        n: number of pairs.
        generator: the random source.
        distribution: ``"uniform"`` or ``"logit_normal"`` for each time.
        diagonal_fraction: exact share of pairs with :math:`s = t`, in [0, 1].
        grid_share: probability that an off-diagonal pair is a sampler-grid jump, in [0, 1].
        grid_levels: the grids' sizes :math:`2^0, \dots, 2^{\text{grid\_levels}-1}`.
        backward_fraction: share of off-diagonal pairs with :math:`t < s`.

    Returns:
        ``(s, t, on_diagonal)``: float32 ``(n,)``, float32 ``(n,)`` and bool ``(n,)``.
    """
    check_positive_int(n, "n")
    _share(diagonal_fraction, "diagonal_fraction")
    _share(grid_share, "grid_share")
    _share(backward_fraction, "backward_fraction")
    a, b = sample_times(n, generator, distribution), sample_times(n, generator, distribution)
    s, t = torch.minimum(a, b), torch.maximum(a, b)
    if grid_share > 0:
        grid_s, grid_t = sample_grid_pairs(n, generator, grid_levels)
        use_grid = _uniform(n, generator) < grid_share
        s, t = torch.where(use_grid, grid_s, s), torch.where(use_grid, grid_t, t)
    on_diagonal = torch.zeros(n, dtype=torch.bool, device=s.device)
    on_diagonal[torch.randperm(n, generator=generator, device=s.device)[: int(round(diagonal_fraction * n))]] = True
    s, t = torch.where(on_diagonal, a, s), torch.where(on_diagonal, a, t)
    if backward_fraction > 0:
        swap = (_uniform(n, generator) < backward_fraction) & ~on_diagonal
        s, t = torch.where(swap, t, s), torch.where(swap, s, t)
    return s, t, on_diagonal


def sample_dyadic_pairs(
    n: int,
    generator: torch.Generator | None = None,
    diagonal_fraction: float = 0.25,
    levels: int = 7,
    distribution: str = "uniform",
) -> Pairs:
    r"""Shortcut-model pairs: jumps of :math:`2h` with :math:`h = 2^{-k}`, starting on multiples of :math:`2h`.

    Off the diagonal, :math:`k` is uniform in ``1 … levels`` (the smallest jump is
    :math:`2^{1-\text{levels}}`), :math:`s` a multiple of :math:`2h` and :math:`t = s + 2h \le 1`. A
    ``round(diagonal_fraction · n)`` share of the pairs sits on the diagonal at continuous times from
    ``distribution`` (the velocity is learned everywhere, not on the grid only).

    Returns:
        ``(s, t, on_diagonal)`` as in :func:`sample_pairs`.
    """
    check_positive_int(n, "n")
    check_positive_int(levels, "levels")
    _share(diagonal_fraction, "diagonal_fraction")
    device = _device(generator)
    h = 2.0 ** (-torch.randint(1, levels + 1, (n,), generator=generator, device=device).float())
    slots = (1.0 / (2 * h)).round()  # jumps of size 2h that fit in [0, 1]
    s = torch.floor(_uniform(n, generator) * slots).clamp(max=slots - 1) * 2 * h
    t = s + 2 * h
    diagonal_times = sample_times(n, generator, distribution)
    on_diagonal = torch.zeros(n, dtype=torch.bool, device=device)
    on_diagonal[torch.randperm(n, generator=generator, device=device)[: int(round(diagonal_fraction * n))]] = True
    return torch.where(on_diagonal, diagonal_times, s), torch.where(on_diagonal, diagonal_times, t), on_diagonal


def sample_to_data(n: int, generator: torch.Generator | None = None, intervals: int = 16) -> Pairs:
    r"""Consistency-model pairs: :math:`s = k/N` with :math:`k` uniform in ``0 … N − 1`` and :math:`t = 1`.

    Returns:
        ``(s, t, on_diagonal)`` as in :func:`sample_pairs` (no pair is on the diagonal).
    """
    check_positive_int(n, "n")
    check_positive_int(intervals, "intervals")
    k = torch.randint(0, intervals, (n,), generator=generator, device=_device(generator))
    s = k.float() / intervals
    return s, torch.ones_like(s), torch.zeros(n, dtype=torch.bool, device=s.device)
