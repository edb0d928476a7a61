"""The shared input checks: one clear sentence per mistake, and ``trusted()`` skips only the value scans."""

import pytest
import torch

from flowlib._validate import (
    as_points,
    as_time_grid,
    as_times,
    check_callable,
    check_choice,
    check_positive,
    check_positive_int,
    column,
    trusted,
)

LIKE = torch.empty(0, dtype=torch.float64)


def test_as_points_accepts_vectors_and_images_and_names_each_mistake():
    x = torch.randn(4, 2)
    assert as_points(x) is x
    images = torch.randn(4, 1, 2, 3)
    assert as_points(images, dim=6) is images
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        as_points([[0.0, 1.0]])
    with pytest.raises(TypeError, match="floating-point"):
        as_points(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        as_points(torch.zeros(3))
    with pytest.raises(ValueError, match="points must have 3 features per point"):
        as_points(torch.zeros(4, 2), "points", dim=3)
    with pytest.raises(ValueError, match="data contains NaN"):
        as_points(torch.tensor([[0.0, float("inf")]]), "data")


def test_as_times_expands_numbers_and_checks_shape_and_range():
    out = as_times(0.25, "t", 5, like=LIKE)
    assert out.shape == (5,) and out.dtype == torch.float64 and bool((out == 0.25).all())
    out[0] = 0.5  # a real tensor, not a stride-0 view of one number
    assert out[1] == 0.25
    per_sample = torch.rand(5)
    assert torch.equal(as_times(per_sample, "t", 5, like=LIKE), per_sample.double())
    with pytest.raises(TypeError, match="s must be a float or a"):
        as_times("0.5", "s", 5, like=LIKE)
    with pytest.raises(TypeError, match="t must be a float"):
        as_times(True, "t", 5, like=LIKE)
    with pytest.raises(ValueError, match=r"tensor of shape \(5,\); got shape \(4,\)"):
        as_times(torch.rand(4), "t", 5, like=LIKE)
    with pytest.raises(ValueError, match=r"t must lie in \[0.0, 1.0\]"):
        as_times(1.5, "t", 5, like=LIKE)
    with pytest.raises(ValueError, match="u contains NaN"):
        as_times(float("nan"), "u", 5, like=LIKE)
    assert float(as_times(-0.5, "t", 1, like=LIKE, low=-1.0)[0]) == -0.5


def test_column_broadcasts_per_sample_values_over_any_point_shape():
    t = torch.tensor([1.0, 2.0, 3.0])
    images = torch.ones(3, 1, 2, 2)
    assert column(t, images).shape == (3, 1, 1, 1)
    assert torch.equal((column(t, images) * images)[:, 0, 1, 1], t)
    assert column(t, torch.ones(3, 2)).shape == (3, 1)


def test_trusted_skips_the_value_scans_but_not_the_shape_checks():
    nan_points = torch.full((3, 2), float("nan"))
    with trusted():
        assert as_points(nan_points) is nan_points  # no scan for NaN
        assert float(as_times(2.0, "t", 3, like=LIKE)[0]) == 2.0  # no range check
        with pytest.raises(ValueError, match="features per point"):
            as_points(nan_points, dim=3)
        with pytest.raises(ValueError, match=r"got shape \(3,\)"):
            as_points(torch.zeros(3))
        with pytest.raises(ValueError, match="tensor of shape"):
            as_times(torch.rand(4), "t", 3, like=LIKE)
        with pytest.raises(TypeError, match="floating-point"):
            as_points(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):  # switched back on after the block
        as_points(nan_points)


def test_trusted_is_restored_after_an_exception_and_nests():
    nan_points = torch.full((2, 2), float("nan"))
    with pytest.raises(RuntimeError), trusted():
        raise RuntimeError("inside")
    with pytest.raises(ValueError, match="NaN"):  # the exception did not leave the scans off
        as_points(nan_points)
    with trusted():
        with trusted():
            pass
        assert as_points(nan_points) is nan_points  # leaving the inner block keeps the outer one trusted
    with pytest.raises(ValueError, match="t must lie"):
        as_times(2.0, "t", 1, like=LIKE)


def test_scalar_checks():
    assert check_choice("b", "mode", ["a", "b"]) == "b"
    with pytest.raises(ValueError, match=r"unknown mode 'c'; valid values are \['a', 'b'\]"):
        check_choice("c", "mode", ["b", "a"])
    with pytest.raises(TypeError, match="mode must be a string"):
        check_choice(1, "mode", ["a"])
    assert check_positive_int(3, "n") == 3
    with pytest.raises(TypeError, match="n must be an int, got float"):
        check_positive_int(3.0, "n")
    with pytest.raises(TypeError, match="n must be an int, got bool"):
        check_positive_int(True, "n")
    with pytest.raises(ValueError, match="n must be >= 2, got 1"):
        check_positive_int(1, "n", minimum=2)
    assert check_positive(2, "lr") == 2.0
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        check_positive(float("inf"), "lr")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        check_positive(0.0, "lr")
    with pytest.raises(TypeError, match="lr must be a number"):
        check_positive("1e-3", "lr")
    check_callable(len, "f", "f(x)")
    with pytest.raises(TypeError, match=r"f must be a callable f\(x\), got int"):
        check_callable(3, "f", "f(x)")


def test_time_grids():
    grid = as_time_grid([0.0, 0.5, 1.0])
    assert grid.dtype == torch.float64 and grid.shape == (3,)
    assert as_time_grid([1.0, 0.0]).tolist() == [1.0, 0.0]
    # one grid per sample: columns may run in different directions, or stand still
    per_sample = torch.tensor([[0.0, 1.0, 0.3], [0.5, 0.5, 0.3], [1.0, 0.0, 0.3]])
    assert as_time_grid(per_sample).shape == (3, 3)
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        as_time_grid([0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="n_times >= 2"):
        as_time_grid([0.5])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        as_time_grid([0.0, 1.5])
    with pytest.raises(ValueError, match="NaN"):
        as_time_grid([0.0, float("nan")])
    with pytest.raises(TypeError, match="sequence of floats"):
        as_time_grid(["a", "b"])
