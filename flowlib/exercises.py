"""Exercise checks (chapters 1-4): call one on your answer and read what it says.

Each check prints a short confirmation when the answer is right and raises an
``AssertionError`` with a hint when it is not. They compare against flowlib's own
implementations, which the test-suite verifies independently.

Example:
    >>> from flowlib import exercises, ode
    >>> exercises.check_stepper(ode.heun_step, expected_order=2)
    ✓ your stepper converges with order 2.00 (expected 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from flowlib._validate import check_callable
from flowlib.exact import LinearField


def _ok(message: str) -> None:
    print(f"\u2713 {message}")


def _speeding_rotation(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`b_t(x) = \pi(\tfrac12 + t)\,Jx` with :math:`J` the quarter turn: a rotation that speeds up in time.

    Its flow from 0 to 1 turns by :math:`\pi \int_0^1 (\tfrac12 + t)\,dt = \pi`, so :math:`X_{0,1}(x) = -x`.
    Because it depends on t, a step that evaluates a slope at the wrong time loses its order.
    """
    speed = math.pi * (0.5 + torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]))
    return speed[:, None] * torch.stack([-x[:, 1], x[:, 0]], dim=1)


def measured_order(step: Callable, field: LinearField | None = None, steps: tuple[int, ...] = (8, 16, 32, 64)) -> float:
    """Order of convergence of a one-step method, measured on a field whose flow is known exactly.

    Args:
        step: ``step(velocity, x, t, h) -> x_next`` with ``x`` ``(batch, 2)``, ``t`` ``(batch,)``
            and ``h`` a float.
        field: an autonomous test field; default: a rotation that speeds up in time, which also
            catches slopes taken at the wrong time.
        steps: numbers of steps from t = 0 to t = 1.

    Returns:
        The slope of log(error at t = 1) against log(step size).
    """
    check_callable(step, "step", "step(velocity, x, t, h)")
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    velocity, exact = (_speeding_rotation, -x) if field is None else (field.velocity, field.flow_map(x, 0.0, 1.0))
    errors = []
    for n in steps:
        y, h = x.clone(), 1.0 / n
        for k in range(n):
            y = step(velocity, y, torch.full((16,), k * h, dtype=torch.float64), h)
        errors.append(float((y - exact).norm(dim=1).max()))
    if not all(math.isfinite(e) and e > 0 for e in errors):
        raise AssertionError(f"the stepper's errors are {errors}: it should return a finite x_next shaped like x")
    xs = [math.log(1.0 / n) for n in steps]
    ys = [math.log(e) for e in errors]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / sum((a - mx) ** 2 for a in xs)


def check_stepper(step: Callable, expected_order: int) -> None:
    """Chapter 1: does ``step(velocity, x, t, h)`` converge with the expected order?"""
    order = measured_order(step)
    assert abs(order - expected_order) < 0.3, (
        f"measured order {order:.2f}, expected {expected_order}. Check which times you pass to the velocity "
        f"(t, t + h/2 or t + h) and the weights of the slopes you combine."
    )
    _ok(f"your stepper converges with order {order:.2f} (expected {expected_order})")


def check_point_mass_velocity(velocity: Callable) -> None:
    """Chapter 2: ``velocity(x, t, mu)`` for data that is a single point mu (linear interpolant)."""
    from flowlib.exact import GaussianMixture

    check_callable(velocity, "velocity", "velocity(x, t, mu)")
    mu = torch.tensor([1.5, -0.5], dtype=torch.float64)
    nearly_a_point = GaussianMixture([1.0], mu[None], 1e-10)
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in (0.0, 0.3, 0.8):
        yours = velocity(x, t, mu)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor shaped like x"
        assert torch.allclose(yours, nearly_a_point.velocity(x, t), atol=1e-5), (
            f"wrong at t = {t}: the conditional velocity is x1 - x0 with x0 = (x - t mu) / (1 - t)"
        )
    _ok("your velocity matches the exact one for data concentrated at one point")


def check_mixture_velocity(velocity: Callable) -> None:
    """Chapter 2: ``velocity(x, t)`` for the 1D mixture ``flowlib.data.mixture("two_modes_1d")``."""
    from flowlib import data

    check_callable(velocity, "velocity", "velocity(x, t)")
    mix = data.mixture("two_modes_1d")
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)[:, None]
    for t in (0.05, 0.5, 0.9, 0.99):
        yours = velocity(x, t)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor of shape (batch, 1)"
        worst = float((yours - mix.velocity(x, t)).abs().max())
        assert worst < 1e-6, (
            f"off by up to {worst:.3g} at t = {t}. Check the posterior weights (each component's variance at "
            f"time t is (1 - t)^2 + t^2 sigma^2) and the per-component velocity."
        )
    _ok("your mixture velocity matches flowlib's closed form at t = 0.05, 0.5, 0.9 and 0.99")


def check_time_grid(grid: torch.Tensor | list, solver: str = "heun") -> None:
    """Chapter 3: does your time grid beat the uniform one, at equal cost, on the sharp eight Gaussians?

    Args:
        grid: increasing times from 0 to 1 (``K + 1`` values for ``K`` steps).
        solver: the solver to compare with.
    """
    from flowlib import data, metrics, ode

    times = torch.as_tensor(grid, dtype=torch.float64)
    assert times.ndim == 1 and len(times) >= 2, "the grid must be a 1D list of times"
    assert abs(float(times[0])) < 1e-12 and abs(float(times[-1]) - 1) < 1e-12, "the grid must start at 0 and end at 1"
    assert bool((times.diff() > 0).all()), "the grid must increase strictly"
    mix = data.mixture("eight_gaussians_sharp")
    z = torch.randn(1000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = mix.flow_map(z, 0.0, 1.0)
    steps = len(times) - 1
    yours = metrics.map_error(ode.integrate(mix.velocity, z, times, solver), exact)
    uniform = metrics.map_error(ode.integrate(mix.velocity, z, ode.uniform_grid(steps), solver), exact)
    assert yours < uniform, (
        f"with {steps} {solver} steps your grid has map error {yours:.4f}, the uniform grid {uniform:.4f}. "
        "Where do the paths turn most sharply? Put more steps there."
    )
    _ok(
        f"{steps} {solver} steps: map error {yours:.4f} with your grid against {uniform:.4f} uniform "
        f"({uniform / yours:.1f}x better)"
    )


def check_average_velocity(average_velocity: Callable) -> None:
    """Chapter 4: ``average_velocity(x, s, t)`` for the eight Gaussians, including the case t = s.

    Compares with :math:`(X_{s,t}(x) - x)/(t - s)` from the oracle, and with :math:`b_s(x)` when t = s.
    """
    from flowlib import data

    check_callable(average_velocity, "average_velocity", "average_velocity(x, s, t)")
    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(64, 0.3, seed=0)
    for s, t in [(0.3, 0.9), (0.3, 0.0), (0.5, 0.51)]:
        yours = average_velocity(x, s, t)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor shaped like x"
        expected = (mix.flow_map(x, s, t) - x) / (t - s)
        assert torch.allclose(yours, expected, atol=1e-5), f"wrong for s = {s}, t = {t}"
    yours = average_velocity(x, 0.4, 0.4)
    assert isinstance(yours, torch.Tensor) and bool(torch.isfinite(yours).all()), (
        "at t = s the formula divides zero by zero: return the limit instead"
    )
    assert torch.allclose(yours, mix.velocity(x, 0.4), atol=1e-6), "at t = s the average velocity is b_s(x)"
    _ok("your average velocity matches the oracle, backwards too, and tends to b_s(x) at t = s")
