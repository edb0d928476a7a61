import pytest
import torch

from flowlib.interpolants import LinearInterpolant, TrigonometricInterpolant, get_interpolant


@pytest.mark.parametrize("name", ["linear", "trigonometric"])
def test_boundary_conditions(name):
    path = get_interpolant(name)
    zero, one = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    assert path.alpha(zero) == 1 and path.beta(one) == 1
    assert abs(float(path.alpha(one))) < 1e-15 and float(path.beta(zero)) == 0
    x0, x1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(path(x0, x1, 0.0), x0)
    assert torch.allclose(path(x0, x1, 1.0), x1)


@pytest.mark.parametrize("name", ["linear", "trigonometric"])
def test_derivative_matches_finite_differences(name):
    path = get_interpolant(name)
    x0, x1 = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    t = torch.rand(7, dtype=torch.float64) * 0.8 + 0.1
    h = 1e-6
    numeric = (path(x0, x1, t + h) - path(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(path.derivative(x0, x1, t), numeric, atol=1e-8)


def test_sample_path_bundles_consistent_values():
    path = LinearInterpolant()
    x0, x1 = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = torch.rand(4)
    batch = path.sample_path(x0, x1, t)
    assert batch.xt.shape == (4, 1, 8, 8)
    assert torch.allclose(batch.dxt, x1 - x0)
    assert torch.allclose(batch.xt, (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1)


def test_trigonometric_preserves_variance_for_standard_data():
    path = TrigonometricInterpolant()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(path.alpha(t) ** 2 + path.beta(t) ** 2, torch.ones(11, dtype=torch.float64))


def test_bad_inputs():
    path = LinearInterpolant()
    with pytest.raises(ValueError, match="same shape"):
        path(torch.zeros(3, 2), torch.zeros(4, 2), 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0.0, 1.0\]"):
        path(torch.zeros(3, 2), torch.zeros(3, 2), 1.5)
    with pytest.raises(ValueError, match="shape"):
        path(torch.zeros(3, 2), torch.zeros(3, 2), torch.rand(4))
    with pytest.raises(ValueError, match="NaN"):
        path(torch.full((3, 2), float("nan")), torch.zeros(3, 2), 0.5)
    with pytest.raises(ValueError, match="unknown interpolant"):
        get_interpolant("cubic")
