r"""The flow-map model :math:`X_{s,t}(x) = x + (t - s)\,v_{s,t}(x)` (chapters 4-10).

:class:`FlowMap` wraps any network ``net(x, s, t)`` that returns the average velocity
:math:`v_{s,t}(x)`. The parameterisation makes the identity :math:`X_{t,t}(x) = x` hold by
construction, and the diagonal :math:`v_{t,t}` is a velocity model (the tangent condition).

Derivatives of the map, used by the Lagrangian and Eulerian objectives, come from
forward-mode automatic differentiation (``torch.func.jvp``): one call returns the map and
its derivative along a direction :math:`(\dot x, \dot s, \dot t)`,

.. math::
    \frac{d}{d\varepsilon} X_{s + \varepsilon\dot s,\; t + \varepsilon\dot t}(x + \varepsilon\dot x)
    \Big|_{\varepsilon = 0} = \partial_s X\,\dot s + \partial_t X\,\dot t + \nabla_x X\,\dot x .

A central finite difference is the fallback (``method="fd"``); the tests check that the two agree
in float64.

Example:
    >>> net = nets.MLP(2, width=128, depth=3, n_times=2)
    >>> model = FlowMap(net)
    >>> x1 = model.sample(torch.randn(1000, 2), steps=1)      # one jump from noise to data
    >>> X, dX_dt = model.jvp(x, s, t, dt=1.0)                  # the Lagrangian derivative
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from flowlib._checks import TimeLike, as_points, as_time_grid, as_times, check_choice, check_positive_int
from flowlib.nets import detached

Tangent = torch.Tensor | float | None


def _broadcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, *([1] * (x.ndim - 1)))


class FlowMap(nn.Module):
    r"""A flow map :math:`X_{s,t}(x) = x + (t - s)\,v_{s,t}(x)` around a network for :math:`v`.

    Args:
        net: a module called as ``net(x, s, t)`` with ``x`` ``(batch, ...)`` and ``s``, ``t``
            ``(batch,)`` tensors, returning :math:`v_{s,t}(x)` shaped like ``x``
            (e.g. :class:`flowlib.nets.MLP` with ``n_times=2``).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module called as net(x, s, t), got {type(net).__name__}")
        self.net = net

    # ------------------------------------------------------------------ evaluation
    def _times(self, x: torch.Tensor, s: TimeLike, t: TimeLike) -> tuple[torch.Tensor, torch.Tensor]:
        as_points(x, "x")
        return as_times(s, "s", x.shape[0], like=x), as_times(t, "t", x.shape[0], like=x)

    def average_velocity(self, x: torch.Tensor, s: TimeLike, t: TimeLike) -> torch.Tensor:
        r""":math:`v_{s,t}(x)`; ``x`` ``(batch, ...)``, ``s``/``t`` floats or ``(batch,)`` → ``(batch, ...)``."""
        ss, tt = self._times(x, s, t)
        return self.net(x, ss, tt)

    def forward(self, x: torch.Tensor, s: TimeLike, t: TimeLike) -> torch.Tensor:
        r""":math:`X_{s,t}(x) = x + (t - s)\,v_{s,t}(x)`; shapes as in :meth:`average_velocity`."""
        ss, tt = self._times(x, s, t)
        return x + _broadcast(tt - ss, x) * self.net(x, ss, tt)

    def velocity(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""The velocity :math:`b_t(x) = v_{t,t}(x)` (the diagonal of the map); ``(batch, ...)``."""
        ss, tt = self._times(x, t, t)
        return self.net(x, ss, tt)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        x0: torch.Tensor,
        steps: int | None = 1,
        times: Sequence[float] | torch.Tensor | None = None,
        return_path: bool = False,
    ) -> torch.Tensor:
        r"""Compose jumps along a grid: :math:`x \leftarrow X_{t_k, t_{k+1}}(x)`, from noise to data.

        Args:
            x0: starting points ``(batch, ...)`` at ``times[0]`` (noise when the grid starts at 0).
            steps: number of equal jumps from 0 to 1 (ignored when ``times`` is given).
            times: an explicit grid (increasing or decreasing), shape ``(n_times,)``.
            return_path: also return every intermediate point, ``(n_times, batch, ...)``.

        Returns:
            The points at the grid's last time, ``(batch, ...)`` (or the path).
        """
        as_points(x0, "x0")
        if times is None:
            check_positive_int(steps, "steps")
            grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        else:
            grid = as_time_grid(times)
            if grid.ndim != 1:
                raise ValueError("times must be one grid of shape (n_times,) shared by all points")
        x, path = x0, [x0]
        for k in range(len(grid) - 1):
            x = self(x, float(grid[k]), float(grid[k + 1]))
            path.append(x)
        return torch.stack(path) if return_path else x

    # ------------------------------------------------------------------ derivatives
    def jvp(
        self,
        x: torch.Tensor,
        s: TimeLike,
        t: TimeLike,
        dx: Tangent = None,
        ds: Tangent = None,
        dt: Tangent = None,
        method: str = "jvp",
        eps: float = 1e-3,
        output: str = "map",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The map (or average velocity) and its derivative along :math:`(\dot x, \dot s, \dot t)`.

        Args:
            x: points ``(batch, ...)``.
            s: start times, float or ``(batch,)``.
            t: end times, float or ``(batch,)``.
            dx: tangent in x, shaped like ``x`` (``None``: zero).
            ds: tangent in s, float or ``(batch,)`` (``None``: zero).
            dt: tangent in t, float or ``(batch,)`` (``None``: zero).
            method: ``"jvp"`` (forward-mode autodiff, exact) or ``"fd"`` (central difference).
            eps: step of the finite difference.
            output: ``"map"`` for :math:`X_{s,t}` or ``"velocity"`` for :math:`v_{s,t}`.

        Returns:
            ``(value, derivative)``, both shaped like ``x``. Gradients flow through both.
        """
        check_choice(method, "method", ("jvp", "fd"))
        check_choice(output, "output", ("map", "velocity"))
        ss, tt = self._times(x, s, t)
        x = x.contiguous()  # forward-mode AD refuses broadcast views (e.g. one point expanded to a batch)
        tangents = tuple(
            torch.zeros_like(like)
            if tangent is None
            else torch.as_tensor(tangent, dtype=x.dtype, device=x.device).expand_as(like).contiguous()
            for tangent, like in ((dx, x), (ds, ss), (dt, tt))
        )
        fn = self._map_fn if output == "map" else self.net
        if method == "jvp":
            return torch.func.jvp(fn, (x, ss, tt), tangents)
        value = fn(x, ss, tt)
        plus = fn(x + eps * tangents[0], ss + eps * tangents[1], tt + eps * tangents[2])
        minus = fn(x - eps * tangents[0], ss - eps * tangents[1], tt - eps * tangents[2])
        return value, (plus - minus) / (2 * eps)

    def _map_fn(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x + _broadcast(t - s, x) * self.net(x, s, t)


def as_flow_map_fn(model: FlowMap) -> Callable[[torch.Tensor, TimeLike, TimeLike], torch.Tensor]:
    """A no-gradient ``flow_map(x, s, t)`` in the caller's dtype, for the explorer, metrics and plots."""
    if not isinstance(model, FlowMap):
        raise TypeError(f"model must be a FlowMap, got {type(model).__name__}")
    return detached(model)


def as_velocity_fn(model: FlowMap) -> Callable[[torch.Tensor, TimeLike], torch.Tensor]:
    """The diagonal :math:`v_{t,t}` of a flow map as a no-gradient ``velocity(x, t)``."""
    if not isinstance(model, FlowMap):
        raise TypeError(f"model must be a FlowMap, got {type(model).__name__}")
    return detached(model, model.velocity)


@torch.no_grad()
def consistency_sample(
    model: FlowMap,
    x0: torch.Tensor,
    steps: int = 1,
    generator: torch.Generator | None = None,
    interpolant: str = "linear",
    noise: Callable[[int], torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""Multistep sampling of a consistency model, which only knows jumps to data (chapter 9).

    Jump to data, :math:`x \leftarrow X_{t_k,1}(x)`; then go back to the next time on the grid by
    **re-noising** with fresh noise, :math:`x \leftarrow I_{t_{k+1}}(z, x)`, and jump again. Unlike
    composing flow-map jumps, each step forgets the path and draws a new one.

    Args:
        model: a flow map trained to jump to t = 1.
        x0: noise ``(batch, ...)``.
        steps: number of jumps to data; the grid is ``0, 1/steps, …``.
        generator: the source of the fresh noise.
        interpolant: the interpolant used for re-noising.
        noise: ``noise(k)`` returns the fresh noise for step ``k = 1, …, steps - 1``, shaped like
            ``x0`` (default: independent normal draws from ``generator``). The benchmark passes
            quasi-random sets, as it does for ``x0``.

    Returns:
        Samples ``(batch, ...)``.
    """
    from flowlib.interpolants import get_interpolant

    as_points(x0, "x0")
    check_positive_int(steps, "steps")
    path = get_interpolant(interpolant)
    x = model(x0, 0.0, 1.0)
    for k in range(1, steps):
        t = k / steps
        if noise is None:
            fresh = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        else:
            fresh = noise(k)
            if not isinstance(fresh, torch.Tensor) or fresh.shape != x.shape:
                got = tuple(fresh.shape) if isinstance(fresh, torch.Tensor) else type(fresh).__name__
                raise ValueError(f"noise({k}) must return a tensor of shape {tuple(x.shape)}; got {got}")
            fresh = fresh.to(dtype=x.dtype, device=x.device)
        x = model(path(fresh, x, t), t, 1.0)
    return x
