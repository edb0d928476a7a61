"""Pairs of times for training: exact diagonal shares, with the mask that says which pairs are on it."""

import pytest
import torch

from flowlib.times import (
    DISTRIBUTIONS,
    sample_dyadic_pairs,
    sample_grid_pairs,
    sample_pairs,
    sample_times,
    sample_to_data,
)


def gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def is_power_of_two(values: torch.Tensor) -> bool:
    exponent = torch.log2(values)
    return bool((exponent == exponent.round()).all())


@pytest.mark.parametrize("n", [7, 1000])
@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.75, 1.0])
def test_exactly_the_requested_share_of_pairs_lands_on_the_diagonal(n, fraction):
    s, t, on_diagonal = sample_pairs(n, gen(0), diagonal_fraction=fraction)
    assert s.shape == t.shape == on_diagonal.shape == (n,) and on_diagonal.dtype == torch.bool
    assert int(on_diagonal.sum()) == round(fraction * n)
    assert torch.equal(s[on_diagonal], t[on_diagonal])  # exactly equal, not merely close
    assert bool((s[~on_diagonal] < t[~on_diagonal]).all())
    assert bool((s >= 0).all()) and bool((t <= 1).all())


def test_the_diagonal_pairs_sit_at_random_positions():
    masks = [sample_pairs(100, gen(seed), diagonal_fraction=0.25)[2] for seed in range(3)]
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    assert not torch.equal(masks[0], torch.arange(100) < 25)


def test_diagonal_times_follow_the_requested_distribution():
    """A diagonal time must be uniform, not the smaller of two uniforms (which leans towards 0)."""
    s, t, on_diagonal = sample_pairs(20000, gen(3), diagonal_fraction=1.0)
    assert torch.equal(s, t) and bool(on_diagonal.all())
    assert s.mean().item() == pytest.approx(0.5, abs=0.01)
    assert (s > 0.5).float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_grid_share_one_puts_every_off_diagonal_pair_on_a_sampler_grid():
    s, t, on_diagonal = sample_pairs(4000, gen(1), diagonal_fraction=0.25, grid_share=1.0, grid_levels=4)
    off = ~on_diagonal
    gap = t[off] - s[off]
    assert is_power_of_two(gap) and set(gap.unique().tolist()) == {1.0, 0.5, 0.25, 0.125}
    assert torch.equal(s[off] / gap, (s[off] / gap).round())  # s = k / K
    assert bool((t[off] <= 1).all())
    assert int(on_diagonal.sum()) == 1000 and torch.equal(s[on_diagonal], t[on_diagonal])
    # without the grid, gaps are continuous
    s, t, on_diagonal = sample_pairs(4000, gen(1), diagonal_fraction=0.25)
    assert not is_power_of_two(t[~on_diagonal] - s[~on_diagonal])


def test_grid_share_half_mixes_grid_and_free_pairs():
    s, t, on_diagonal = sample_pairs(4000, gen(2), diagonal_fraction=0.0, grid_share=0.5, grid_levels=3)
    gap = t - s
    on_grid = (gap == 1.0) | (gap == 0.5) | (gap == 0.25)
    assert 0.45 < on_grid.float().mean() < 0.55


def test_backward_fraction_swaps_off_diagonal_pairs():
    s, t, on_diagonal = sample_pairs(4000, gen(1), diagonal_fraction=0.5, backward_fraction=0.5)
    off = ~on_diagonal
    assert 0.45 < (t[off] < s[off]).float().mean() < 0.55
    assert torch.equal(s[on_diagonal], t[on_diagonal]) and int(on_diagonal.sum()) == 2000
    s, t, on_diagonal = sample_pairs(1000, gen(1), diagonal_fraction=0.1, backward_fraction=1.0)
    assert bool((t[~on_diagonal] < s[~on_diagonal]).all())


def test_time_distributions():
    assert set(DISTRIBUTIONS) == {"uniform", "logit_normal"}
    logit = sample_times(20000, gen(1), "logit_normal")
    uniform = sample_times(20000, gen(1), "uniform")
    assert logit.dtype == uniform.dtype == torch.float32
    assert bool(((logit > 0) & (logit < 1)).all())
    assert ((logit - 0.5).abs() < 0.25).float().mean() > ((uniform - 0.5).abs() < 0.25).float().mean() + 0.1
    # logit-normal: the logit of the times is a standard normal
    z = torch.logit(logit.double())
    assert z.mean().item() == pytest.approx(0.0, abs=0.03) and z.std().item() == pytest.approx(1.0, abs=0.03)
    s, t, _ = sample_pairs(20000, gen(2), "logit_normal", diagonal_fraction=1.0)
    assert ((s - 0.5).abs() < 0.25).float().mean() > 0.6


def test_draws_are_reproducible_from_the_generator():
    first = sample_pairs(100, gen(5), grid_share=0.5, backward_fraction=0.2)
    second = sample_pairs(100, gen(5), grid_share=0.5, backward_fraction=0.2)
    other = sample_pairs(100, gen(6), grid_share=0.5, backward_fraction=0.2)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], other[0])


def test_grid_pairs_are_the_jumps_of_power_of_two_samplers():
    s, t = sample_grid_pairs(5000, gen(0), levels=3)
    gap = t - s
    assert set(gap.unique().tolist()) == {1.0, 0.5, 0.25}
    assert torch.equal(s / gap, (s / gap).round()) and bool((t <= 1).all()) and bool((s >= 0).all())
    s, t = sample_grid_pairs(10, gen(0), levels=1)
    assert torch.equal(s, torch.zeros(10)) and torch.equal(t, torch.ones(10))


def test_dyadic_pairs_fit_in_the_unit_interval():
    s, t, on_diagonal = sample_dyadic_pairs(5000, gen(0), diagonal_fraction=0.2, levels=5)
    assert int(on_diagonal.sum()) == 1000 and torch.equal(s[on_diagonal], t[on_diagonal])
    off = ~on_diagonal
    h = (t[off] - s[off]) / 2
    assert set(torch.log2(h).round().int().tolist()) == {-1, -2, -3, -4, -5}
    assert is_power_of_two(h)
    assert bool((t[off] <= 1).all()) and bool((s[off] >= 0).all())
    assert torch.equal(s[off] / (2 * h), (s[off] / (2 * h)).round())  # s is a multiple of 2h
    # the diagonal takes continuous times, not grid points
    assert not is_power_of_two(s[on_diagonal][s[on_diagonal] > 0])


def test_pairs_to_the_data_for_consistency_models():
    s, t, on_diagonal = sample_to_data(1000, gen(0), intervals=8)
    assert torch.equal(t, torch.ones(1000)) and not bool(on_diagonal.any())
    assert set((s * 8).tolist()) == set(range(8))


def test_bad_arguments():
    with pytest.raises(ValueError, match="diagonal_fraction must be a number in"):
        sample_pairs(10, gen(), diagonal_fraction=1.5)
    with pytest.raises(ValueError, match="grid_share must be a number in"):
        sample_pairs(10, gen(), grid_share=-0.1)
    with pytest.raises(ValueError, match="backward_fraction"):
        sample_pairs(10, gen(), backward_fraction=2)
    with pytest.raises(ValueError, match="unknown distribution 'beta'"):
        sample_times(10, gen(), "beta")
    with pytest.raises(ValueError, match="n must be >= 1"):
        sample_pairs(0, gen())
    with pytest.raises(TypeError, match="levels must be an int"):
        sample_dyadic_pairs(10, gen(), levels=2.0)
    with pytest.raises(ValueError, match="intervals must be >= 1"):
        sample_to_data(10, gen(), intervals=0)
    with pytest.raises(TypeError, match="max_gap"):
        sample_pairs(10, gen(), max_gap=0.1)  # removed


def test_pairs_are_drawn_on_the_generators_device(device):
    generator = gen(0, device)
    for s, t, on_diagonal in (
        sample_pairs(64, generator, grid_share=0.5, backward_fraction=0.3),
        sample_dyadic_pairs(64, generator),
        sample_to_data(64, generator),
    ):
        assert s.device.type == t.device.type == on_diagonal.device.type == device.type
    assert sample_times(8, generator, "logit_normal").device.type == device.type
    s, t, on_diagonal = sample_pairs(64, gen(0, device), diagonal_fraction=0.25)
    assert int(on_diagonal.sum()) == 16 and torch.equal(s[on_diagonal], t[on_diagonal])
