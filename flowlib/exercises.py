"""Exercise checks: call one on your answer and read what it says.

Each code exercise of the book has a **public check** here, ``check_*``, that its chapter asks you to run. It
prints a short confirmation when the answer is right and raises an ``AssertionError`` with a hint when it is
not (also when the function is still the student edition's ``raise NotImplementedError()``). The reference
answers are flowlib's own implementations, which the test-suite verifies independently.

The autograder's **hidden tests** (``grade_*``, other random cases, the library's own answers switched off while
yours runs) live apart, in the private module ``flowlib._grading``; a chapter's hidden-test cell calls them.

Example:
    >>> from flowlib import exercises, ode
    >>> exercises.check_stepper(ode.heun_step, expected_order=2)
    ✓ your stepper converges with order 2.00 (expected 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from flowlib import data, losses, metrics, ode, residuals, sampling
from flowlib._answers import call_answer, forbidding, ok
from flowlib._validate import check_callable
from flowlib.chapter import seeded_weights
from flowlib.exact import GaussianMixture, LinearField, tangent_map
from flowlib.flowmap import FlowMap
from flowlib.nets import MLP

# ---------------------------------------------------------------------------------------------- chapter 1

#: numbers of steps from t = 0 to t = 1 at which an order is measured
ORDER_STEPS = (8, 16, 32, 64)
STEPPERS = ("flowlib.ode.euler_step", "flowlib.ode.heun_step", "flowlib.ode.midpoint_step", "flowlib.ode.rk4_step")


def _speeding_rotation(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`b_t(x) = \pi(\tfrac12 + t)\,Jx` with :math:`J` the quarter turn: a rotation that speeds up in time.

    Its flow from 0 to 1 turns by :math:`\pi \int_0^1 (\tfrac12 + t)\,dt = \pi`, so :math:`X_{0,1}(x) = -x`.
    Because it depends on t, a step that evaluates a slope at the wrong time loses its order.
    """
    speed = math.pi * (0.5 + torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]))
    return speed[:, None] * torch.stack([-x[:, 1], x[:, 0]], dim=1)


def _order(step: Callable, velocity: Callable, x: torch.Tensor, exact: torch.Tensor, steps: tuple[int, ...]) -> float:
    """The slope of log(error at t = 1) against log(step size) for ``step`` on ``velocity`` from ``x``."""
    errors = []
    for n in steps:
        y, h = x.clone(), 1.0 / n
        for k in range(n):
            y = call_answer(step, "your stepper", velocity, y, torch.full((x.shape[0],), k * h, dtype=x.dtype), h)
            if not isinstance(y, torch.Tensor) or y.shape != x.shape:
                raise AssertionError(f"the stepper returned {type(y).__name__}: return x_next, a tensor shaped like x")
        errors.append(float((y - exact).norm(dim=1).max()))
    if not all(math.isfinite(e) and e > 0 for e in errors):
        raise AssertionError(f"the stepper's errors are {errors}: it should return a finite x_next shaped like x")
    xs = [math.log(1.0 / n) for n in steps]
    ys = [math.log(e) for e in errors]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / sum((a - mx) ** 2 for a in xs)


def measured_order(step: Callable, field: LinearField | None = None, steps: tuple[int, ...] = ORDER_STEPS) -> float:
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
    return _order(step, velocity, x, exact, steps)


def check_stepper(step: Callable, expected_order: int) -> None:
    """Chapter 1: does ``step(velocity, x, t, h)`` converge with the expected order?"""
    order = measured_order(step)
    assert abs(order - expected_order) < 0.3, (
        f"measured order {order:.2f}, expected {expected_order}. Check which times you pass to the velocity "
        f"(t, t + h/2 or t + h) and the weights of the slopes you combine."
    )
    ok(f"your stepper converges with order {order:.2f} (expected {expected_order})")


# ---------------------------------------------------------------------------------------------- chapter 2

#: the library's answers to the exercises on velocities of a given mixture
MIXTURE_ANSWERS = (
    "flowlib.exact.GaussianMixture.velocity",
    "flowlib.exact.GaussianMixture.denoiser",
    "flowlib.exact.GaussianMixture.flow_map",
)


def _same(yours: object, expected: torch.Tensor, what: str, atol: float = 1e-6) -> None:
    """Assert that ``yours`` is a tensor shaped like ``expected`` and within ``atol`` (relative to its size)."""
    assert isinstance(yours, torch.Tensor), f"return a tensor, not {type(yours).__name__}"
    assert yours.shape == expected.shape, f"return shape {tuple(expected.shape)}, not {tuple(yours.shape)} ({what})"
    worst = float((yours.detach().to(expected.dtype) - expected).abs().max())
    scale = 1.0 + float(expected.abs().max())
    assert math.isfinite(worst) and worst <= atol * scale, f"off by up to {worst:.3g} {what}"


def check_point_mass_velocity(velocity: Callable) -> None:
    """Chapter 2: ``velocity(x, t, mu)`` for data that is a single point mu (linear interpolant)."""
    check_callable(velocity, "velocity", "velocity(x, t, mu)")
    mu = torch.tensor([1.5, -0.5], dtype=torch.float64)
    nearly_a_point = GaussianMixture([1.0], mu[None], 1e-10)
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in (0.0, 0.3, 0.8):
        yours = call_answer(velocity, "point_mass_velocity", x, t, mu)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor shaped like x"
        assert torch.allclose(yours, nearly_a_point.velocity(x, t), atol=1e-5), (
            f"wrong at t = {t}: the conditional velocity is x1 - x0 with x0 = (x - t mu) / (1 - t)"
        )
    ok("your velocity matches the exact one for data concentrated at one point")


def check_mixture_velocity(velocity: Callable) -> None:
    """Chapter 2: ``velocity(x, t)`` for the 1D mixture ``flowlib.data.mixture("two_modes_1d")``."""
    check_callable(velocity, "velocity", "velocity(x, t)")
    mix = data.mixture("two_modes_1d")
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)[:, None]
    for t in (0.05, 0.5, 0.9, 0.99):
        yours = call_answer(velocity, "your mixture velocity", x, t)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor of shape (batch, 1)"
        worst = float((yours - mix.velocity(x, t)).abs().max())
        assert worst < 1e-6, (
            f"off by up to {worst:.3g} at t = {t}. Check the posterior weights (each component's variance at "
            f"time t is (1 - t)^2 + t^2 sigma^2) and the per-component velocity."
        )
    ok("your mixture velocity matches flowlib's closed form at t = 0.05, 0.5, 0.9 and 0.99")


# ---------------------------------------------------------------------------------------------- chapter 3


def _grid_errors(times: torch.Tensor, solver: str, seed: int) -> tuple[float, float]:
    """Map errors of ``solver`` on the sharp eight Gaussians: on ``times`` and on the uniform grid of as many steps."""
    mix = data.mixture("eight_gaussians_sharp")
    z = torch.randn(1000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    exact = mix.flow_map(z, 0.0, 1.0)
    steps = len(times) - 1
    yours = metrics.map_error(ode.integrate(mix.velocity, z, times, solver), exact)
    uniform = metrics.map_error(ode.integrate(mix.velocity, z, ode.uniform_grid(steps), solver), exact)
    return yours, uniform


def _as_grid(grid: object, steps: int | None = None) -> torch.Tensor:
    """A checked grid: 1D, from 0 to 1, strictly increasing, and ``steps + 1`` long when ``steps`` is given."""
    try:
        times = torch.as_tensor(grid, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"the grid must be a list or tensor of times, not {type(grid).__name__}") from None
    assert times.ndim == 1 and len(times) >= 2, "the grid must be a 1D list of times"
    assert steps is None or len(times) == steps + 1, f"asked for {steps} steps, the grid has {len(times)} times"
    assert abs(float(times[0])) < 1e-12 and abs(float(times[-1]) - 1) < 1e-12, "the grid must start at 0 and end at 1"
    assert bool((times.diff() > 0).all()), "the grid must increase strictly"
    return times


def check_time_grid(grid: torch.Tensor | list | Callable, solver: str = "heun", steps: int = 8) -> None:
    """Chapter 3: does your time grid beat the uniform one, at equal cost, on the sharp eight Gaussians?

    Args:
        grid: increasing times from 0 to 1 (``K + 1`` values for ``K`` steps), or a function
            ``grid(steps)`` that returns them (called with ``steps``).
        solver: the solver to compare with.
        steps: the number of steps asked of a function ``grid``.
    """
    if callable(grid):
        times = _as_grid(call_answer(grid, "your grid function", steps), steps)
    else:
        times = _as_grid(grid)
    yours, uniform = _grid_errors(times, solver, seed=0)
    steps = len(times) - 1
    assert yours < uniform, (
        f"with {steps} {solver} steps your grid has map error {yours:.4f}, the uniform grid {uniform:.4f}. "
        "Where do the paths turn most sharply? Put more steps there."
    )
    ok(
        f"{steps} {solver} steps: map error {yours:.4f} with your grid against {uniform:.4f} uniform "
        f"({uniform / yours:.1f}x better)"
    )


# ---------------------------------------------------------------------------------------------- chapter 4


def check_average_velocity(average_velocity: Callable) -> None:
    """Chapter 4: ``average_velocity(x, s, t)`` for the eight Gaussians, including the case t = s.

    Compares with :math:`(X_{s,t}(x) - x)/(t - s)` from the oracle, and with :math:`b_s(x)` when t = s.
    """
    check_callable(average_velocity, "average_velocity", "average_velocity(x, s, t)")
    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(64, 0.3, seed=0)
    for s, t in [(0.3, 0.9), (0.3, 0.0), (0.5, 0.51)]:
        yours = call_answer(average_velocity, "average_velocity", x, s, t)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor shaped like x"
        expected = (mix.flow_map(x, s, t) - x) / (t - s)
        assert torch.allclose(yours, expected, atol=1e-5), f"wrong for s = {s}, t = {t}"
    yours = call_answer(average_velocity, "average_velocity", x, 0.4, 0.4)
    assert isinstance(yours, torch.Tensor) and bool(torch.isfinite(yours).all()), (
        "at t = s the formula divides zero by zero: return the limit instead"
    )
    assert torch.allclose(yours, mix.velocity(x, 0.4), atol=1e-6), "at t = s the average velocity is b_s(x)"
    ok("your average velocity matches the oracle, backwards too, and tends to b_s(x) at t = s")


def check_euler_jump_residual(residual: Callable) -> None:
    r"""Chapter 5: ``residual(velocity, x, s, t)`` — the Euler jump's Lagrangian residual from its formula.

    Compares with :func:`flowlib.residuals.lagrangian_residual` of :func:`flowlib.exact.tangent_map`, which
    differentiates the jump numerically, on 200 points of :math:`p_{0.2}` of the eight Gaussians.
    """
    check_callable(residual, "residual", "residual(velocity, x, s, t)")
    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(200, 0.2, seed=0)
    measured = residuals.lagrangian_residual(tangent_map(mix.velocity), mix.velocity, x, 0.2, 0.9)
    yours = call_answer(residual, "euler_jump_residual", mix.velocity, x, 0.2, 0.9)
    assert isinstance(yours, torch.Tensor) and yours.shape == (200,), (
        "return one residual per point: the norm over coordinates, a tensor of shape (batch,)"
    )
    worst = float((yours - measured).abs().max())
    assert worst < 1e-5, (
        f"off by up to {worst:.3g} from the measured residual: the jump's t-derivative is b_s(x), the field "
        "is evaluated at the jump's end at time t"
    )
    ok(f"your formula matches the finite-difference residual to {worst:.1e} (mean residual {float(yours.mean()):.3f})")


def _no_gradient(yours: object, hint: str) -> None:
    """A target must not carry a gradient (the objectives' stop-gradient)."""
    if isinstance(yours, torch.Tensor) and yours.requires_grad:
        raise AssertionError(f"the target must carry no gradient ({hint})")


def _case(seed: int, dim: int, n: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random points ``(n, dim)`` and times s, t ``(n,)`` in float64, forwards and backwards."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    s, t = torch.rand(2, n, generator=generator, dtype=torch.float64)
    return x, s, t


def _random_mixture(seed: int, dim: int) -> GaussianMixture:
    """Three Gaussians with random means and diagonal covariances in ``dim`` dimensions."""
    generator = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(3, dim, generator=generator, dtype=torch.float64)
    variances = 0.05 + 0.3 * torch.rand(3, dim, generator=generator, dtype=torch.float64)
    return GaussianMixture(torch.ones(3) / 3, means, torch.diag_embed(variances))


def _compare_lmd(loss: Callable, seed: int, dim: int) -> None:

    model, teacher = _small_flow_map(seed, dim), _random_mixture(seed, dim).velocity
    x, s, t = _case(seed, dim)
    expected = losses.lmd(model, teacher, x, s, t, reduction="none")
    with forbidding("flowlib.losses.lmd"):
        yours = call_answer(loss, "lmd_loss", model, teacher, x, s, t)
    _same(yours.detach() if isinstance(yours, torch.Tensor) else yours, expected.detach(), "in the loss of a sample")
    assert yours.requires_grad, "the loss carries no gradient: do not compute it under torch.no_grad()"


def check_lmd_loss(loss: Callable) -> None:
    """Chapter 6: ``loss(model, teacher, x, s, t)``, LMD's loss of each sample, on a small flow map and a mixture."""
    check_callable(loss, "loss", "loss(model, teacher, x, s, t)")
    _compare_lmd(loss, seed=0, dim=2)
    ok("your LMD loss has the right value for every sample")


# ---------------------------------------------------------------------------------------------- chapter 8


def _meanflow_target(model: torch.nn.Module, x0: torch.Tensor, x1: torch.Tensor, s: torch.Tensor, t: torch.Tensor):
    """The MeanFlow target (linear interpolant), written from its formula with one JVP."""
    xs, dxs = (1 - s)[:, None] * x0 + s[:, None] * x1, x1 - x0
    v, dv = model.jvp(xs, s, t, dx=dxs, ds=1.0, output="velocity")
    return (dxs + (t - s)[:, None] * dv).detach()


def _compare_meanflow(target: Callable, seed: int, dim: int) -> None:
    model = _small_flow_map(seed, dim)
    x0, s, t = _case(seed, dim)
    x1 = _random_mixture(seed, dim).sample(x0.shape[0], seed=seed)
    expected = _meanflow_target(model, x0, x1, s, t)
    with forbidding("flowlib.losses.meanflow"):
        yours = call_answer(target, "meanflow_target", model, x0, x1, s, t)
    _same(yours, expected, "in the target")
    _no_gradient(yours, "detach it: MeanFlow's stop-gradient")


def check_meanflow_target(target: Callable) -> None:
    """Chapter 8: ``target(model, x0, x1, s, t)``, MeanFlow's regression target for :math:`v_{s,t}(I_s)`."""
    check_callable(target, "target", "target(model, x0, x1, s, t)")
    _compare_meanflow(target, seed=0, dim=2)
    ok("your MeanFlow target is right, and carries no gradient")


# ---------------------------------------------------------------------------------------------- chapter 9


def _compare_shortcut(target: Callable, seed: int, dim: int) -> None:
    model = _small_flow_map(seed, dim)
    x, s, _ = _case(seed, dim)
    h = 0.5 * (1 - s) * torch.rand(s.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=s.dtype)
    with torch.no_grad():
        v1 = (model(x, s, s + h) - x) / h[:, None]
        v2 = (model(x + h[:, None] * v1, s + h, s + 2 * h) - (x + h[:, None] * v1)) / h[:, None]
        expected = 0.5 * (v1 + v2)
    with forbidding("flowlib.losses.shortcut", "flowlib.losses.psd", "flowlib.losses.psd_target"):
        yours = call_answer(target, "shortcut_target", model, x, s, h)
    _same(yours, expected, "in the target velocity", atol=1e-5)
    _no_gradient(yours, "compute it under torch.no_grad() or detach it")


def check_shortcut_target(target: Callable) -> None:
    """Chapter 9: ``target(model, x, s, h)``, the shortcut model's target for :math:`v_{s,s+2h}(x)`."""
    check_callable(target, "target", "target(model, x, s, h)")
    _compare_shortcut(target, seed=0, dim=2)
    ok("your shortcut target is the average velocity of the model's two half jumps")


# ---------------------------------------------------------------------------------------------- chapter 10


def _compare_ema(update: Callable, seed: int) -> None:
    average, model = _small_flow_map(seed), _small_flow_map(seed + 100)
    decay = [0.9, 0.99, 0.5, 0.999][seed % 4]
    before = [p.detach().clone() for p in average.parameters()]
    tensors = [id(p) for p in average.parameters()]
    expected = [decay * a + (1 - decay) * p.detach() for a, p in zip(before, model.parameters(), strict=True)]
    with forbidding("flowlib.train.ema_update"):
        returned = call_answer(update, "ema_update", average, model, decay)
    assert [id(p) for p in average.parameters()] == tensors, "update the average's parameters in place"
    assert returned is None or returned is average, "update in place; return nothing (or the average itself)"
    for yours, wanted in zip(average.parameters(), expected, strict=True):
        _same(yours.detach(), wanted, f"in a parameter after one update with decay {decay}")


def check_ema_update(update: Callable) -> None:
    """Chapter 10: ``update(average, model, decay)`` moves every parameter of ``average`` toward ``model``'s."""
    check_callable(update, "update", "update(average, model, decay)")
    _compare_ema(update, seed=0)
    ok("your EMA update moves each parameter in place by the right amount")


# ---------------------------------------------------------------------------------------------- chapter 7


def _small_flow_map(seed: int, dim: int = 2) -> torch.nn.Module:
    with seeded_weights(seed):
        return FlowMap(MLP(dim, width=32, depth=2, n_times=2)).double()


def _lsd_without_stopgrad(model: torch.nn.Module, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    end, d_end = model.jvp(x, s, t, dt=1.0)
    return (d_end - model.velocity(end, t)).pow(2).mean(1)


def _largest_difference(gradients: tuple, expected: tuple) -> float:
    """The largest entry-wise difference between two lists of gradients (a missing gradient counts as zero)."""
    return max(float(((g if g is not None else 0) - e).abs().max()) for g, e in zip(gradients, expected, strict=True))


def _compare_losses(loss: Callable, seed: int, dim: int) -> None:
    """Assert that ``loss`` has the no-stop-gradient LSD loss's values and parameter gradients."""
    model = _small_flow_map(seed, dim)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, dim, generator=generator, dtype=torch.float64)
    s, t = torch.rand(2, 64, generator=generator, dtype=torch.float64)
    parameters = list(model.parameters())
    reference = _lsd_without_stopgrad(model, x, s, t)
    expected = torch.autograd.grad(reference.mean(), parameters)
    yours = call_answer(loss, "lsd_no_stopgrad", model, x, s, t)
    assert isinstance(yours, torch.Tensor) and yours.shape == (64,), (
        "return the loss of each sample, a tensor of shape (batch,) (average the squares over coordinates only)"
    )
    _same(yours.detach(), reference.detach(), "in the loss's value")
    assert yours.requires_grad, "the loss carries no gradient: do not compute it under torch.no_grad()"
    gradients = torch.autograd.grad(yours.mean(), parameters, allow_unused=True)
    stopped = torch.autograd.grad(losses.lsd(model, model, x, s, t), parameters)
    distance = _largest_difference(gradients, expected)
    if distance > 1e-6:
        like_stopped = _largest_difference(gradients, stopped)
        hint = (
            "they are the stop-gradient version's: the teacher's velocity must keep its gradient"
            if like_stopped < 1e-6
            else "is the velocity evaluated at the jump's end, with gradients through both?"
        )
        raise AssertionError(f"the value is right but the gradients are not ({distance:.3g} off): {hint}")


def check_lsd_without_stopgrad(loss: Callable) -> None:
    """Chapter 7: ``loss(model, x, s, t)`` — LSD's off-diagonal loss with gradients through the teacher too.

    Compares values and parameter gradients with the loss written from its formula on a small float64 flow map.
    """
    check_callable(loss, "loss", "loss(model, x, s, t)")
    _compare_losses(loss, seed=0, dim=2)
    ok("your loss has the right values, and gradients that flow through the teacher's velocity too")


def check_memorisation_ratio(ratio: Callable) -> None:
    r"""Chapter 11: ``ratio(samples, train, heldout)``, as :func:`flowlib.metrics.memorisation_ratio`.

    Compares with the library on the digits: for held-out digits (about 1 by construction of the floor), for
    training digits themselves (0: copies), and for training digits with a little noise; images ``(n, 1, 8, 8)``.
    """
    check_callable(ratio, "ratio", "ratio(samples, train, heldout)")
    train, heldout = data.digits("train").images, data.digits("heldout").images
    generator = torch.Generator().manual_seed(0)
    noisy = train[:100] + 0.3 * torch.randn(100, 1, 8, 8, generator=generator)
    for name, samples in (("held-out digits", heldout[:100]), ("copies", train[:100]), ("noisy copies", noisy)):
        yours = call_answer(ratio, "memorisation_ratio", samples, train, heldout)
        assert isinstance(yours, (float, int)) or (isinstance(yours, torch.Tensor) and yours.numel() == 1), (
            "return one number: the ratio of two mean nearest-neighbour distances"
        )
        expected = metrics.memorisation_ratio(samples, train, heldout)
        assert abs(float(yours) - expected) <= 1e-4 * max(1.0, expected), (
            f"for {name} you give {float(yours):.4f}, the definition gives {expected:.4f}; "
            "measure distances between flattened images, nearest *training* image for both the samples and the "
            "held-out images"
        )
    ok("your memorisation ratio matches the definition, for copies (0) and for held-out digits")


def check_slerp(slerp: Callable) -> None:
    """Chapter 11: ``slerp(a, b, weights)`` between two noise images ``(1, 8, 8)``, returning ``(K, 1, 8, 8)``."""
    check_callable(slerp, "slerp", "slerp(a, b, weights)")
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    weights = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    yours = call_answer(slerp, "slerp", a, b, weights)
    assert isinstance(yours, torch.Tensor) and yours.shape == (4, 1, 8, 8), (
        f"return one image per weight, shape (4, 1, 8, 8); got {getattr(yours, 'shape', type(yours).__name__)}"
    )
    assert torch.allclose(yours[0], a, atol=1e-6) and torch.allclose(yours[-1], b, atol=1e-6), (
        "weight 0 must give a and weight 1 must give b"
    )
    straight = 0.5 * (a + b)
    assert not torch.allclose(yours[2], straight, atol=1e-3), (
        "halfway you return the straight-line midpoint (a + b) / 2: interpolate along the great circle instead"
    )
    _same(yours, sampling.slerp(a, b, weights), "at weights 0, 0.25, 0.5, 1", atol=1e-6)
    ok("your slerp passes through a and b along the great circle")


def _compare_tilt(tilt: Callable, case: tuple, what: str) -> None:
    weights, means, variances, c, p, lam = case
    mixture = GaussianMixture(weights, means[:, None], variances)
    expected = mixture.tilted([c], [[p]], lam)
    answer = call_answer(tilt, "my_tilt_1d", weights, means, variances, c, p, lam)
    assert isinstance(answer, (tuple, list)) and len(answer) == 3, "return three tensors: (weights, means, variances)"
    new_weights, new_means, new_variances = answer
    _same(new_means, expected.means[:, 0], f"means {what}", atol=1e-6)
    _same(new_variances, expected.covs[:, 0, 0], f"variances {what}", atol=1e-6)
    _same(new_weights, expected.weights, f"weights {what} (did you keep the constant left over by the square?)", 1e-6)


def check_tilt_1d(tilt: Callable) -> None:
    r"""Chapter 12: ``tilt(weights, means, variances, c, p, lam)``, a 1-D mixture tilted by :math:`-\frac p2 (x - c)^2`.

    Compares with :meth:`flowlib.exact.GaussianMixture.tilted` on two components, then at strength 0.
    """
    check_callable(tilt, "tilt", "tilt(weights, means, variances, c, p, lam)")
    weights = torch.tensor([0.5, 0.5], dtype=torch.float64)
    means, variances = torch.tensor([-1.0, 2.0], dtype=torch.float64), torch.tensor([0.2, 0.5], dtype=torch.float64)
    _compare_tilt(tilt, (weights, means, variances, 1.0, 1.0, 2.0), "for two components at strength 2")
    _compare_tilt(tilt, (weights, means, variances, 1.0, 1.0, 0.0), "at strength 0 (nothing should change)")
    ok("your tilted weights, means and variances match the closed form")


def _expected_proximal(
    x: torch.Tensor, c: torch.Tensor, precision: torch.Tensor, lam: float, beta: float
) -> torch.Tensor:
    """Fixed-point iteration of the optimality condition, independent of the closed form the answer writes."""
    y = x.clone()
    step = 1 / (beta + lam * float(torch.linalg.eigvalsh(precision).max()) + 1e-12)
    for _ in range(20_000):
        y = y - step * (lam * (y - c) @ precision + beta * (y - x))
    return y


def check_proximal_point(proximal: Callable) -> None:
    r"""Chapter 13: ``proximal(x, c, P, lam, beta)``, the maximiser of :math:`\lambda r(y) - \frac\beta2\|y - x\|^2`.

    Two cases in two dimensions: an isotropic reward, and a reward that looks at one direction only.
    """
    check_callable(proximal, "proximal", "proximal(x, c, P, lam, beta)")
    x = torch.tensor([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]], dtype=torch.float64)
    c = torch.tensor([1.6, 1.6], dtype=torch.float64)
    for precision, what in [
        (0.5 * torch.eye(2, dtype=torch.float64), "P = 0.5 I"),
        (torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64), "P rewarding x only"),
    ]:
        answer = call_answer(proximal, "my_proximal_point", x, c, precision, 2.0, 1.0)
        _same(answer, _expected_proximal(x, c, precision, 2.0, 1.0), f"three points, {what}, lambda 2, beta 1")
    ok("your proximal points maximise the reward minus the penalty")
