"""The hidden tests the autograder adds to a student's notebook (``python -m editions.grade``); private.

One ``grade_*`` per code exercise, beside the public ``check_*`` of :mod:`flowlib.exercises`: it draws other
cases at random (other fields, mixtures, times, step counts, networks), and where an exercise asks for something
the library already has (the steppers, the mixture's velocity, the Lagrangian residual), that function is
switched off while the answer runs (:func:`flowlib._answers.forbidding`), so an answer that only calls it fails
with a message that says so. A chapter's hidden-test cell calls these; a reader's own work calls the checks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from flowlib import data, metrics, sampling
from flowlib._answers import call_answer, forbidding, ok, refuse_library_answer
from flowlib._validate import check_callable
from flowlib.exact import GaussianMixture, LinearField
from flowlib.exercises import (
    MIXTURE_ANSWERS,
    ORDER_STEPS,
    STEPPERS,
    _as_grid,
    _compare_ema,
    _compare_lmd,
    _compare_losses,
    _compare_meanflow,
    _compare_shortcut,
    _expected_proximal,
    _grid_errors,
    _order,
    _same,
)


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
    ok(f"order {expected_order} on {len(seeds)} random time-dependent fields, {evaluations_per_step} evaluations/step")


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
                yours = call_answer(velocity, "point_mass_velocity", x, t, mu)
            _same(yours, (mu - x) / (1 - t), f"for mu = {mu.tolist()} at t = {t:.3f}")
    ok(f"right for {len(seeds)} random points mu in 1 to 3 dimensions and random times")


def grade_mixture_velocity(velocity: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 2, hidden: random points far into the tails and random times up to 0.999, without the oracle."""
    check_callable(velocity, "velocity", "velocity(x, t)")
    refuse_library_answer(velocity, *MIXTURE_ANSWERS)
    mix = data.mixture("two_modes_1d")
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        x = 12 * torch.rand(50, 1, generator=generator, dtype=torch.float64) - 6
        for t in (0.0, float(torch.rand((), generator=generator, dtype=torch.float64)), 0.999):
            expected = mix.velocity(x, t)
            with forbidding(*MIXTURE_ANSWERS):
                yours = call_answer(velocity, "your mixture velocity", x, t)
            _same(yours, expected, f"at t = {t:.3f} for points in [-6, 6] (responsibilities from log-densities?)")
    ok(f"right at {len(seeds)} random sets of points in [-6, 6], at t = 0, random times and t = 0.999")


def grade_time_grid(time_grid: Callable, steps: tuple[int, ...] = (4, 8, 16), seeds: tuple[int, ...] = (1, 2)) -> None:
    """Chapter 3, hidden: ``time_grid(steps)`` beats the uniform grid at other step counts and on other noise."""
    check_callable(time_grid, "time_grid", "time_grid(steps)")
    for n in steps:
        times = _as_grid(call_answer(time_grid, "your grid function", n), n)
        for seed in seeds:
            yours, uniform = _grid_errors(times, "heun", seed)
            assert yours < uniform, f"{n} Heun steps, noise seed {seed}: {yours:.4f} against {uniform:.4f} uniform"
    ok(f"your grids beat the uniform one at {', '.join(map(str, steps))} Heun steps on {len(seeds)} fresh noise draws")


def grade_average_velocity(average_velocity: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 4, hidden: random pairs (s, t) forwards and backwards, and random s = t, on the eight Gaussians."""
    check_callable(average_velocity, "average_velocity", "average_velocity(x, s, t)")
    mix = data.mixture("eight_gaussians")
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        s, t = (round(float(u), 4) for u in torch.rand(2, generator=generator, dtype=torch.float64))
        x = mix.sample_marginal(32, s, seed=seed)
        expected = (mix.flow_map(x, s, t) - x) / (t - s)
        _same(call_answer(average_velocity, "average_velocity", x, s, t), expected, f"for s = {s}, t = {t}", atol=1e-5)
        _same(call_answer(average_velocity, "average_velocity", x, s, s), mix.velocity(x, s), f"at s = t = {s}")
    ok(f"right at {len(seeds)} random pairs (s, t) and at s = t")


# ---------------------------------------------------------------------------------------------- chapter 5


def _euler_jump_residual(velocity: Callable, x: torch.Tensor, s: float, t: float) -> torch.Tensor:
    return (velocity(x, s) - velocity(x + (t - s) * velocity(x, s), t)).norm(dim=1)


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
                yours = call_answer(residual, "euler_jump_residual", field.velocity, x, s, t)
            _same(yours, expected, f"on {name} for s = {s:.3f}, t = {t:.3f}")
    ok(f"right on {len(seeds)} random mixtures and linear fields at random (s, t)")


# ---------------------------------------------------------------------------------------------- chapter 6


def _on_random_maps(compare: Callable, answer: Callable, seeds: tuple[int, ...], what: str) -> None:
    """A hidden test's loop: ``compare(answer, seed, dim)`` on each seed, in 2 and 3 dimensions by turns."""
    for seed in seeds:
        compare(answer, seed=seed, dim=2 + seed % 2)
    ok(f"right {what} on {len(seeds)} random flow maps")


def grade_lmd_loss(loss: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 6, hidden: random flow maps and teachers in 2 and 3 dimensions, without ``losses.lmd``."""
    check_callable(loss, "loss", "loss(model, teacher, x, s, t)")
    _on_random_maps(_compare_lmd, loss, seeds, "values with random teachers")


def grade_meanflow_target(target: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 8, hidden: random flow maps, noise, data and times in 2 and 3 dimensions, without ``losses.meanflow``."""
    check_callable(target, "target", "target(model, x0, x1, s, t)")
    _on_random_maps(_compare_meanflow, target, seeds, "targets")


def grade_shortcut_target(target: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 9, hidden: random flow maps, points, start times and jump sizes, without the library's losses."""
    check_callable(target, "target", "target(model, x, s, h)")
    _on_random_maps(_compare_shortcut, target, seeds, "targets with random jump sizes")


def grade_ema_update(update: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 10, hidden: other networks and decays, without ``train.ema_update``."""
    check_callable(update, "update", "update(average, model, decay)")
    for seed in seeds:
        _compare_ema(update, seed=seed)
    ok(f"right updates on {len(seeds)} networks and decays")


def grade_lsd_without_stopgrad(loss: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 7, hidden: random small flow maps in 2 and 3 dimensions and random (s, t), forwards and backwards."""
    check_callable(loss, "loss", "loss(model, x, s, t)")
    for seed in seeds:
        _compare_losses(loss, seed=seed, dim=2 + seed % 2)
    ok(f"right values and gradients on {len(seeds)} random flow maps")


# ---------------------------------------------------------------------------------------------- chapter 11


def _memorisation_cases(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random training set, held-out points from the same distribution, and samples that half copy it."""
    generator = torch.Generator().manual_seed(seed)
    dim = int(torch.randint(3, 20, (1,), generator=generator))
    sizes = torch.randint(20, 80, (3,), generator=generator).tolist()
    train, heldout, fresh = (torch.randn(n, dim, generator=generator, dtype=torch.float64) for n in sizes)
    copies = train[torch.randint(0, sizes[0], (sizes[2] // 2,), generator=generator)]
    return torch.cat([fresh[: sizes[2] - len(copies)], copies]), train, heldout


def grade_memorisation_ratio(ratio: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 11, hidden: random point clouds in random dimensions, part copies, without the library's ratio."""
    check_callable(ratio, "ratio", "ratio(samples, train, heldout)")
    refuse_library_answer(ratio, "flowlib.metrics.memorisation_ratio")
    for seed in seeds:
        samples, train, heldout = _memorisation_cases(seed)
        expected = metrics.memorisation_ratio(samples, train, heldout)
        with forbidding("flowlib.metrics.memorisation_ratio"):
            yours = float(call_answer(ratio, "memorisation_ratio", samples, train, heldout))
        assert abs(yours - expected) <= 1e-4 * max(1.0, expected), (
            f"on random points in {train.shape[1]} dimensions you give {yours:.4f}, the definition {expected:.4f}"
        )
    ok(f"right on {len(seeds)} random point clouds")


def grade_slerp(slerp: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 11, hidden: random shapes and weights (also outside [0, 1]), without ``sampling.slerp``."""
    check_callable(slerp, "slerp", "slerp(a, b, weights)")
    refuse_library_answer(slerp, "flowlib.sampling.slerp")
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        shape = tuple(torch.randint(1, 6, (3,), generator=generator).tolist())
        a, b = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
        weights = 1.6 * torch.rand(5, generator=generator, dtype=torch.float64) - 0.3
        expected = sampling.slerp(a, b, weights)
        with forbidding("flowlib.sampling.slerp"):
            yours = call_answer(slerp, "slerp", a, b, weights)
        _same(yours, expected, f"for images of shape {shape}", atol=1e-6)
    ok(f"right for {len(seeds)} random shapes and weights")


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


def grade_tilt_1d(tilt: Callable, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """Chapter 12, hidden: random mixtures of 1 to 4 components and random rewards, without ``tilted``."""
    check_callable(tilt, "tilt", "tilt(weights, means, variances, c, p, lam)")
    for seed in seeds:
        case = _tilt_case(seed)
        weights, means, variances, c, p, lam = case
        expected = GaussianMixture(weights, means[:, None], variances).tilted([c], [[p]], lam)
        with forbidding("flowlib.exact.GaussianMixture.tilted"):
            answer = call_answer(tilt, "my_tilt_1d", weights, means, variances, c, p, lam)
        assert isinstance(answer, (tuple, list)) and len(answer) == 3, "return three tensors"
        right_answers = (expected.weights, expected.means[:, 0], expected.covs[:, 0, 0])
        for yours, right, name in zip(answer, right_answers, ("weights", "means", "variances"), strict=True):
            _same(yours, right, f"{name} of a random mixture of {len(weights)} components", atol=1e-6)
    ok(f"right on {len(seeds)} random mixtures and rewards")


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


def grade_proximal_point(proximal: Callable, seeds: tuple[int, ...] = (1, 2, 3, 4)) -> None:
    """Chapter 13, hidden: random points, centres and (full-rank or rank-one) precisions in 1 to 3 dimensions."""
    check_callable(proximal, "proximal", "proximal(x, c, P, lam, beta)")
    for seed in seeds:
        x, c, precision, lam, beta = _proximal_case(seed)
        with forbidding("flowlib.steer.QuadraticReward.proximal"):
            answer = call_answer(proximal, "my_proximal_point", x, c, precision, lam, beta)
        _same(answer, _expected_proximal(x, c, precision, lam, beta), f"random case {seed} in {x.shape[1]} dimensions")
    ok(f"right on {len(seeds)} random cases")
