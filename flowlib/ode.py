r"""Fixed-step ODE solvers with one signature, so they read side by side (chapters 1 and 3).

Each step advances :math:`\frac{dx}{dt} = b_t(x)` from time :math:`t` to :math:`t + h`
(:math:`h < 0` runs towards noise), with the signature ``step(velocity, x, t, h)`` of the chapter-1 exercise:

* :func:`euler_step` (order 1, 1 evaluation): :math:`x + h\,b_t(x)`
* :func:`midpoint_step` (order 2, 2 evaluations): :math:`x + h\,b_{t+h/2}(x + \tfrac h2 b_t(x))`
* :func:`heun_step` (order 2, 2 evaluations): :math:`x + \tfrac h2 [k_1 + b_{t+h}(x + h k_1)]`, :math:`k_1 = b_t(x)`
* :func:`rk4_step` (order 4, 4 evaluations): the classical Runge-Kutta scheme.

:func:`integrate` repeats one of them over a grid of times :math:`t_0, t_1, \dots, t_K`.
``velocity(x, t)`` is any callable that takes points ``(batch, ...)`` and times ``(batch,)``
and returns a tensor shaped like ``x``.

Example:
    >>> import torch
    >>> from flowlib import ode
    >>> def rotation(x, t):
    ...     return torch.stack([-x[:, 1], x[:, 0]], dim=1)
    >>> x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> x1 = ode.integrate(rotation, x0, ode.uniform_grid(64), solver="rk4")   # one radian of rotation
    >>> round(float(x1[0, 0]), 6) == round(float(torch.cos(torch.tensor(1.0))), 6)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from flowlib._validate import (
    TimeLike,
    as_points,
    as_time_grid,
    as_times,
    check_callable,
    check_choice,
    check_positive_int,
    column,
)
from flowlib.progress import progress_bar

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Stepper = Callable[[Velocity, torch.Tensor, TimeLike, TimeLike], torch.Tensor]


def _per_sample(x: torch.Tensor, t: TimeLike, h: TimeLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``t`` and ``h`` (floats or ``(batch,)``) as ``(batch,)`` tensors, and ``h`` as a column that multiplies ``x``."""
    batch = x.shape[0]
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(batch)
    hh = torch.as_tensor(h, dtype=x.dtype, device=x.device).expand(batch)
    return tt, hh, column(hh, x)


def euler_step(velocity: Velocity, x: torch.Tensor, t: TimeLike, h: TimeLike) -> torch.Tensor:
    r"""One Euler step, :math:`x + h\,b_t(x)`: ``x`` ``(batch, ...)``, ``t`` and ``h`` floats or ``(batch,)``."""
    t, h, hx = _per_sample(x, t, h)
    return x + hx * velocity(x, t)


def midpoint_step(velocity: Velocity, x: torch.Tensor, t: TimeLike, h: TimeLike) -> torch.Tensor:
    r"""One midpoint step, :math:`x + h\,b_{t+h/2}(x + \tfrac h2 b_t(x))`; shapes as in :func:`euler_step`."""
    t, h, hx = _per_sample(x, t, h)
    return x + hx * velocity(x + 0.5 * hx * velocity(x, t), t + 0.5 * h)


def heun_step(velocity: Velocity, x: torch.Tensor, t: TimeLike, h: TimeLike) -> torch.Tensor:
    r"""One Heun step, :math:`x + \tfrac h2 [k_1 + b_{t+h}(x + h k_1)]` with :math:`k_1 = b_t(x)`."""
    t, h, hx = _per_sample(x, t, h)
    k1 = velocity(x, t)
    k2 = velocity(x + hx * k1, t + h)
    return x + 0.5 * hx * (k1 + k2)


def rk4_step(velocity: Velocity, x: torch.Tensor, t: TimeLike, h: TimeLike) -> torch.Tensor:
    r"""One classical Runge-Kutta step (order 4): four slopes, weighted 1, 2, 2, 1."""
    t, h, hx = _per_sample(x, t, h)
    k1 = velocity(x, t)
    k2 = velocity(x + 0.5 * hx * k1, t + 0.5 * h)
    k3 = velocity(x + 0.5 * hx * k2, t + 0.5 * h)
    k4 = velocity(x + hx * k3, t + h)
    return x + (hx / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


#: Every solver by name, with its evaluations per step and its order.
STEPPERS: dict[str, Stepper] = {"euler": euler_step, "midpoint": midpoint_step, "heun": heun_step, "rk4": rk4_step}
NFE_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
ORDER = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def nfe(solver: str, steps: int) -> int:
    """Number of velocity evaluations ``solver`` spends on ``steps`` steps."""
    check_choice(solver, "solver", STEPPERS)
    return NFE_PER_STEP[solver] * steps


def uniform_grid(steps: int, start: float = 0.0, end: float = 1.0) -> torch.Tensor:
    """``steps + 1`` equally spaced times from ``start`` to ``end`` (float64, shape ``(steps + 1,)``)."""
    check_positive_int(steps, "steps")
    return torch.linspace(float(start), float(end), steps + 1, dtype=torch.float64)


def pair_grid(s: TimeLike, t: TimeLike, steps: int, batch: int) -> torch.Tensor:
    """Per-sample grids from ``s`` to ``t``: shape ``(steps + 1, batch)``, float64.

    ``s`` and ``t`` are floats or ``(batch,)`` tensors; column ``i`` runs from ``s[i]`` to ``t[i]``.
    """
    like = torch.empty(0, dtype=torch.float64)
    ss = as_times(s, "s", batch, like=like)
    tt = as_times(t, "t", batch, like=like)
    fraction = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)[:, None]
    return ss[None, :] + fraction * (tt - ss)[None, :]


def integrate(
    velocity: Velocity,
    x: torch.Tensor,
    times: Sequence[float] | torch.Tensor,
    solver: str = "heun",
    return_path: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Integrate :math:`dx/dt = b_t(x)` from ``times[0]`` to ``times[-1]`` with one of :data:`STEPPERS`.

    Args:
        velocity: ``velocity(x, t) -> dx/dt``; ``x`` is ``(batch, ...)``, ``t`` is ``(batch,)``.
        x: starting points at ``times[0]``, shape ``(batch, ...)``.
        times: the grid, shape ``(n_times,)`` shared by every point, or
            ``(n_times, batch)`` with one grid per point. Increasing grids move
            towards data, decreasing ones towards noise.
        solver: ``"euler"``, ``"midpoint"``, ``"heun"`` or ``"rk4"``.
        return_path: also return every intermediate point.
        progress: show a progress bar over the steps.

    Returns:
        The points at ``times[-1]``, shape ``(batch, ...)``; with ``return_path``,
        the whole path, shape ``(n_times, batch, ...)``.

    Raises:
        ValueError: unknown ``solver``, a bad grid, or a ``velocity`` whose output
            does not have ``x``'s shape.
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    as_points(x, "x")
    check_choice(solver, "solver", STEPPERS)
    grid = as_time_grid(times)
    if grid.ndim == 2 and grid.shape[1] != x.shape[0]:
        raise ValueError(f"times has one column per point, so it needs {x.shape[0]} columns; got {grid.shape[1]}")
    grid = grid.to(dtype=x.dtype, device=x.device)
    step = STEPPERS[solver]

    def checked_velocity(y: torch.Tensor, t_now: torch.Tensor) -> torch.Tensor:
        out = velocity(y, t_now)
        if not isinstance(out, torch.Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"velocity(x, t) must return a tensor shaped like x {tuple(y.shape)}; got {got}")
        return out

    path = [x] if return_path else None
    for k in progress_bar(range(grid.shape[0] - 1), desc=f"{solver} steps", disable=not progress):
        x = step(checked_velocity, x, grid[k], grid[k + 1] - grid[k])
        if path is not None:
            path.append(x)
    return torch.stack(path) if path is not None else x
