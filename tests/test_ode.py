import math

import pytest
import torch

from flowlib import ode
from flowlib.exact import LinearField

SOLVERS = ["euler", "midpoint", "heun", "rk4"]


def least_squares_slope(steps: list[int], errors: list[float]) -> float:
    """Slope of log(error) against log(step size)."""
    lx = torch.tensor([math.log(1 / k) for k in steps])
    ly = torch.tensor([math.log(e) for e in errors])
    return float(((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum())


def convergence_order(solver: str, field: LinearField) -> float:
    x = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = field.flow_map(x, 0.0, 1.0)
    steps = [8, 16, 32, 64]
    errors = [
        float((ode.integrate(field.velocity, x, ode.uniform_grid(k), solver=solver) - exact).norm(dim=1).max())
        for k in steps
    ]
    return least_squares_slope(steps, errors)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("field", [LinearField.rotation(0.5), LinearField.spiral(0.5, 1.0)])
def test_order_of_convergence(solver, field):
    assert convergence_order(solver, field) == pytest.approx(ode.ORDER[solver], abs=0.25)


@pytest.mark.parametrize("solver", SOLVERS)
def test_public_steppers_converge_with_their_order_when_called_by_hand(solver):
    """The steppers themselves, repeated with a float step: the chapter-1 exercise's signature."""
    step, field = ode.STEPPERS[solver], LinearField.spiral(0.5, 1.0)
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exact = field.flow_map(x, 0.0, 1.0)
    steps, errors = [8, 16, 32, 64], []
    for n in steps:
        y = x
        for k in range(n):
            y = step(field.velocity, y, k / n, 1.0 / n)
        errors.append(float((y - exact).norm(dim=1).max()))
    assert least_squares_slope(steps, errors) == pytest.approx(ode.ORDER[solver], abs=0.25)


@pytest.mark.parametrize("solver", SOLVERS)
def test_steppers_take_float_or_per_sample_times_and_steps_alike(solver):
    step = ode.STEPPERS[solver]
    seen = []

    def velocity(x, t):  # time-dependent, so that the times the stepper passes matter
        seen.append(t)
        return torch.sin(3 * t)[:, None] * x + t[:, None]

    x = torch.randn(5, 2, dtype=torch.float64)
    with_floats = step(velocity, x, 0.3, 0.1)
    assert all(t.shape == (5,) and t.dtype == torch.float64 for t in seen)
    tensors = step(velocity, x, torch.full((5,), 0.3, dtype=torch.float64), torch.full((5,), 0.1, dtype=torch.float64))
    torch.testing.assert_close(with_floats, tensors, rtol=0, atol=0)
    mixed = step(velocity, x, torch.full((5,), 0.3, dtype=torch.float64), 0.1)
    torch.testing.assert_close(with_floats, mixed, rtol=0, atol=0)
    # per-sample steps: row i moves by its own h_i, exactly as if stepped alone
    h = torch.tensor([0.1, -0.2, 0.0, 0.05, 0.3], dtype=torch.float64)
    together = step(velocity, x, 0.4, h)
    alone = torch.cat([step(velocity, x[i : i + 1], 0.4, float(h[i])) for i in range(5)])
    torch.testing.assert_close(together, alone)
    assert torch.equal(together[2], x[2])  # a zero step stays put
    images = x.reshape(5, 2, 1, 1)
    torch.testing.assert_close(step(velocity_images(velocity), images, 0.4, h).reshape(5, 2), together)


def velocity_images(velocity):
    return lambda y, t: velocity(y.reshape(y.shape[0], -1), t).reshape(y.shape)


def test_euler_and_heun_steps_by_their_formulas():
    field = LinearField([[0.0, 1.0], [-2.0, 0.5]])
    x, h = torch.randn(4, 2, dtype=torch.float64), 0.2
    b = field.velocity
    torch.testing.assert_close(ode.euler_step(b, x, 0.0, h), x + h * b(x))
    k1 = b(x)
    torch.testing.assert_close(ode.heun_step(b, x, 0.0, h), x + h / 2 * (k1 + b(x + h * k1)))
    torch.testing.assert_close(ode.midpoint_step(b, x, 0.0, h), x + h * b(x + h / 2 * k1))
    assert set(ode.STEPPERS) == set(ode.ORDER) == set(ode.NFE_PER_STEP) == set(SOLVERS)


@pytest.mark.parametrize("solver", SOLVERS)
def test_evaluations_per_step(solver):
    calls = []

    def velocity(x, t):
        calls.append(t.shape)
        assert t.shape == (x.shape[0],)
        return -x

    ode.integrate(velocity, torch.ones(3, 2), ode.uniform_grid(5), solver=solver)
    assert len(calls) == ode.nfe(solver, 5) == 5 * ode.NFE_PER_STEP[solver]


def test_integrate_is_repeated_steps():
    field = LinearField.rotation(0.5)
    x = torch.randn(6, 2, dtype=torch.float64)
    grid = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    by_hand = x
    for k in range(3):
        by_hand = ode.rk4_step(field.velocity, by_hand, float(grid[k]), float(grid[k + 1] - grid[k]))
    torch.testing.assert_close(ode.integrate(field.velocity, x, grid, solver="rk4"), by_hand)
    assert torch.equal(ode.integrate(field.velocity, x, grid), ode.integrate(field.velocity, x, grid, solver="heun"))


def test_return_path_and_backwards_integration():
    field = LinearField.rotation(0.5)
    x = torch.randn(7, 2, dtype=torch.float64)
    path = ode.integrate(field.velocity, x, ode.uniform_grid(50), solver="rk4", return_path=True)
    assert path.shape == (51, 7, 2)
    assert torch.equal(path[0], x)
    back = ode.integrate(field.velocity, path[-1], ode.uniform_grid(50, 1.0, 0.0), solver="rk4")
    assert torch.allclose(back, x, atol=1e-8)


def test_images_and_per_sample_grids():
    x = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    s = torch.tensor([0.0, 0.1, 0.5, 0.9], dtype=torch.float64)
    t = torch.tensor([1.0, 0.2, 0.5, 0.3], dtype=torch.float64)
    grid = ode.pair_grid(s, t, 64, 4)
    assert grid.shape == (65, 4) and torch.equal(grid[0], s)
    torch.testing.assert_close(grid[-1], t, rtol=0, atol=1e-15)
    out = ode.integrate(lambda y, tt: -y, x, grid, solver="rk4")
    expected = x * torch.exp(-(t - s)).reshape(-1, 1, 1, 1)
    assert torch.allclose(out, expected, atol=1e-9)


def test_uniform_grid_and_progress_bar(capsys):
    assert ode.uniform_grid(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert ode.uniform_grid(2, 1.0, 0.0).tolist() == [1.0, 0.5, 0.0]
    x = torch.randn(3, 2)
    quiet = ode.integrate(lambda y, t: -y, x, ode.uniform_grid(4))
    shown = ode.integrate(lambda y, t: -y, x, ode.uniform_grid(4), progress=True)
    assert torch.equal(quiet, shown)
    assert "heun steps" in capsys.readouterr().out


def test_bad_inputs():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="unknown solver 'rk45'"):
        ode.integrate(lambda y, t: y, x, [0.0, 1.0], solver="rk45")
    with pytest.raises(ValueError, match="unknown solver"):
        ode.nfe("rk45", 3)
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
    with pytest.raises(ValueError, match="needs 3 columns"):
        ode.integrate(lambda y, t: y, x, torch.zeros(2, 4).add(torch.tensor([[0.0], [1.0]])))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        ode.uniform_grid(0)
    with pytest.raises(TypeError, match="steps must be an int"):
        ode.uniform_grid(2.5)
    with pytest.raises(TypeError, match="method"):
        ode.integrate(lambda y, t: y, x, [0.0, 1.0], method="rk4")  # the argument is called solver
