import math

import pytest
import torch

from flowlib import ode
from flowlib.exact import LinearField


def convergence_order(method: str, field: LinearField) -> float:
    x = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = field.flow_map(x, 0.0, 1.0)
    steps = [8, 16, 32, 64]
    errors = [
        float((ode.integrate(field.velocity, x, ode.uniform_grid(k), method) - exact).norm(dim=1).max()) for k in steps
    ]
    # least-squares slope of log(error) against log(step size)
    lx = torch.tensor([math.log(1 / k) for k in steps])
    ly = torch.tensor([math.log(e) for e in errors])
    return float(((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum())


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun", "rk4"])
@pytest.mark.parametrize("field", [LinearField.rotation(0.5), LinearField.spiral(0.5, 1.0)])
def test_order_of_convergence(method, field):
    assert convergence_order(method, field) == pytest.approx(ode.ORDER[method], abs=0.25)


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun", "rk4"])
def test_evaluations_per_step(method):
    calls = []

    def velocity(x, t):
        calls.append(t.shape)
        assert t.shape == (x.shape[0],)
        return -x

    ode.integrate(velocity, torch.ones(3, 2), ode.uniform_grid(5), method)
    assert len(calls) == ode.nfe(method, 5) == 5 * ode.NFE_PER_STEP[method]


def test_return_path_and_backwards_integration():
    field = LinearField.rotation(0.5)
    x = torch.randn(7, 2, dtype=torch.float64)
    path = ode.integrate(field.velocity, x, ode.uniform_grid(50), "rk4", return_path=True)
    assert path.shape == (51, 7, 2)
    assert torch.equal(path[0], x)
    back = ode.integrate(field.velocity, path[-1], ode.uniform_grid(50, 1.0, 0.0), "rk4")
    assert torch.allclose(back, x, atol=1e-8)


def test_images_and_per_sample_grids():
    x = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    s = torch.tensor([0.0, 0.1, 0.5, 0.9], dtype=torch.float64)
    t = torch.tensor([1.0, 0.2, 0.5, 0.3], dtype=torch.float64)
    out = ode.integrate(lambda y, tt: -y, x, ode.pair_grid(s, t, 64, 4), "rk4")
    expected = x * torch.exp(-(t - s)).reshape(-1, 1, 1, 1)
    assert torch.allclose(out, expected, atol=1e-9)


def test_bad_inputs():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="unknown method"):
        ode.integrate(lambda y, t: y, x, [0.0, 1.0], "rk45")
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        ode.integrate(lambda y, t: y, x, [0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        ode.integrate(lambda y, t: y, x, [0.0, 2.0])
    with pytest.raises(ValueError, match="shaped like x"):
        ode.integrate(lambda y, t: y[:, :1], x, [0.0, 1.0])
    with pytest.raises(TypeError, match="callable"):
        ode.integrate("velocity", x, [0.0, 1.0])
    with pytest.raises(ValueError, match="n_times >= 2"):
        ode.integrate(lambda y, t: y, x, [0.0])
    with pytest.raises(ValueError, match="steps must be an int"):
        ode.uniform_grid(0)
