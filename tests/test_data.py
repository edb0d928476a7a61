import pytest
import torch

from flowlib import data


@pytest.mark.parametrize("name", data.names())
def test_samplers_return_seeded_float_points(name):
    a = data.sample(name, 500, seed=3)
    b = data.sample(name, 500, seed=3)
    c = data.sample(name, 500, seed=4)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()


def test_checkerboard_only_fills_dark_squares():
    x = data.sample("checkerboard", 5000, seed=0)
    assert x.min() >= -2 and x.max() <= 2
    cell = torch.floor(x + 2).long()
    assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()
    # all 8 dark squares are used, roughly equally
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)
    dark = counts[counts > 0]
    assert len(dark) == 8 and dark.min() > 500


def test_rings_lie_on_four_radii():
    r = data.sample("rings", 4000, seed=0).norm(dim=1)
    nearest = torch.tensor([0.5, 1.0, 1.5, 2.0])[(r[:, None] - torch.tensor([0.5, 1.0, 1.5, 2.0])).abs().argmin(1)]
    assert (r - nearest).abs().max() < 0.25


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="checkerboard"):
        data.sample("checkers", 10)
    with pytest.raises(ValueError, match="eight_gaussians"):
        data.mixture("nine_gaussians")


def test_bad_sizes_and_seeds_are_refused():
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.sample("moons", 0)
    with pytest.raises(TypeError, match="n must be an int"):
        data.sample("moons", 10.5)
    with pytest.raises(TypeError, match="seed"):
        data.sample("moons", 10, seed="one")


def test_mixture_samples_match_their_parameters():
    mix = data.mixture("three_ellipses")
    x = mix.sample(60_000, seed=0)
    expected_mean = (mix.weights[:, None] * mix.means).sum(0)
    assert torch.allclose(x.mean(0), expected_mean, atol=0.03)
    # total covariance = E[cov] + cov of the means
    centred = mix.means - expected_mean
    expected_cov = (mix.weights[:, None, None] * (mix.covs + centred[:, :, None] * centred[:, None, :])).sum(0)
    assert torch.allclose(torch.cov(x.T), expected_cov, atol=0.04)


def test_digits_are_scaled_images_with_labels():
    images, labels = data.digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))


def test_quasi_random_checkerboard_gives_every_square_its_share():
    n = 4096
    points = data.sample_quasi_random("checkerboard", n, seed=3)
    cells = torch.floor(points + 2.0).long()
    assert bool(((cells[:, 0] + cells[:, 1]) % 2 == 0).all())  # only dark squares
    counts = torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    dark = counts[counts > 0]
    assert len(dark) == 8 and int(dark.max() - dark.min()) <= 2  # n/8 each, up to rounding
    independent = data.sample("checkerboard", n, seed=3)
    plain = torch.bincount((torch.floor(independent + 2.0).long() * torch.tensor([4, 1])).sum(1), minlength=16)
    assert int(plain[plain > 0].max() - plain[plain > 0].min()) > 2  # what independent draws give


def test_quasi_random_mixture_matches_its_parameters_and_is_seeded():
    mix = data.mixture("three_ellipses")
    points = data.sample_quasi_random("three_ellipses", 8192, seed=1).double()
    expected_mean = (mix.weights[:, None] * mix.means).sum(0)
    assert torch.allclose(points.mean(0), expected_mean, atol=0.02)
    again = data.sample_quasi_random("three_ellipses", 8192, seed=1)
    other = data.sample_quasi_random("three_ellipses", 8192, seed=2)
    assert torch.equal(points.float(), again) and not torch.equal(again, other)
    placed = mix.place(torch.zeros(4, dtype=torch.long), torch.zeros(4, 2))
    assert torch.allclose(placed, mix.means[0].expand(4, 2))


def test_quasi_normal_is_standard_normal():
    z = data.quasi_normal(8192, 2, seed=0).double()
    assert z.shape == (8192, 2)
    assert torch.allclose(z.mean(0), torch.zeros(2, dtype=torch.float64), atol=0.01)
    assert torch.allclose(torch.cov(z.T), torch.eye(2, dtype=torch.float64), atol=0.02)


def test_quasi_random_refuses_distributions_without_a_sampler():
    with pytest.raises(ValueError, match="moons"):
        data.sample_quasi_random("moons", 10)
    with pytest.raises(ValueError, match="n"):
        data.quasi_normal(0)
    with pytest.raises(TypeError, match="seed"):
        data.quasi_normal(10, seed=1.5)
