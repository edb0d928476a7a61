r"""Fixed-step ODE solvers with one signature, so they read side by side (chapters 1 and 3).

Each solver advances :math:`\frac{dx}{dt} = b_t(x)` over a grid of times
:math:`t_0, t_1, \dots, t_K` (increasing or decreasing). With :math:`h = t_{k+1} - t_k`:

* Euler (order 1, 1 evaluation per step): :math:`x + h\,b_t(x)`
* midpoint (order 2, 2 evaluations): :math:`x + h\,b_{t+h/2}(x + \tfrac h2 b_t(x))`
* Heun (order 2, 2 evaluations): :math:`x + \tfrac h2 [k_1 + b_{t+h}(x + h k_1)]`, :math:`k_1 = b_t(x)`
* RK4 (order 4, 4 evaluations): the classical Runge-Kutta scheme.

``velocity(x, t)`` is any callable that takes points ``(batch, ...)`` and times
``(batch,)`` and returns a tensor shaped like ``x``.

Example:
    >>> from flowlib import ode
    >>> x1 = ode.integrate(velocity, x0, ode.uniform_grid(8), method="heun")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from flowlib._checks import TimeLike, as_points, as_time_grid, as_times, check_callable, check_choice

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _euler(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return x + h * velocity(x, t)


def _midpoint(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    half = 0.5 * h
    return x + h * velocity(x + half * velocity(x, t), t + half.reshape(-1))


def _heun(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    k1 = velocity(x, t)
    k2 = velocity(x + h * k1, t + h.reshape(-1))
    return x + 0.5 * h * (k1 + k2)


def _rk4(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    half = 0.5 * h
    k1 = velocity(x, t)
    k2 = velocity(x + half * k1, t + half.reshape(-1))
    k3 = velocity(x + half * k2, t + half.reshape(-1))
    k4 = velocity(x + h * k3, t + h.reshape(-1))
    return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


STEPPERS = {"euler": _euler, "midpoint": _midpoint, "heun": _heun, "rk4": _rk4}
NFE_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
ORDER = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def nfe(method: str, steps: int) -> int:
    """Number of velocity evaluations ``method`` spends on ``steps`` steps."""
    check_choice(method, "method", STEPPERS)
    return NFE_PER_STEP[method] * steps


def uniform_grid(steps: int, start: float = 0.0, end: float = 1.0) -> torch.Tensor:
    """``steps + 1`` equally spaced times from ``start`` to ``end`` (float64, shape ``(steps + 1,)``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
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
    method: str = "heun",
    return_path: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Integrate :math:`dx/dt = b_t(x)` from ``times[0]`` to ``times[-1]``.

    Args:
        velocity: ``velocity(x, t) -> dx/dt``; ``x`` is ``(batch, ...)``, ``t`` is ``(batch,)``.
        x: starting points at ``times[0]``, shape ``(batch, ...)``.
        times: the grid, shape ``(n_times,)`` shared by every point, or
            ``(n_times, batch)`` with one grid per point. Increasing grids move
            towards data, decreasing ones towards noise.
        method: ``"euler"``, ``"midpoint"``, ``"heun"`` or ``"rk4"``.
        return_path: also return every intermediate point.
        progress: show a progress bar over the steps.

    Returns:
        The points at ``times[-1]``, shape ``(batch, ...)``; with ``return_path``,
        the whole path, shape ``(n_times, batch, ...)``.

    Raises:
        ValueError: unknown ``method``, a bad grid, or a ``velocity`` whose output
            does not have ``x``'s shape.
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    as_points(x, "x")
    check_choice(method, "method", STEPPERS)
    grid = as_time_grid(times)
    batch = x.shape[0]
    if grid.ndim == 2 and grid.shape[1] != batch:
        raise ValueError(f"times has one column per point, so it needs {batch} columns; got {grid.shape[1]}")
    grid = grid.to(dtype=x.dtype, device=x.device)
    if grid.ndim == 1:
        grid = grid[:, None].expand(-1, batch)
    step = STEPPERS[method]

    def checked_velocity(y: torch.Tensor, t_now: torch.Tensor) -> torch.Tensor:
        out = velocity(y, t_now)
        if not isinstance(out, torch.Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"velocity(x, t) must return a tensor shaped like x {tuple(y.shape)}; got {got}")
        return out

    shape = (-1, *([1] * (x.ndim - 1)))
    path = [x] if return_path else None
    iterator = range(grid.shape[0] - 1)
    if progress:
        from flowlib.train import progress_bar

        iterator = progress_bar(iterator, desc=f"{method} steps")
    for k in iterator:
        t_now = grid[k]
        h = (grid[k + 1] - t_now).reshape(shape)
        x = step(checked_velocity, x, t_now, h)
        if path is not None:
            path.append(x)
    if path is not None:
        return torch.stack(path)
    return x
