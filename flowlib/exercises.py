"""Exercise checks: call one on your answer and read what it says.

Two kinds of function live here, one pair per code exercise:

* ``check_*`` — the **public check** a chapter asks you to run. It prints a short confirmation when the
  answer is right and raises an ``AssertionError`` with a hint when it is not (also when the function is
  still the student edition's ``raise NotImplementedError()``).
* ``grade_*`` — the **hidden test** the autograder adds (``python -m editions.grade``). It draws other
  cases at random (other fields, mixtures, times, step counts, networks). Where an exercise asks you to
  compute something the library already has (the steppers, the mixture's velocity, the Lagrangian residual),
  that function is switched off while your answer runs (:func:`forbidding`), so an answer that only calls it
  fails with a message that says so.

The reference answers are flowlib's own implementations, which the test-suite verifies independently.

Example:
    >>> from flowlib import exercises, ode
    >>> exercises.check_stepper(ode.heun_step, expected_order=2)
    ✓ your stepper converges with order 2.00 (expected 2)
"""

from __future__ import annotations

import contextlib
import importlib
import math
import types
from collections.abc import Callable, Iterator

import torch

from flowlib._validate import check_callable
from flowlib.exact import GaussianMixture, LinearField


def _ok(message: str) -> None:
    print(f"\u2713 {message}")


#: the private helpers that compute exercises' answers for the checks; switched off while a student's answer runs,
#: so that calling one (they are importable from this module) passes no check and no hidden test
PRIVATE_ANSWERS = tuple(
    f"flowlib.exercises.{name}"
    for name in ("_euler_jump_residual", "_meanflow_target", "_lsd_without_stopgrad", "_expected_proximal")
)


def _call(function: Callable, name: str, *args: object) -> object:
    """Call an answer with the private answers switched off; an unwritten answer gets a clear message.

    The student edition's ``raise NotImplementedError()`` becomes an ``AssertionError`` that says what to do.
    """
    own_name = getattr(function, "__name__", "<lambda>")
    name = name if own_name.startswith("<") else own_name  # a lambda has no name worth quoting
    try:
        with forbidding(*PRIVATE_ANSWERS):
            return function(*args)
    except NotImplementedError:
        raise AssertionError(
            f"{name} is not written yet: replace `raise NotImplementedError()` in its cell by your code, run that "
            "cell, then run this check again"
        ) from None


def _resolve(dotted: str) -> object:
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ValueError(f"{dotted!r} names no importable module")


def _refusing_code(name: str) -> types.CodeType:
    """The code of a function that accepts anything and raises an ``AssertionError`` naming ``name``.

    It has no free variables and needs no globals (the message is a constant), so it can replace the code of
    any plain library function.
    """
    message = f"the exercise asks you to compute this yourself, but your code called {name}"
    namespace: dict = {}
    exec(f"def refused(*args, **kwargs):\n    raise AssertionError({message!r})\n", namespace)  # noqa: S102
    return namespace["refused"].__code__


@contextlib.contextmanager
def forbidding(*names: str) -> Iterator[None]:
    """Switch library functions off while an answer runs: calling one raises an ``AssertionError`` naming it.

    Hidden tests wrap the call of an answer in it, so that an exercise that asks for a computation cannot be
    passed by calling the library's own version. The function's code itself is swapped, so every way of
    reaching it fails: the module attribute, ``from flowlib.ode import heun_step``, ``ode.STEPPERS["heun"]``,
    a bound method such as ``mixture.velocity``. Everything is restored on exit.

    Args:
        names: dotted paths such as ``"flowlib.ode.heun_step"`` or ``"flowlib.exact.GaussianMixture.velocity"``.

    Raises:
        ValueError: a name that does not resolve, or that is not a plain Python function (raised on entry).
    """
    functions = []
    for name in names:
        owner_path, attribute = name.rsplit(".", 1)
        owner = _resolve(owner_path)
        if not hasattr(owner, attribute):
            raise ValueError(f"{name!r}: {owner_path} has no attribute {attribute!r}")
        function = getattr(owner, attribute)
        function = getattr(function, "__func__", function)
        while hasattr(function, "__wrapped__"):  # a decorated function (e.g. @torch.no_grad()): switch off its body
            function = function.__wrapped__
        if not isinstance(function, types.FunctionType) or function.__code__.co_freevars:
            raise ValueError(f"{name!r} is not a plain Python function whose code can be switched off")
        functions.append((function, function.__code__, _refusing_code(name)))
    try:
        for function, _, refusing in functions:
            function.__code__ = refusing
        yield
    finally:
        for function, original, _ in functions:
            function.__code__ = original


def refuse_library_answer(answer: object, *names: str) -> None:
    """Fail when the answer *is* one of the named library functions (passed itself, or bound to an object)."""
    answer = getattr(answer, "__func__", answer)
    for name in names:
        library = _resolve(name)
        if answer is getattr(library, "__func__", library):
            raise AssertionError(f"the exercise asks you to write this yourself; your answer is {name} itself")


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


def _accelerating_linear_field(seed: int) -> tuple[Callable, Callable]:
    r"""A random time-dependent linear field :math:`b_t(x) = (1 + c\,t)\,A x` and its exact map from 0 to 1.

    All its matrices commute, so :math:`X_{0,1}(x) = e^{(1 + c/2) A} x`; :math:`\|A\|_2 = 1.5`, :math:`c \in [1, 3]`.
    """
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(2, 2, generator=generator, dtype=torch.float64)
    matrix = 1.5 * matrix / torch.linalg.matrix_norm(matrix, ord=2)
    growth = 1.0 + 2.0 * float(torch.rand((), generator=generator, dtype=torch.float64))

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        times = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        return (1 + growth * times)[:, None] * (x @ matrix.T)

    def exact(x: torch.Tensor) -> torch.Tensor:
        return x @ torch.linalg.matrix_exp((1 + growth / 2) * matrix).T

    return velocity, exact


def _order(step: Callable, velocity: Callable, x: torch.Tensor, exact: torch.Tensor, steps: tuple[int, ...]) -> float:
    """The slope of log(error at t = 1) against log(step size) for ``step`` on ``velocity`` from ``x``."""
    errors = []
    for n in steps:
        y, h = x.clone(), 1.0 / n
        for k in range(n):
            y = _call(step, "your stepper", velocity, y, torch.full((x.shape[0],), k * h, dtype=x.dtype), h)
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
    _ok(f"your stepper converges with order {order:.2f} (expected {expected_order})")


class _Counted:
    """A velocity that counts its calls."""

    def __init__(self, velocity: Callable) -> None:
        self.velocity, self.calls = velocity, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.velocity(x, t)


def grade_stepper(
    step: Callable, expected_order: int, evaluations_per_step: int, seeds: tuple[int, ...] = (1, 2, 3)
) -> None:
    """Chapter 1, hidden: the order on random time-dependent linear fields, without flowlib's steppers.

    Args:
        step: the answer, ``step(velocity, x, t, h)``.
        expected_order: the method's order of convergence.
        evaluations_per_step: the most velocity evaluations one step of the method may take.
        seeds: one random field per seed.
    """
    check_callable(step, "step", "step(velocity, x, t, h)")
    refuse_library_answer(step, *STEPPERS)
    for seed in seeds:
        velocity, exact = _accelerating_linear_field(seed)
        counted = _Counted(velocity)

        x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(100 + seed))
        with forbidding(*STEPPERS, "flowlib.ode.integrate"):
            order = _order(step, counted, x, exact(x), ORDER_STEPS)
        assert abs(order - expected_order) < 0.3, (
            f"on a random time-dependent linear field (seed {seed}) the stepper's order is {order:.2f}, "
            f"expected {expected_order}"
        )
        per_step = counted.calls / sum(ORDER_STEPS)
        assert per_step <= evaluations_per_step, (
            f"the stepper evaluates the velocity {per_step:g} times per step; this method needs {evaluations_per_step}"
        )
    _ok(f"order {expected_order} on {len(seeds)} random time-dependent fields, {evaluations_per_step} evaluations/step")


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
        yours = _call(velocity, "point_mass_velocity", x, t, mu)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor shaped like x"
        assert torch.allclose(yours, nearly_a_point.velocity(x, t), atol=1e-5), (
            f"wrong at t = {t}: the conditional velocity is x1 - x0 with x0 = (x - t mu) / (1 - t)"
        )
    _ok("your velocity matches the exact one for data concentrated at one point")


def grade_point_mass_velocity(velocity: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 2, hidden: random points mu in 1 to 3 dimensions and random times, without the mixture oracle."""
    check_callable(velocity, "velocity", "velocity(x, t, mu)")
    refuse_library_answer(velocity, *MIXTURE_ANSWERS)
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        dim = 1 + seed % 3
        mu = 2 * torch.randn(dim, generator=generator, dtype=torch.float64)
        x = torch.randn(20, dim, generator=generator, dtype=torch.float64)
        for t in (0.0, 0.95 * float(torch.rand((), generator=generator, dtype=torch.float64))):
            with forbidding(*MIXTURE_ANSWERS):
                yours = _call(velocity, "point_mass_velocity", x, t, mu)
            _same(yours, (mu - x) / (1 - t), f"for mu = {mu.tolist()} at t = {t:.3f}")
    _ok(f"right for {len(seeds)} random points mu in 1 to 3 dimensions and random times")


def check_mixture_velocity(velocity: Callable) -> None:
    """Chapter 2: ``velocity(x, t)`` for the 1D mixture ``flowlib.data.mixture("two_modes_1d")``."""
    from flowlib import data

    check_callable(velocity, "velocity", "velocity(x, t)")
    mix = data.mixture("two_modes_1d")
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)[:, None]
    for t in (0.05, 0.5, 0.9, 0.99):
        yours = _call(velocity, "your mixture velocity", x, t)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor of shape (batch, 1)"
        worst = float((yours - mix.velocity(x, t)).abs().max())
        assert worst < 1e-6, (
            f"off by up to {worst:.3g} at t = {t}. Check the posterior weights (each component's variance at "
            f"time t is (1 - t)^2 + t^2 sigma^2) and the per-component velocity."
        )
    _ok("your mixture velocity matches flowlib's closed form at t = 0.05, 0.5, 0.9 and 0.99")


def grade_mixture_velocity(velocity: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 2, hidden: random points far into the tails and random times up to 0.999, without the oracle."""
    from flowlib import data

    check_callable(velocity, "velocity", "velocity(x, t)")
    refuse_library_answer(velocity, *MIXTURE_ANSWERS)
    mix = data.mixture("two_modes_1d")
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        x = 12 * torch.rand(50, 1, generator=generator, dtype=torch.float64) - 6
        for t in (0.0, float(torch.rand((), generator=generator, dtype=torch.float64)), 0.999):
            expected = mix.velocity(x, t)
            with forbidding(*MIXTURE_ANSWERS):
                yours = _call(velocity, "your mixture velocity", x, t)
            _same(yours, expected, f"at t = {t:.3f} for points in [-6, 6] (responsibilities from log-densities?)")
    _ok(f"right at {len(seeds)} random sets of points in [-6, 6], at t = 0, random times and t = 0.999")


# ---------------------------------------------------------------------------------------------- chapter 3


def _grid_errors(times: torch.Tensor, solver: str, seed: int) -> tuple[float, float]:
    """Map errors of ``solver`` on the sharp eight Gaussians: on ``times`` and on the uniform grid of as many steps."""
    from flowlib import data, metrics, ode

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
        times = _as_grid(_call(grid, "your grid function", steps), steps)
    else:
        times = _as_grid(grid)
    yours, uniform = _grid_errors(times, solver, seed=0)
    steps = len(times) - 1
    assert yours < uniform, (
        f"with {steps} {solver} steps your grid has map error {yours:.4f}, the uniform grid {uniform:.4f}. "
        "Where do the paths turn most sharply? Put more steps there."
    )
    _ok(
        f"{steps} {solver} steps: map error {yours:.4f} with your grid against {uniform:.4f} uniform "
        f"({uniform / yours:.1f}x better)"
    )


def grade_time_grid(time_grid: Callable, steps: tuple[int, ...] = (4, 8, 16), seeds: tuple[int, ...] = (1, 2)) -> None:
    """Chapter 3, hidden: ``time_grid(steps)`` beats the uniform grid at other step counts and on other noise."""
    check_callable(time_grid, "time_grid", "time_grid(steps)")
    for n in steps:
        times = _as_grid(_call(time_grid, "your grid function", n), n)
        for seed in seeds:
            yours, uniform = _grid_errors(times, "heun", seed)
            assert yours < uniform, f"{n} Heun steps, noise seed {seed}: {yours:.4f} against {uniform:.4f} uniform"
    _ok(f"your grids beat the uniform one at {', '.join(map(str, steps))} Heun steps on {len(seeds)} fresh noise draws")


# ---------------------------------------------------------------------------------------------- chapter 4


def check_average_velocity(average_velocity: Callable) -> None:
    """Chapter 4: ``average_velocity(x, s, t)`` for the eight Gaussians, including the case t = s.

    Compares with :math:`(X_{s,t}(x) - x)/(t - s)` from the oracle, and with :math:`b_s(x)` when t = s.
    """
    from flowlib import data

    check_callable(average_velocity, "average_velocity", "average_velocity(x, s, t)")
    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(64, 0.3, seed=0)
    for s, t in [(0.3, 0.9), (0.3, 0.0), (0.5, 0.51)]:
        yours = _call(average_velocity, "average_velocity", x, s, t)
        assert isinstance(yours, torch.Tensor) and yours.shape == x.shape, "return a tensor shaped like x"
        expected = (mix.flow_map(x, s, t) - x) / (t - s)
        assert torch.allclose(yours, expected, atol=1e-5), f"wrong for s = {s}, t = {t}"
    yours = _call(average_velocity, "average_velocity", x, 0.4, 0.4)
    assert isinstance(yours, torch.Tensor) and bool(torch.isfinite(yours).all()), (
        "at t = s the formula divides zero by zero: return the limit instead"
    )
    assert torch.allclose(yours, mix.velocity(x, 0.4), atol=1e-6), "at t = s the average velocity is b_s(x)"
    _ok("your average velocity matches the oracle, backwards too, and tends to b_s(x) at t = s")


def grade_average_velocity(average_velocity: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 4, hidden: random pairs (s, t) forwards and backwards, and random s = t, on the eight Gaussians."""
    from flowlib import data

    check_callable(average_velocity, "average_velocity", "average_velocity(x, s, t)")
    mix = data.mixture("eight_gaussians")
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        s, t = (round(float(u), 4) for u in torch.rand(2, generator=generator, dtype=torch.float64))
        x = mix.sample_marginal(32, s, seed=seed)
        expected = (mix.flow_map(x, s, t) - x) / (t - s)
        _same(_call(average_velocity, "average_velocity", x, s, t), expected, f"for s = {s}, t = {t}", atol=1e-5)
        _same(_call(average_velocity, "average_velocity", x, s, s), mix.velocity(x, s), f"at s = t = {s}")
    _ok(f"right at {len(seeds)} random pairs (s, t) and at s = t")


# ---------------------------------------------------------------------------------------------- chapter 5


def _euler_jump_residual(velocity: Callable, x: torch.Tensor, s: float, t: float) -> torch.Tensor:
    return (velocity(x, s) - velocity(x + (t - s) * velocity(x, s), t)).norm(dim=1)


def check_euler_jump_residual(residual: Callable) -> None:
    r"""Chapter 5: ``residual(velocity, x, s, t)`` — the Euler jump's Lagrangian residual from its formula.

    Compares with :func:`flowlib.residuals.lagrangian_residual` of :func:`flowlib.exact.tangent_map`, which
    differentiates the jump numerically, on 200 points of :math:`p_{0.2}` of the eight Gaussians.
    """
    from flowlib import data, residuals
    from flowlib.exact import tangent_map

    check_callable(residual, "residual", "residual(velocity, x, s, t)")
    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(200, 0.2, seed=0)
    measured = residuals.lagrangian_residual(tangent_map(mix.velocity), mix.velocity, x, 0.2, 0.9)
    yours = _call(residual, "euler_jump_residual", mix.velocity, x, 0.2, 0.9)
    assert isinstance(yours, torch.Tensor) and yours.shape == (200,), (
        "return one residual per point: the norm over coordinates, a tensor of shape (batch,)"
    )
    worst = float((yours - measured).abs().max())
    assert worst < 1e-5, (
        f"off by up to {worst:.3g} from the measured residual: the jump's t-derivative is b_s(x), the field "
        "is evaluated at the jump's end at time t"
    )
    _ok(f"your formula matches the finite-difference residual to {worst:.1e} (mean residual {float(yours.mean()):.3f})")


def grade_euler_jump_residual(residual: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 5, hidden: random linear fields and random mixtures, random (s, t), without ``lagrangian_residual``."""
    check_callable(residual, "residual", "residual(velocity, x, s, t)")
    refuse_library_answer(residual, "flowlib.residuals.lagrangian_residual")
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        s, t = (float(u) for u in 0.9 * torch.rand(2, generator=generator, dtype=torch.float64))
        mixture = GaussianMixture(
            torch.rand(3, generator=generator, dtype=torch.float64) + 0.2,
            2 * torch.randn(3, 2, generator=generator, dtype=torch.float64),
            0.1 + 0.2 * torch.rand(3, generator=generator, dtype=torch.float64),
        )
        linear = LinearField(torch.randn(2, 2, generator=generator, dtype=torch.float64))
        for name, field in (("a random mixture", mixture), ("a random linear field", linear)):
            x = torch.randn(50, 2, generator=generator, dtype=torch.float64)
            expected = _euler_jump_residual(field.velocity, x, s, t)
            with forbidding("flowlib.residuals.lagrangian_residual"):
                yours = _call(residual, "euler_jump_residual", field.velocity, x, s, t)
            _same(yours, expected, f"on {name} for s = {s:.3f}, t = {t:.3f}")
    _ok(f"right on {len(seeds)} random mixtures and linear fields at random (s, t)")


# ---------------------------------------------------------------------------------------------- chapter 6


def _on_random_maps(compare: Callable, answer: Callable, seeds: tuple[int, ...], what: str) -> None:
    """A hidden test's loop: ``compare(answer, seed, dim)`` on each seed, in 2 and 3 dimensions by turns."""
    for seed in seeds:
        compare(answer, seed=seed, dim=2 + seed % 2)
    _ok(f"right {what} on {len(seeds)} random flow maps")


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
    from flowlib import losses

    model, teacher = _small_flow_map(seed, dim), _random_mixture(seed, dim).velocity
    x, s, t = _case(seed, dim)
    expected = losses.lmd(model, teacher, x, s, t, reduction="none")
    with forbidding("flowlib.losses.lmd"):
        yours = _call(loss, "lmd_loss", model, teacher, x, s, t)
    _same(yours.detach() if isinstance(yours, torch.Tensor) else yours, expected.detach(), "in the loss of a sample")
    assert yours.requires_grad, "the loss carries no gradient: do not compute it under torch.no_grad()"


def check_lmd_loss(loss: Callable) -> None:
    """Chapter 6: ``loss(model, teacher, x, s, t)``, LMD's loss of each sample, on a small flow map and a mixture."""
    check_callable(loss, "loss", "loss(model, teacher, x, s, t)")
    _compare_lmd(loss, seed=0, dim=2)
    _ok("your LMD loss has the right value for every sample")


def grade_lmd_loss(loss: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 6, hidden: random flow maps and teachers in 2 and 3 dimensions, without ``losses.lmd``."""
    check_callable(loss, "loss", "loss(model, teacher, x, s, t)")
    _on_random_maps(_compare_lmd, loss, seeds, "values with random teachers")


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
        yours = _call(target, "meanflow_target", model, x0, x1, s, t)
    _same(yours, expected, "in the target")
    _no_gradient(yours, "detach it: MeanFlow's stop-gradient")


def check_meanflow_target(target: Callable) -> None:
    """Chapter 8: ``target(model, x0, x1, s, t)``, MeanFlow's regression target for :math:`v_{s,t}(I_s)`."""
    check_callable(target, "target", "target(model, x0, x1, s, t)")
    _compare_meanflow(target, seed=0, dim=2)
    _ok("your MeanFlow target is right, and carries no gradient")


def grade_meanflow_target(target: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 8, hidden: random flow maps, noise, data and times in 2 and 3 dimensions, without ``losses.meanflow``."""
    check_callable(target, "target", "target(model, x0, x1, s, t)")
    _on_random_maps(_compare_meanflow, target, seeds, "targets")


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
        yours = _call(target, "shortcut_target", model, x, s, h)
    _same(yours, expected, "in the target velocity", atol=1e-5)
    _no_gradient(yours, "compute it under torch.no_grad() or detach it")


def check_shortcut_target(target: Callable) -> None:
    """Chapter 9: ``target(model, x, s, h)``, the shortcut model's target for :math:`v_{s,s+2h}(x)`."""
    check_callable(target, "target", "target(model, x, s, h)")
    _compare_shortcut(target, seed=0, dim=2)
    _ok("your shortcut target is the average velocity of the model's two half jumps")


def grade_shortcut_target(target: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 9, hidden: random flow maps, points, start times and jump sizes, without the library's losses."""
    check_callable(target, "target", "target(model, x, s, h)")
    _on_random_maps(_compare_shortcut, target, seeds, "targets with random jump sizes")


# ---------------------------------------------------------------------------------------------- chapter 10


def _compare_ema(update: Callable, seed: int) -> None:
    average, model = _small_flow_map(seed), _small_flow_map(seed + 100)
    decay = [0.9, 0.99, 0.5, 0.999][seed % 4]
    before = [p.detach().clone() for p in average.parameters()]
    tensors = [id(p) for p in average.parameters()]
    expected = [decay * a + (1 - decay) * p.detach() for a, p in zip(before, model.parameters(), strict=True)]
    with forbidding("flowlib.train.ema_update"):
        returned = _call(update, "ema_update", average, model, decay)
    assert [id(p) for p in average.parameters()] == tensors, "update the average's parameters in place"
    assert returned is None or returned is average, "update in place; return nothing (or the average itself)"
    for yours, wanted in zip(average.parameters(), expected, strict=True):
        _same(yours.detach(), wanted, f"in a parameter after one update with decay {decay}")


def check_ema_update(update: Callable) -> None:
    """Chapter 10: ``update(average, model, decay)`` moves every parameter of ``average`` toward ``model``'s."""
    check_callable(update, "update", "update(average, model, decay)")
    _compare_ema(update, seed=0)
    _ok("your EMA update moves each parameter in place by the right amount")


def grade_ema_update(update: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 10, hidden: other networks and decays, without ``train.ema_update``."""
    check_callable(update, "update", "update(average, model, decay)")
    for seed in seeds:
        _compare_ema(update, seed=seed)
    _ok(f"right updates on {len(seeds)} networks and decays")


# ---------------------------------------------------------------------------------------------- chapter 7


def _small_flow_map(seed: int, dim: int = 2) -> torch.nn.Module:
    from flowlib.flowmap import FlowMap
    from flowlib.nets import MLP

    torch.manual_seed(seed)
    return FlowMap(MLP(dim, width=32, depth=2, n_times=2)).double()


def _lsd_without_stopgrad(model: torch.nn.Module, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    end, d_end = model.jvp(x, s, t, dt=1.0)
    return (d_end - model.velocity(end, t)).pow(2).mean(1)


def _largest_difference(gradients: tuple, expected: tuple) -> float:
    """The largest entry-wise difference between two lists of gradients (a missing gradient counts as zero)."""
    return max(float(((g if g is not None else 0) - e).abs().max()) for g, e in zip(gradients, expected, strict=True))


def _compare_losses(loss: Callable, seed: int, dim: int) -> None:
    """Assert that ``loss`` has the no-stop-gradient LSD loss's values and parameter gradients."""
    from flowlib import losses

    model = _small_flow_map(seed, dim)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, dim, generator=generator, dtype=torch.float64)
    s, t = torch.rand(2, 64, generator=generator, dtype=torch.float64)
    parameters = list(model.parameters())
    reference = _lsd_without_stopgrad(model, x, s, t)
    expected = torch.autograd.grad(reference.mean(), parameters)
    yours = _call(loss, "lsd_no_stopgrad", model, x, s, t)
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
    _ok("your loss has the right values, and gradients that flow through the teacher's velocity too")


def grade_lsd_without_stopgrad(loss: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 7, hidden: random small flow maps in 2 and 3 dimensions and random (s, t), forwards and backwards."""
    check_callable(loss, "loss", "loss(model, x, s, t)")
    for seed in seeds:
        _compare_losses(loss, seed=seed, dim=2 + seed % 2)
    _ok(f"right values and gradients on {len(seeds)} random flow maps")


# ---------------------------------------------------------------------------------------------- chapter 11


def _memorisation_cases(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random training set, held-out points from the same distribution, and samples that half copy it."""
    generator = torch.Generator().manual_seed(seed)
    dim = int(torch.randint(3, 20, (1,), generator=generator))
    sizes = torch.randint(20, 80, (3,), generator=generator).tolist()
    train, heldout, fresh = (torch.randn(n, dim, generator=generator, dtype=torch.float64) for n in sizes)
    copies = train[torch.randint(0, sizes[0], (sizes[2] // 2,), generator=generator)]
    return torch.cat([fresh[: sizes[2] - len(copies)], copies]), train, heldout


def check_memorisation_ratio(ratio: Callable) -> None:
    r"""Chapter 11: ``ratio(samples, train, heldout)``, as :func:`flowlib.metrics.memorisation_ratio`.

    Compares with the library on the digits: for held-out digits (about 1 by construction of the floor), for
    training digits themselves (0: copies), and for training digits with a little noise; images ``(n, 1, 8, 8)``.
    """
    from flowlib import data, metrics

    check_callable(ratio, "ratio", "ratio(samples, train, heldout)")
    train, heldout = data.digits("train").images, data.digits("heldout").images
    generator = torch.Generator().manual_seed(0)
    noisy = train[:100] + 0.3 * torch.randn(100, 1, 8, 8, generator=generator)
    for name, samples in (("held-out digits", heldout[:100]), ("copies", train[:100]), ("noisy copies", noisy)):
        yours = _call(ratio, "memorisation_ratio", samples, train, heldout)
        assert isinstance(yours, (float, int)) or (isinstance(yours, torch.Tensor) and yours.numel() == 1), (
            "return one number: the ratio of two mean nearest-neighbour distances"
        )
        expected = metrics.memorisation_ratio(samples, train, heldout)
        assert abs(float(yours) - expected) <= 1e-4 * max(1.0, expected), (
            f"for {name} you give {float(yours):.4f}, the definition gives {expected:.4f}; "
            "measure distances between flattened images, nearest *training* image for both the samples and the "
            "held-out images"
        )
    _ok("your memorisation ratio matches the definition, for copies (0) and for held-out digits")


def grade_memorisation_ratio(ratio: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 11, hidden: random point clouds in random dimensions, part copies, without the library's ratio."""
    from flowlib import metrics

    check_callable(ratio, "ratio", "ratio(samples, train, heldout)")
    refuse_library_answer(ratio, "flowlib.metrics.memorisation_ratio")
    for seed in seeds:
        samples, train, heldout = _memorisation_cases(seed)
        expected = metrics.memorisation_ratio(samples, train, heldout)
        with forbidding("flowlib.metrics.memorisation_ratio"):
            yours = float(_call(ratio, "memorisation_ratio", samples, train, heldout))
        assert abs(yours - expected) <= 1e-4 * max(1.0, expected), (
            f"on random points in {train.shape[1]} dimensions you give {yours:.4f}, the definition {expected:.4f}"
        )
    _ok(f"right on {len(seeds)} random point clouds")


def check_slerp(slerp: Callable) -> None:
    """Chapter 11: ``slerp(a, b, weights)`` between two noise images ``(1, 8, 8)``, returning ``(K, 1, 8, 8)``."""
    from flowlib import sampling

    check_callable(slerp, "slerp", "slerp(a, b, weights)")
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    weights = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    yours = _call(slerp, "slerp", a, b, weights)
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
    _ok("your slerp passes through a and b along the great circle")


def grade_slerp(slerp: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 11, hidden: random shapes and weights (also outside [0, 1]), without ``sampling.slerp``."""
    from flowlib import sampling

    check_callable(slerp, "slerp", "slerp(a, b, weights)")
    refuse_library_answer(slerp, "flowlib.sampling.slerp")
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        shape = tuple(torch.randint(1, 6, (3,), generator=generator).tolist())
        a, b = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
        weights = 1.6 * torch.rand(5, generator=generator, dtype=torch.float64) - 0.3
        expected = sampling.slerp(a, b, weights)
        with forbidding("flowlib.sampling.slerp"):
            yours = _call(slerp, "slerp", a, b, weights)
        _same(yours, expected, f"for images of shape {shape}", atol=1e-6)
    _ok(f"right for {len(seeds)} random shapes and weights")


# ---------------------------------------------------------------------------------------------- chapter 12


def _tilt_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float, float]:
    generator = torch.Generator().manual_seed(seed)
    k = int(torch.randint(1, 5, (1,), generator=generator))
    weights = torch.rand(k, generator=generator, dtype=torch.float64) + 0.1
    means = 3 * torch.randn(k, generator=generator, dtype=torch.float64)
    variances = 0.05 + torch.rand(k, generator=generator, dtype=torch.float64)
    c, p, lam = (float(v) for v in (2 * torch.randn(1, generator=generator), 0.1 + torch.rand(1, generator=generator),
                                    4 * torch.rand(1, generator=generator)))  # fmt: skip
    return weights / weights.sum(), means, variances, c, p, lam


def _compare_tilt(tilt: Callable, case: tuple, what: str) -> None:
    weights, means, variances, c, p, lam = case
    mixture = GaussianMixture(weights, means[:, None], variances)
    expected = mixture.tilted([c], [[p]], lam)
    answer = _call(tilt, "my_tilt_1d", weights, means, variances, c, p, lam)
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
    _ok("your tilted weights, means and variances match the closed form")


def grade_tilt_1d(tilt: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 12, hidden: random mixtures of 1 to 4 components and random rewards, without ``tilted``."""
    check_callable(tilt, "tilt", "tilt(weights, means, variances, c, p, lam)")
    for seed in seeds:
        case = _tilt_case(seed)
        weights, means, variances, c, p, lam = case
        expected = GaussianMixture(weights, means[:, None], variances).tilted([c], [[p]], lam)
        with forbidding("flowlib.exact.GaussianMixture.tilted"):
            answer = _call(tilt, "my_tilt_1d", weights, means, variances, c, p, lam)
        assert isinstance(answer, (tuple, list)) and len(answer) == 3, "return three tensors"
        right_answers = (expected.weights, expected.means[:, 0], expected.covs[:, 0, 0])
        for yours, right, name in zip(answer, right_answers, ("weights", "means", "variances"), strict=True):
            _same(yours, right, f"{name} of a random mixture of {len(weights)} components", atol=1e-6)
    _ok(f"right on {len(seeds)} random mixtures and rewards")


def _proximal_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
    generator = torch.Generator().manual_seed(seed)
    d = int(torch.randint(1, 4, (1,), generator=generator))
    x = 2 * torch.randn(
        int(torch.randint(3, 9, (1,), generator=generator)), d, generator=generator, dtype=torch.float64
    )
    c = torch.randn(d, generator=generator, dtype=torch.float64)
    root = torch.randn(d, d, generator=generator, dtype=torch.float64)
    precision = root @ root.T if seed % 2 else torch.outer(root[0], root[0])  # full rank, or rank one
    lam, beta = float(torch.rand(1, generator=generator)) * 4, 0.1 + float(torch.rand(1, generator=generator)) * 3
    return x, c, precision, lam, beta


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
        answer = _call(proximal, "my_proximal_point", x, c, precision, 2.0, 1.0)
        _same(answer, _expected_proximal(x, c, precision, 2.0, 1.0), f"three points, {what}, lambda 2, beta 1")
    _ok("your proximal points maximise the reward minus the penalty")


def grade_proximal_point(proximal: Callable, seeds: tuple[int, ...] = (1, 2, 3, 4)) -> None:
    """Chapter 13, hidden: random points, centres and (full-rank or rank-one) precisions in 1 to 3 dimensions."""
    check_callable(proximal, "proximal", "proximal(x, c, P, lam, beta)")
    for seed in seeds:
        x, c, precision, lam, beta = _proximal_case(seed)
        with forbidding("flowlib.steer.QuadraticReward.proximal"):
            answer = _call(proximal, "my_proximal_point", x, c, precision, lam, beta)
        _same(answer, _expected_proximal(x, c, precision, lam, beta), f"random case {seed} in {x.shape[1]} dimensions")
    _ok(f"right on {len(seeds)} random cases")
