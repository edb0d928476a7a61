import math
from functools import partial

import pytest
import torch

from flowlib import metrics


def gauss(n, seed, shift=0.0, dim=2):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def test_identical_sets_have_zero_distance():
    a = gauss(500, 0)
    assert metrics.sliced_w2(a, a) == 0.0
    assert metrics.energy_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    assert metrics.w2(a, a) == 0.0


def test_exact_w2_of_a_translation_is_its_length():
    a = gauss(300, 1)
    shift = torch.tensor([0.3, -0.4])
    assert metrics.w2(a, a + shift) == pytest.approx(0.5, abs=1e-6)


def test_sliced_w2_of_a_translation():
    """For a shift delta in 2D, sliced W2 = |delta| sqrt(E cos^2) = |delta| / sqrt(2)."""
    a = gauss(2000, 2)
    shift = torch.tensor([0.6, 0.8])
    assert metrics.sliced_w2(a, a + shift, n_projections=4000) == pytest.approx(1 / math.sqrt(2), rel=0.02)


def test_metrics_grow_with_the_discrepancy():
    ref = gauss(2000, 3)
    for metric in (metrics.sliced_w2, metrics.energy_distance):
        values = [metric(gauss(2000, 4, shift=d), ref) for d in (0.0, 0.3, 1.0)]
        assert values[0] < values[1] < values[2]


def test_determinism_and_seeds():
    a, b = gauss(400, 5), gauss(400, 6)
    assert metrics.sliced_w2(a, b, seed=1) == metrics.sliced_w2(a, b, seed=1)
    assert metrics.sliced_w2(a, b, seed=1) != metrics.sliced_w2(a, b, seed=2)
    assert metrics.energy_distance(a, b) == metrics.energy_distance(a, b)


def test_unequal_sizes_and_images():
    a, b = gauss(300, 7), gauss(500, 8)
    assert metrics.sliced_w2(a, b) > 0
    # a set and the same set with every point twice have the same quantile function in every direction
    assert metrics.sliced_w2(a, a.repeat(2, 1)) == pytest.approx(0.0, abs=1e-12)
    assert metrics.sliced_w2(a, a.repeat(2, 1) + 1.0) > 0.5
    images = torch.randn(50, 1, 4, 4)
    assert metrics.energy_distance(images, images + 1) > 0


def test_against_floor_reports_ratio_near_one_for_data():
    data = lambda n, seed: gauss(n, seed)  # noqa: E731
    report = metrics.against_floor(metrics.sliced_w2, data, data, n=1000, repeats=6)
    assert report.ratio == pytest.approx(1.0, abs=0.35)
    assert report.value_se > 0 and report.floor_se > 0
    shifted = metrics.against_floor(
        partial(metrics.sliced_w2), lambda n, s: gauss(n, s, 0.5), data, n=1000, repeats=3, name="sliced W2"
    )
    assert shifted.ratio > 3
    assert "sliced W2" in str(shifted)


def test_map_error():
    a = torch.zeros(10, 2)
    assert metrics.map_error(a + torch.tensor([3.0, 4.0]), a) == pytest.approx(5.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same number of features"):
        metrics.sliced_w2(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="same size"):
        metrics.w2(torch.zeros(5, 2), torch.zeros(6, 2))
    with pytest.raises(ValueError, match="max_points"):
        metrics.w2(torch.zeros(50, 2), torch.zeros(50, 2), max_points=10)
    with pytest.raises(ValueError, match="NaN"):
        metrics.energy_distance(torch.full((5, 2), float("nan")), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="at least n \\* repeats"):
        metrics.against_floor(metrics.sliced_w2, torch.zeros(10, 2), lambda n, s: gauss(n, s), n=10, repeats=3)
